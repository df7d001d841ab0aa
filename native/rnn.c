/* Pointwise parts of one LSTM or GRU time step and their backward (gate order as in PyTorch: LSTM i, f, g, o;
 * GRU r, z, n). The matrix products of a step are GEMMs called by the TypeScript layer; these kernels fuse every
 * activation and state update of a step into one pass over the batch rows. Sigmoid runs on the vectorised path
 * of vmath.c; tanh(x) is 2 sigmoid(2x) - 1 on that path. Rows are split over the pool in fixed chunks. */
#include "kiln.h"
#include <math.h>
#include "vmath.h"

#define ROW_ELEMS 16384 /* elements of work per parallel chunk */

/* x[0..n) = sigmoid(x) in place */
static void vsigmoid(float *x, size_t n) {
  size_t k = kiln_vunary(U_SIGMOID, 0, x, NULL, x, n);
  for (size_t i = k; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
}

/* out[0..n) = tanh(x); out may alias x */
static void vtanh(const float *x, float *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = 2.0f * x[i];
  size_t k = kiln_vunary(U_SIGMOID, 0, out, NULL, out, n);
  for (size_t i = 0; i < k; i++) out[i] = 2.0f * out[i] - 1.0f;
  for (size_t i = k; i < n; i++) out[i] = tanhf(0.5f * out[i]); /* out holds 2x (exact); x may be out */
}

typedef struct {
  float *gates, *gh, *c, *h, *dc, *dgates, *dgh, *dh_prev;
  const float *c_prev, *h_prev, *dh, *cc;
  size_t H;
} rnn_job;

static size_t chunk_rows(size_t width) { size_t r = ROW_ELEMS / (width ? width : 1); return r ? r : 1; }

static void lstm_rows(void *p, size_t b0, size_t b1) {
  const rnn_job *j = p;
  size_t H = j->H;
  for (size_t b = b0; b < b1; b++) {
    float *g = j->gates + b * 4 * H; /* (4H): i, f, g, o */
    const float *cp = j->c_prev + b * H; /* (H) */
    float *c = j->c + b * H, *h = j->h + b * H; /* (H) */
    vsigmoid(g, 2 * H);
    vtanh(g + 2 * H, g + 2 * H, H);
    vsigmoid(g + 3 * H, H);
    for (size_t k = 0; k < H; k++) c[k] = g[H + k] * cp[k] + g[k] * g[2 * H + k];
    vtanh(c, h, H);
    for (size_t k = 0; k < H; k++) h[k] *= g[3 * H + k];
  }
}

void kiln_lstm_cell(float *gates, const float *c_prev, size_t B, size_t H, float *c, float *h) {
  rnn_job j = { .gates = gates, .c_prev = c_prev, .c = c, .h = h, .H = H };
  kiln_parallel_for(B, chunk_rows(4 * H), 2 * chunk_rows(4 * H), lstm_rows, &j);
}

static void lstm_bwd_rows(void *p, size_t b0, size_t b1) {
  const rnn_job *j = p;
  size_t H = j->H;
  for (size_t b = b0; b < b1; b++) {
    const float *g = j->gates + b * 4 * H; /* (4H) activations */
    const float *cp = j->c_prev + b * H, *c = j->cc + b * H, *dh = j->dh + b * H; /* (H) */
    float *dc = j->dc + b * H; /* (H) in: dL/dc, out: dL/dc_prev */
    float *dg = j->dgates + b * 4 * H; /* (4H) */
    float *tc = dg + 3 * H; /* tanh(c) parked in the o slot until its gradient is written */
    vtanh(c, tc, H);
    for (size_t k = 0; k < H; k++) {
      float i = g[k], f = g[H + k], gg = g[2 * H + k], o = g[3 * H + k], t = tc[k], d = dh[k];
      float dcv = dc[k] + d * o * (1.0f - t * t);
      dg[k] = dcv * gg * i * (1.0f - i);
      dg[H + k] = dcv * cp[k] * f * (1.0f - f);
      dg[2 * H + k] = dcv * i * (1.0f - gg * gg);
      dg[3 * H + k] = d * t * o * (1.0f - o);
      dc[k] = dcv * f;
    }
  }
}

void kiln_lstm_cell_backward(const float *gates, const float *c_prev, const float *c, const float *dh, float *dc,
                             size_t B, size_t H, float *dgates) {
  rnn_job j = { .gates = (float *)gates, .c_prev = c_prev, .cc = c, .dh = dh, .dc = dc, .dgates = dgates, .H = H };
  kiln_parallel_for(B, chunk_rows(4 * H), 2 * chunk_rows(4 * H), lstm_bwd_rows, &j);
}

static void gru_rows(void *p, size_t b0, size_t b1) {
  const rnn_job *j = p;
  size_t H = j->H;
  for (size_t b = b0; b < b1; b++) {
    float *g = j->gates + b * 3 * H; /* (3H): x part in, r, z, n out */
    const float *gh = j->gh + b * 3 * H; /* (3H) */
    const float *hp = j->h_prev + b * H; /* (H) */
    float *h = j->h + b * H; /* (H) */
    for (size_t k = 0; k < 2 * H; k++) g[k] += gh[k];
    vsigmoid(g, 2 * H);
    for (size_t k = 0; k < H; k++) g[2 * H + k] += g[k] * gh[2 * H + k];
    vtanh(g + 2 * H, g + 2 * H, H);
    for (size_t k = 0; k < H; k++) h[k] = (1.0f - g[H + k]) * g[2 * H + k] + g[H + k] * hp[k];
  }
}

void kiln_gru_cell(float *gx, const float *gh, const float *h_prev, size_t B, size_t H, float *h) {
  rnn_job j = { .gates = gx, .gh = (float *)gh, .h_prev = h_prev, .h = h, .H = H };
  kiln_parallel_for(B, chunk_rows(3 * H), 2 * chunk_rows(3 * H), gru_rows, &j);
}

static void gru_bwd_rows(void *p, size_t b0, size_t b1) {
  const rnn_job *j = p;
  size_t H = j->H;
  for (size_t b = b0; b < b1; b++) {
    const float *g = j->gates + b * 3 * H, *gh = j->gh + b * 3 * H; /* (3H) */
    const float *hp = j->h_prev + b * H, *dh = j->dh + b * H; /* (H) */
    float *dgx = j->dgates + b * 3 * H, *dgh = j->dgh + b * 3 * H; /* (3H) */
    float *dhp = j->dh_prev + b * H; /* (H) */
    for (size_t k = 0; k < H; k++) {
      float r = g[k], z = g[H + k], n = g[2 * H + k], d = dh[k];
      float dn = d * (1.0f - z) * (1.0f - n * n);
      float dz = d * (hp[k] - n) * z * (1.0f - z);
      float dr = dn * gh[2 * H + k] * r * (1.0f - r);
      dgx[k] = dr; dgx[H + k] = dz; dgx[2 * H + k] = dn;
      dgh[k] = dr; dgh[H + k] = dz; dgh[2 * H + k] = dn * r;
      dhp[k] = d * z;
    }
  }
}

void kiln_gru_cell_backward(const float *gates, const float *gh, const float *h_prev, const float *dh, size_t B,
                            size_t H, float *dgx, float *dgh, float *dh_prev) {
  rnn_job j = { .gates = (float *)gates, .gh = (float *)gh, .h_prev = h_prev, .dh = dh, .dgates = dgx, .dgh = dgh,
                .dh_prev = dh_prev, .H = H };
  kiln_parallel_for(B, chunk_rows(3 * H), 2 * chunk_rows(3 * H), gru_bwd_rows, &j);
}

/* 2-D max and average pooling over planes (P, H, W) -> (P, OH, OW), forward and backward, as PyTorch computes them.
 * Threads take fixed ranges of planes; a plane's backward only writes its own plane, so nothing is shared. */
#include "kiln.h"
#include <math.h>
#include <string.h>

#define PLANE_CHUNK_ELEMS 16384

typedef struct {
  const kiln_pool2d_shape *s;
  const float *x, *dy;
  const int32_t *idx_in;
  float *out, *dx;
  int32_t *idx;
  int include_pad;
  float divisor;
} pool_job;

static size_t plane_chunk(const kiln_pool2d_shape *s) {
  size_t per = (size_t)s->H * s->W + (size_t)s->OH * s->OW;
  size_t c = PLANE_CHUNK_ELEMS / (per ? per : 1);
  return c ? c : 1;
}

/* out, idx (OH, OW) of one plane x (H, W) for the common 2x2 window, stride 2, no padding or dilation, every window
 * inside the plane: the generic loop's order (row by row, left to right) and its rule (the first maximum; a NaN
 * wins, the last NaN over an earlier one), without its bounds checks. */
static void max_plane_2x2(const float *x, int W, int OH, int OW, float *out, int32_t *idx) {
  for (int oh = 0; oh < OH; oh++) {
    const float *r0 = x + (size_t)2 * oh * W, *r1 = r0 + W; /* the window's two rows */
    float *o = out + (size_t)oh * OW;                        /* (OW) */
    int32_t *ix = idx + (size_t)oh * OW;                     /* (OW) */
    const int base = 2 * oh * W;
    for (int ow = 0; ow < OW; ow++) { /* branch-free, so that the compiler vectorizes it */
      const int w = 2 * ow;
      const float a = r0[w], b = r0[w + 1], c = r1[w], d = r1[w + 1];
      float best = a;
      int k = 0;
      int t = (b > best) | (b != b); best = t ? b : best; k = t ? 1 : k;
      t = (c > best) | (c != c); best = t ? c : best; k = t ? W : k;
      t = (d > best) | (d != d); best = t ? d : best; k = t ? W + 1 : k;
      o[ow] = best;
      ix[ow] = base + w + k;
    }
  }
}

static void max_planes(void *p, size_t p0, size_t p1) {
  pool_job *j = p;
  const kiln_pool2d_shape s = *j->s; /* a copy: the index writes below could alias the shape's ints */
  const int fast = s.KH == 2 && s.KW == 2 && s.sH == 2 && s.sW == 2 && s.pH == 0 && s.pW == 0 && s.dH == 1 &&
                   s.dW == 1 && 2 * s.OH <= s.H && 2 * s.OW <= s.W;
  for (size_t pl = p0; pl < p1; pl++) {
    const float *x = j->x + pl * s.H * s.W;   /* (H, W) */
    float *out = j->out + pl * s.OH * s.OW;   /* (OH, OW) */
    int32_t *idx = j->idx + pl * s.OH * s.OW; /* (OH, OW) */
    if (fast) { max_plane_2x2(x, s.W, s.OH, s.OW, out, idx); continue; }
    for (int oh = 0; oh < s.OH; oh++)
      for (int ow = 0; ow < s.OW; ow++) {
        float best = -INFINITY;
        int at = -1;
        for (int kh = 0; kh < s.KH; kh++) {
          int h = oh * s.sH - s.pH + kh * s.dH;
          if (h < 0 || h >= s.H) continue;
          for (int kw = 0; kw < s.KW; kw++) {
            int w = ow * s.sW - s.pW + kw * s.dW;
            if (w < 0 || w >= s.W) continue;
            float v = x[h * s.W + w];
            if (at < 0 || v > best || isnan(v)) { best = v; at = h * s.W + w; }
          }
        }
        out[oh * s.OW + ow] = best;
        idx[oh * s.OW + ow] = at;
      }
  }
}

void kiln_max_pool2d(const float *x, const kiln_pool2d_shape *s, float *out, int32_t *idx) {
  pool_job j = { .s = s, .x = x, .out = out, .idx = idx };
  size_t chunk = plane_chunk(s);
  kiln_parallel_for((size_t)s->P, chunk, 2 * chunk, max_planes, &j);
}

static void max_backward_planes(void *p, size_t p0, size_t p1) {
  pool_job *j = p;
  const kiln_pool2d_shape *s = j->s;
  const size_t HW = (size_t)s->H * s->W, OHW = (size_t)s->OH * s->OW;
  for (size_t pl = p0; pl < p1; pl++) {
    float *dx = j->dx + pl * HW;
    const float *dy = j->dy + pl * OHW;
    const int32_t *idx = j->idx_in + pl * OHW;
    memset(dx, 0, sizeof(float) * HW);
    for (size_t o = 0; o < OHW; o++)
      if (idx[o] >= 0) dx[idx[o]] += dy[o];
  }
}

void kiln_max_pool2d_backward(const float *dy, const int32_t *idx, const kiln_pool2d_shape *s, float *dx) {
  pool_job j = { .s = s, .dy = dy, .idx_in = idx, .dx = dx };
  size_t chunk = plane_chunk(s);
  kiln_parallel_for((size_t)s->P, chunk, 2 * chunk, max_backward_planes, &j);
}

/* Window (oh, ow) clipped to the input, [h0, h1) x [w0, w1), and PyTorch's divisor for it. */
static float avg_window(const pool_job *j, int oh, int ow, int *h0, int *h1, int *w0, int *w1) {
  const kiln_pool2d_shape *s = j->s;
  int hs = oh * s->sH - s->pH, ws = ow * s->sW - s->pW;
  int he = hs + s->KH < s->H + s->pH ? hs + s->KH : s->H + s->pH;
  int we = ws + s->KW < s->W + s->pW ? ws + s->KW : s->W + s->pW;
  int padded = (he - hs) * (we - ws);
  *h0 = hs < 0 ? 0 : hs;
  *w0 = ws < 0 ? 0 : ws;
  *h1 = he > s->H ? s->H : he;
  *w1 = we > s->W ? s->W : we;
  if (j->divisor != 0.0f) return j->divisor;
  return (float)(j->include_pad ? padded : (*h1 - *h0) * (*w1 - *w0));
}

static void avg_planes(void *p, size_t p0, size_t p1) {
  pool_job *j = p;
  const kiln_pool2d_shape *s = j->s;
  for (size_t pl = p0; pl < p1; pl++) {
    const float *x = j->x + pl * s->H * s->W;
    float *out = j->out + pl * s->OH * s->OW;
    for (int oh = 0; oh < s->OH; oh++)
      for (int ow = 0; ow < s->OW; ow++) {
        int h0, h1, w0, w1;
        float div = avg_window(j, oh, ow, &h0, &h1, &w0, &w1);
        float sum = 0.0f;
        for (int h = h0; h < h1; h++)
          for (int w = w0; w < w1; w++) sum += x[h * s->W + w];
        out[oh * s->OW + ow] = sum / div;
      }
  }
}

void kiln_avg_pool2d(const float *x, const kiln_pool2d_shape *s, int include_pad, float divisor, float *out) {
  pool_job j = { .s = s, .x = x, .out = out, .include_pad = include_pad, .divisor = divisor };
  size_t chunk = plane_chunk(s);
  kiln_parallel_for((size_t)s->P, chunk, 2 * chunk, avg_planes, &j);
}

static void avg_backward_planes(void *p, size_t p0, size_t p1) {
  pool_job *j = p;
  const kiln_pool2d_shape *s = j->s;
  for (size_t pl = p0; pl < p1; pl++) {
    float *dx = j->dx + pl * s->H * s->W;
    const float *dy = j->dy + pl * s->OH * s->OW;
    memset(dx, 0, sizeof(float) * (size_t)s->H * s->W);
    for (int oh = 0; oh < s->OH; oh++)
      for (int ow = 0; ow < s->OW; ow++) {
        int h0, h1, w0, w1;
        float g = dy[oh * s->OW + ow] / avg_window(j, oh, ow, &h0, &h1, &w0, &w1);
        for (int h = h0; h < h1; h++)
          for (int w = w0; w < w1; w++) dx[h * s->W + w] += g;
      }
  }
}

void kiln_avg_pool2d_backward(const float *dy, const kiln_pool2d_shape *s, int include_pad, float divisor, float *dx) {
  pool_job j = { .s = s, .dy = dy, .dx = dx, .include_pad = include_pad, .divisor = divisor };
  size_t chunk = plane_chunk(s);
  kiln_parallel_for((size_t)s->P, chunk, 2 * chunk, avg_backward_planes, &j);
}

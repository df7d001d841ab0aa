/* Kernels of the Llama-style decoder: RMSNorm forward and backward, rotary position embeddings (Hugging Face
 * rotate_half convention). Row-parallel in fixed chunks; RMSNorm's dweight is summed per fixed block of rows and
 * the blocks are added in order, so results do not depend on the thread count. */
#include "kiln.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_ELEMS 16384
#define MIN_PAR 32768

static size_t row_chunk(size_t cols) { size_t c = CHUNK_ELEMS / (cols ? cols : 1); return c ? c : 1; }
static size_t row_min(size_t cols) { return MIN_PAR / (cols ? cols : 1) + 1; }

typedef struct {
  const float *x, *w, *dy, *rstd;
  float *out, *s, *dx, *pw;
  size_t rows, C;
  float eps;
} rms_job;

/* Sum of squares (or of products) with 16 independent accumulators, which the compiler keeps in vector registers;
 * the order of additions is fixed. */
#define LANES 16
static float dot16(const float *a, const float *b, size_t n) {
  float acc[LANES] = { 0 };
  size_t c = 0;
  for (; c + LANES <= n; c += LANES)
    for (int k = 0; k < LANES; k++) acc[k] += a[c + k] * b[c + k];
  float s = 0.0f;
  for (int k = 0; k < LANES; k++) s += acc[k];
  for (; c < n; c++) s += a[c] * b[c];
  return s;
}

static void rms_fwd_rows(void *p, size_t r0, size_t r1) {
  rms_job *j = p;
  const size_t C = j->C;
  for (size_t r = r0; r < r1; r++) {
    const float *x = j->x + r * C; /* (C) */
    float *out = j->out + r * C;   /* (C) */
    float s = 1.0f / sqrtf(dot16(x, x, C) / (float)C + j->eps);
    if (j->w) for (size_t c = 0; c < C; c++) out[c] = x[c] * s * j->w[c];
    else for (size_t c = 0; c < C; c++) out[c] = x[c] * s;
    j->s[r] = s;
  }
}

void kiln_rmsnorm(const float *x, const float *weight, size_t rows, size_t C, float eps, float *out, float *rstd) {
  if (rows == 0 || C == 0) return;
  rms_job j = { .x = x, .w = weight, .out = out, .s = rstd, .rows = rows, .C = C, .eps = eps };
  kiln_parallel_for(rows, row_chunk(C), row_min(C), rms_fwd_rows, &j);
}

static void rms_bwd_rows(void *p, size_t r0, size_t r1) {
  rms_job *j = p;
  const size_t C = j->C;
  const float *w = j->w;
  for (size_t r = r0; r < r1; r++) {
    const float *x = j->x + r * C, *dy = j->dy + r * C; /* (C) each */
    float *dx = j->dx + r * C;                          /* (C) */
    const float s = j->rstd[r];
    float acc[LANES] = { 0 };
    size_t c = 0;
    for (; c + LANES <= C; c += LANES)
      for (int k = 0; k < LANES; k++) acc[k] += dy[c + k] * (w ? w[c + k] : 1.0f) * x[c + k];
    float dot = 0.0f;
    for (int k = 0; k < LANES; k++) dot += acc[k];
    for (; c < C; c++) dot += dy[c] * (w ? w[c] : 1.0f) * x[c];
    const float k3 = s * s * s * dot / (float)C;
    if (w) for (c = 0; c < C; c++) dx[c] = s * dy[c] * w[c] - x[c] * k3;
    else for (c = 0; c < C; c++) dx[c] = s * dy[c] - x[c] * k3;
    if (j->pw) { /* this row's share of dweight, into the partial sum of its fixed block of rows */
      float *pw = j->pw + (r / row_chunk(C)) * C; /* (C) */
      for (c = 0; c < C; c++) pw[c] += dy[c] * x[c] * s;
    }
  }
}

void kiln_rmsnorm_backward(const float *dy, const float *x, const float *weight, const float *rstd, size_t rows,
                           size_t C, float *dx, float *dweight) {
  if (rows == 0 || C == 0) return;
  size_t block = row_chunk(C), blocks = (rows + block - 1) / block;
  float *part = NULL; /* (blocks, C) dweight partials */
  if (dweight) {
    part = calloc(blocks * C, sizeof(float));
    if (!part) { /* out of memory for the partials: accumulate in row order, one thread */
      for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < C; c++) dweight[c] += dy[r * C + c] * x[r * C + c] * rstd[r];
    }
  }
  rms_job j = { .dy = dy, .x = x, .w = weight, .rstd = rstd, .dx = dx, .pw = part, .rows = rows, .C = C };
  kiln_parallel_for(rows, row_chunk(C), row_min(C), rms_bwd_rows, &j);
  if (!part) return;
  for (size_t k = 0; k < blocks; k++)
    for (size_t c = 0; c < C; c++) dweight[c] += part[k * C + c];
  free(part);
}

typedef struct {
  const float *x;
  float *out;
  const int32_t *starts;
  const double *inv; /* (HS/2) theta^(-2i/HS) */
  size_t T, NH, HS;
  int inverse;
} rope_job;

/* One (b, t) row of NH heads: the angles are computed once and applied to every head. */
static void rope_rows(void *p, size_t r0, size_t r1) {
  rope_job *j = p;
  const size_t half = j->HS / 2, W = j->NH * j->HS;
  float cs[512], sn[512]; /* (HS/2) each; HS <= 1024 is checked by the caller */
  for (size_t r = r0; r < r1; r++) {
    const double pos = (double)j->starts[r / j->T] + (double)(r % j->T);
    for (size_t i = 0; i < half; i++) {
      double a = pos * j->inv[i];
      cs[i] = (float)cos(a);
      sn[i] = (float)(j->inverse ? -sin(a) : sin(a));
    }
    for (size_t h = 0; h < j->NH; h++) {
      const float *x = j->x + r * W + h * j->HS; /* (HS) */
      float *out = j->out + r * W + h * j->HS;   /* (HS) */
      for (size_t i = 0; i < half; i++) {
        float x1 = x[i], x2 = x[i + half];
        out[i] = x1 * cs[i] - x2 * sn[i];
        out[i + half] = x2 * cs[i] + x1 * sn[i];
      }
    }
  }
}

int kiln_rope(const float *x, size_t B, size_t T, size_t NH, size_t HS, double theta, const int32_t *starts, int inverse,
              float *out) {
  if (HS % 2 != 0 || HS > 1024) return -1;
  if (B == 0 || T == 0 || NH == 0 || HS == 0) return 0;
  double inv[512]; /* (HS/2) */
  for (size_t i = 0; i < HS / 2; i++) inv[i] = pow(theta, -2.0 * (double)i / (double)HS);
  rope_job j = { .x = x, .out = out, .starts = starts, .inv = inv, .T = T, .NH = NH, .HS = HS, .inverse = inverse };
  kiln_parallel_for(B * T, row_chunk(NH * HS), row_min(NH * HS), rope_rows, &j);
  return 0;
}

/* Batch normalisation over x (N, C, HW): per-channel statistics (two passes, double accumulators), the affine
 * normalisation, and its gradient. Threads take fixed ranges of channels, so every sum runs in the same order. */
#include "kiln.h"
#include <stddef.h>

typedef struct {
  const float *x, *dy, *mean, *invstd, *w, *b;
  float *out, *m, *v, *dx, *dw, *db;
  size_t N, C, HW;
  int batch_stats;
} bn_job;

static size_t channel_chunk(size_t N, size_t HW) {
  size_t per = N * HW;
  size_t c = 16384 / (per ? per : 1);
  return c ? c : 1;
}

static void stats_channels(void *p, size_t c0, size_t c1) {
  bn_job *j = p;
  const size_t N = j->N, C = j->C, HW = j->HW, count = N * HW;
  for (size_t c = c0; c < c1; c++) {
    double sum = 0.0, sq = 0.0;
    for (size_t n = 0; n < N; n++) {
      const float *x = j->x + (n * C + c) * HW; /* (HW) */
      for (size_t i = 0; i < HW; i++) sum += x[i];
    }
    double m = count ? sum / (double)count : 0.0;
    for (size_t n = 0; n < N; n++) {
      const float *x = j->x + (n * C + c) * HW;
      for (size_t i = 0; i < HW; i++) { double d = x[i] - m; sq += d * d; }
    }
    j->m[c] = (float)m;
    j->v[c] = count ? (float)(sq / (double)count) : 0.0f;
  }
}

void kiln_batchnorm_stats(const float *x, size_t N, size_t C, size_t HW, float *mean, float *variance) {
  bn_job j = { .x = x, .m = mean, .v = variance, .N = N, .C = C, .HW = HW };
  size_t chunk = channel_chunk(N, HW);
  kiln_parallel_for(C, chunk, 2 * chunk, stats_channels, &j);
}

static void norm_planes(void *p, size_t r0, size_t r1) {
  bn_job *j = p;
  for (size_t r = r0; r < r1; r++) { /* plane r = (n, c) */
    size_t c = r % j->C;
    float scale = j->invstd[c] * (j->w ? j->w[c] : 1.0f);
    float shift = (j->b ? j->b[c] : 0.0f) - j->mean[c] * scale;
    const float *x = j->x + r * j->HW;
    float *out = j->out + r * j->HW;
    for (size_t i = 0; i < j->HW; i++) out[i] = x[i] * scale + shift;
  }
}

void kiln_batchnorm(const float *x, const float *mean, const float *invstd, const float *weight, const float *bias,
                    size_t N, size_t C, size_t HW, float *out) {
  bn_job j = { .x = x, .mean = mean, .invstd = invstd, .w = weight, .b = bias, .out = out, .N = N, .C = C, .HW = HW };
  size_t chunk = 16384 / (HW ? HW : 1);
  if (chunk == 0) chunk = 1;
  kiln_parallel_for(N * C, chunk, 2 * chunk, norm_planes, &j);
}

static void backward_channels(void *p, size_t c0, size_t c1) {
  bn_job *j = p;
  const size_t N = j->N, C = j->C, HW = j->HW, count = N * HW;
  for (size_t c = c0; c < c1; c++) {
    const float m = j->mean[c], r = j->invstd[c];
    double sdy = 0.0, sdyx = 0.0;
    for (size_t n = 0; n < N; n++) {
      const float *dy = j->dy + (n * C + c) * HW, *x = j->x + (n * C + c) * HW;
      for (size_t i = 0; i < HW; i++) { sdy += dy[i]; sdyx += (double)dy[i] * (x[i] - m) * r; }
    }
    if (j->dw) j->dw[c] = (float)sdyx;
    if (j->db) j->db[c] = (float)sdy;
    if (!j->dx) continue;
    const float k = r * (j->w ? j->w[c] : 1.0f);
    const float a = j->batch_stats && count ? (float)(sdy / (double)count) : 0.0f;
    const float b = j->batch_stats && count ? (float)(sdyx / (double)count) : 0.0f;
    for (size_t n = 0; n < N; n++) {
      const float *dy = j->dy + (n * C + c) * HW, *x = j->x + (n * C + c) * HW;
      float *dx = j->dx + (n * C + c) * HW;
      for (size_t i = 0; i < HW; i++) dx[i] = k * (dy[i] - a - (x[i] - m) * r * b);
    }
  }
}

void kiln_batchnorm_backward(const float *dy, const float *x, const float *mean, const float *invstd,
                             const float *weight, size_t N, size_t C, size_t HW, int batch_stats, float *dx, float *dweight,
                             float *dbias) {
  bn_job j = { .dy = dy, .x = x, .mean = mean, .invstd = invstd, .w = weight, .dx = dx, .dw = dweight, .db = dbias,
               .N = N, .C = C, .HW = HW, .batch_stats = batch_stats };
  size_t chunk = channel_chunk(N, HW);
  kiln_parallel_for(C, chunk, 2 * chunk, backward_channels, &j);
}

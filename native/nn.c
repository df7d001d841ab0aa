/* Fused kernels: softmax / log-softmax, layer norm, cross-entropy with ignore-index and label smoothing,
 * AdamW. Row-parallel in fixed chunks; reductions across rows (layer norm's dweight, dbias) are threaded
 * over columns so every sum runs in row order, as in the reference. */
#include "kiln.h"
#include "vmath.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#define KILN_X86 1
#endif

#define CHUNK_ELEMS 16384
#define MIN_PAR 32768

static size_t row_chunk(size_t cols) { size_t c = CHUNK_ELEMS / (cols ? cols : 1); return c ? c : 1; }
static size_t row_min(size_t cols) { return MIN_PAR / (cols ? cols : 1) + 1; }

/* ---------------- softmax ---------------- */

typedef struct {
  const float *x, *y, *dy, *w, *b, *mean, *rstd, *lse, *dl;
  const int32_t *t;
  float *out, *dx, *dw, *db, *m, *s;
  float *pw, *pb; /* layer norm backward: (blocks, cols) partial dweight, dbias per row_chunk(cols) rows */
  size_t rows, cols;
  int log, ignore;
  float eps, smooth;
  long bad;
} nn_job;

static void softmax_rows(void *p, size_t r0, size_t r1) {
  nn_job *j = p;
  const size_t cols = j->cols;
  for (size_t r = r0; r < r1; r++) {
    const float *x = j->x + r * cols;
    float *out = j->out + r * cols;
    float max = kiln_row_max(x, cols);
    if (max == -INFINITY) max = 0.0f;
    if (j->log) {
      float sum = kiln_exp_sum(x, max, NULL, cols);
      float l = max + logf(sum);
      for (size_t c = 0; c < cols; c++) out[c] = x[c] - l;
    } else {
      float sum = kiln_exp_sum(x, max, out, cols);
      float inv = 1.0f / sum;
      for (size_t c = 0; c < cols; c++) out[c] *= inv;
    }
  }
}

void kiln_softmax(const float *x, size_t rows, size_t cols, int log, float *out) {
  if (rows == 0 || cols == 0) return;
  nn_job j = { .x = x, .out = out, .rows = rows, .cols = cols, .log = log };
  kiln_parallel_for(rows, row_chunk(cols), row_min(cols), softmax_rows, &j);
}

static void softmax_backward_rows(void *p, size_t r0, size_t r1) {
  nn_job *j = p;
  const size_t cols = j->cols;
  for (size_t r = r0; r < r1; r++) {
    const float *y = j->y + r * cols, *dy = j->dy + r * cols;
    float *dx = j->dx + r * cols;
    float s = 0.0f;
    if (j->log) {
      for (size_t c = 0; c < cols; c++) s += dy[c];
      for (size_t c = 0; c < cols; c++) dx[c] = dy[c] - expf(y[c]) * s;
    } else {
      for (size_t c = 0; c < cols; c++) s += dy[c] * y[c];
      for (size_t c = 0; c < cols; c++) dx[c] = y[c] * (dy[c] - s);
    }
  }
}

void kiln_softmax_backward(const float *y, const float *dy, size_t rows, size_t cols, int log, float *dx) {
  if (rows == 0 || cols == 0) return;
  nn_job j = { .y = y, .dy = dy, .dx = dx, .rows = rows, .cols = cols, .log = log };
  kiln_parallel_for(rows, row_chunk(cols), row_min(cols), softmax_backward_rows, &j);
}

/* ---------------- layer norm ---------------- */

/* Row sums with 16 independent accumulators, so the compiler keeps them in one vector register (a single
 * accumulator chains every add on the previous one: 4 cycles each, 16x slower). The bodies are instantiated
 * per instruction set below and chosen at run time; the order of additions is fixed, so results do not
 * depend on the thread count. */
#define LN_LANES 16
#define LN_BODIES(SUFFIX, ATTR)                                                                            \
  ATTR static void ln_fwd_rows_##SUFFIX(const nn_job *j, size_t r0, size_t r1) {                          \
    const size_t C = j->cols;                                                                           \
    const float *w = j->w, *b = j->b;                                                                   \
    for (size_t r = r0; r < r1; r++) {                                                                  \
      const float *x = j->x + r * C; /* (C) */                                                          \
      float *out = j->out + r * C;   /* (C) */                                                          \
      float acc[LN_LANES] = { 0 };                                                                      \
      size_t c = 0;                                                                                     \
      for (; c + LN_LANES <= C; c += LN_LANES)                                                          \
        for (int k = 0; k < LN_LANES; k++) acc[k] += x[c + k];                                          \
      float m = 0.0f;                                                                                   \
      for (int k = 0; k < LN_LANES; k++) m += acc[k];                                                   \
      for (; c < C; c++) m += x[c];                                                                     \
      m /= (float)C;                                                                                    \
      float vacc[LN_LANES] = { 0 };                                                                     \
      for (c = 0; c + LN_LANES <= C; c += LN_LANES)                                                     \
        for (int k = 0; k < LN_LANES; k++) { float d = x[c + k] - m; vacc[k] += d * d; }                \
      float v = 0.0f;                                                                                   \
      for (int k = 0; k < LN_LANES; k++) v += vacc[k];                                                  \
      for (; c < C; c++) { float d = x[c] - m; v += d * d; }                                            \
      v /= (float)C;                                                                                    \
      float s = 1.0f / sqrtf(v + j->eps);                                                               \
      if (w && b) for (c = 0; c < C; c++) out[c] = (x[c] - m) * s * w[c] + b[c];                        \
      else if (w) for (c = 0; c < C; c++) out[c] = (x[c] - m) * s * w[c];                               \
      else if (b) for (c = 0; c < C; c++) out[c] = (x[c] - m) * s + b[c];                               \
      else for (c = 0; c < C; c++) out[c] = (x[c] - m) * s;                                             \
      j->m[r] = m;                                                                                      \
      j->s[r] = s;                                                                                      \
    }                                                                                                   \
  }                                                                                                     \
  ATTR static void ln_bwd_rows_##SUFFIX(const nn_job *j, size_t r0, size_t r1) {                          \
    const size_t C = j->cols;                                                                           \
    const float *w = j->w;                                                                              \
    for (size_t r = r0; r < r1; r++) {                                                                  \
      const float *x = j->x + r * C, *dy = j->dy + r * C; /* (C) each */                                \
      float *dx = j->dx + r * C;                          /* (C) */                                     \
      const float m = j->mean[r], s = j->rstd[r];                                                       \
      float aD[LN_LANES] = { 0 }, aDN[LN_LANES] = { 0 };                                                \
      size_t c = 0;                                                                                     \
      for (; c + LN_LANES <= C; c += LN_LANES)                                                          \
        for (int k = 0; k < LN_LANES; k++) {                                                            \
          float d = dy[c + k] * (w ? w[c + k] : 1.0f);                                                  \
          aD[k] += d;                                                                                   \
          aDN[k] += d * ((x[c + k] - m) * s);                                                           \
        }                                                                                               \
      float sumD = 0.0f, sumDN = 0.0f;                                                                  \
      for (int k = 0; k < LN_LANES; k++) { sumD += aD[k]; sumDN += aDN[k]; }                            \
      for (; c < C; c++) {                                                                              \
        float d = dy[c] * (w ? w[c] : 1.0f);                                                            \
        sumD += d;                                                                                      \
        sumDN += d * ((x[c] - m) * s);                                                                  \
      }                                                                                                 \
      sumD /= (float)C;                                                                                 \
      sumDN /= (float)C;                                                                                \
      if (w) for (c = 0; c < C; c++) dx[c] = s * (dy[c] * w[c] - sumD - (x[c] - m) * s * sumDN);        \
      else for (c = 0; c < C; c++) dx[c] = s * (dy[c] - sumD - (x[c] - m) * s * sumDN);                 \
      /* this row's share of dweight, dbias, into the partial sums of its fixed block of rows */        \
      size_t blk_ = r / row_chunk(C);                                                                   \
      float *pw = j->pw ? j->pw + blk_ * C : NULL, *pb = j->pb ? j->pb + blk_ * C : NULL;               \
      if (pw) for (c = 0; c < C; c++) pw[c] += dy[c] * ((x[c] - m) * s);                                \
      if (pb) for (c = 0; c < C; c++) pb[c] += dy[c];                                                   \
    }                                                                                                   \
  }

LN_BODIES(c, )
#ifdef KILN_X86
LN_BODIES(avx2, __attribute__((target("avx2,fma"))))
LN_BODIES(avx512, __attribute__((target("avx512f,avx2,fma"))))
#define ISA_DISPATCH(name, j, a, b)                                                                          \
  do {                                                                                                  \
    int isa_ = kiln_isa();                                                                              \
    if (isa_ == KILN_ISA_AVX512) name##_avx512(j, a, b);                                                 \
    else if (isa_ == KILN_ISA_AVX2) name##_avx2(j, a, b);                                                \
    else name##_c(j, a, b);                                                                             \
  } while (0)
#else
#define ISA_DISPATCH(name, j, a, b) name##_c(j, a, b)
#endif

static void layernorm_rows(void *p, size_t r0, size_t r1) { ISA_DISPATCH(ln_fwd_rows, (const nn_job *)p, r0, r1); }
static void layernorm_backward_rows(void *p, size_t r0, size_t r1) { ISA_DISPATCH(ln_bwd_rows, (const nn_job *)p, r0, r1); }

void kiln_layernorm(const float *x, const float *weight, const float *bias, size_t rows, size_t C, float eps,
                    float *out, float *mean, float *rstd) {
  if (rows == 0) return;
  nn_job j = { .x = x, .w = weight, .b = bias, .out = out, .m = mean, .s = rstd, .rows = rows, .cols = C, .eps = eps };
  kiln_parallel_for(rows, row_chunk(C), row_min(C), layernorm_rows, &j);
}

void kiln_layernorm_serial(const float *x, const float *weight, const float *bias, size_t rows, size_t C, float eps,
                           float *out, float *mean, float *rstd) {
  nn_job j = { .x = x, .w = weight, .b = bias, .out = out, .m = mean, .s = rstd, .rows = rows, .cols = C, .eps = eps };
  if (rows) layernorm_rows(&j, 0, rows);
}

void kiln_layernorm_backward(const float *dy, const float *x, const float *weight, const float *mean,
                             const float *rstd, size_t rows, size_t C, float *dx, float *dweight, float *dbias) {
  if (rows == 0 || C == 0) return;
  /* dweight and dbias are sums over rows: each fixed block of rows sums into its own partial row during the
   * row pass (no second pass over dy and x), then the blocks are added in order. Blocks do not depend on the
   * thread count, so neither does the result. */
  size_t block = row_chunk(C), blocks = (rows + block - 1) / block;
  float *part = NULL; /* (2, blocks, C): dweight partials, then dbias partials */
  if (dweight || dbias) {
    size_t bytes = (2 * blocks * C * sizeof(float) + 63) & ~(size_t)63;
    part = aligned_alloc(64, bytes);
    if (part) memset(part, 0, bytes);
  }
  nn_job j = { .dy = dy, .x = x, .w = weight, .mean = mean, .rstd = rstd, .rows = rows, .cols = C, .dx = dx,
               .dw = dweight, .db = dbias };
  if (part) { j.pw = dweight ? part : NULL; j.pb = dbias ? part + blocks * C : NULL; }
  kiln_parallel_for(rows, row_chunk(C), row_min(C), layernorm_backward_rows, &j);
  if (!part) { /* out of memory for the partials: accumulate in row order instead, one thread */
    if (dweight || dbias) for (size_t r = 0; r < rows; r++) {
      const float *xr = x + r * C, *dyr = dy + r * C;
      for (size_t c = 0; c < C; c++) {
        if (dweight) dweight[c] += dyr[c] * ((xr[c] - mean[r]) * rstd[r]);
        if (dbias) dbias[c] += dyr[c];
      }
    }
    return;
  }
  for (size_t k = 0; k < blocks; k++) {
    if (dweight) for (size_t c = 0; c < C; c++) dweight[c] += part[k * C + c];
    if (dbias) for (size_t c = 0; c < C; c++) dbias[c] += part[(blocks + k) * C + c];
  }
  free(part);
}

/* ---------------- cross-entropy ---------------- */

static void ce_rows(void *p, size_t r0, size_t r1) {
  nn_job *j = p;
  const size_t V = j->cols;
  for (size_t n = r0; n < r1; n++) {
    const float *x = j->x + n * V;
    float max = kiln_row_max(x, V);
    float sum = kiln_exp_sum(x, max, NULL, V);
    float l = max + logf(sum);
    j->s[n] = l;
    int32_t t = j->t[n];
    if (t == j->ignore) { j->out[n] = 0.0f; continue; }
    if (t < 0 || (size_t)t >= V) { j->out[n] = NAN; continue; } /* reported by the caller's check */
    float loss = (1.0f - j->smooth) * (l - x[t]);
    if (j->smooth > 0.0f) {
      float sl = 0.0f;
      for (size_t c = 0; c < V; c++) sl += x[c];
      loss += j->smooth * (l - sl / (float)V);
    }
    j->out[n] = loss;
  }
}

long kiln_cross_entropy(const float *logits, const int32_t *targets, size_t N, size_t V, int ignoreIndex,
                        float labelSmoothing, float *losses, float *lse) {
  for (size_t n = 0; n < N; n++) {
    int32_t t = targets[n];
    if (t != ignoreIndex && (t < 0 || (size_t)t >= V)) return (long)n;
  }
  if (N == 0) return -1;
  nn_job j = { .x = logits, .t = targets, .rows = N, .cols = V, .ignore = ignoreIndex, .smooth = labelSmoothing,
               .out = losses, .s = lse };
  kiln_parallel_for(N, row_chunk(V), row_min(V), ce_rows, &j);
  return -1;
}

static void ce_backward_rows(void *p, size_t r0, size_t r1) {
  nn_job *j = p;
  const size_t V = j->cols;
  const float smooth = j->smooth / (float)V;
  for (size_t n = r0; n < r1; n++) {
    const float *x = j->x + n * V;
    float *dl = j->dx + n * V;
    int32_t t = j->t[n];
    if (t == j->ignore || t < 0 || (size_t)t >= V) { memset(dl, 0, V * sizeof(float)); continue; }
    float g = j->dl[n];
    kiln_exp_sum(x, j->lse[n], dl, V);
    for (size_t c = 0; c < V; c++) dl[c] = (dl[c] - smooth) * g;
    dl[t] -= (1.0f - j->smooth) * g;
  }
}

void kiln_cross_entropy_backward(const float *logits, const int32_t *targets, const float *lse, const float *dlosses,
                                 size_t N, size_t V, int ignoreIndex, float labelSmoothing, float *dlogits) {
  if (N == 0 || V == 0) return;
  nn_job j = { .x = logits, .t = targets, .lse = lse, .dl = dlosses, .rows = N, .cols = V, .ignore = ignoreIndex,
               .smooth = labelSmoothing, .dx = dlogits };
  kiln_parallel_for(N, row_chunk(V), row_min(V), ce_backward_rows, &j);
}

/* ---------------- AdamW ---------------- */

typedef struct { float *p, *m, *v; const float *g; double lr, b1, b2, eps, decay, step, bc2s; } adam_job;

/* in double, as the reference: the update is memory-bound, so the wider arithmetic costs nothing */
/* Double precision inside, as the reference backend computes, so both agree to float32 rounding. Compiled per
 * instruction set: the divide and square root dominate, and AVX-512 does eight of each at once. */
#define ADAMW_BODY(SUFFIX, ATTR)                                                                           \
  ATTR static void adamw_range_##SUFFIX(const adam_job *j, size_t b, size_t e) {                           \
    float *restrict p = j->p, *restrict m = j->m, *restrict v = j->v; /* (n) each */                   \
    const float *restrict g = j->g;                                   /* (n) */                        \
    const double b1 = j->b1, b2 = j->b2, c1 = 1.0 - j->b1, c2 = 1.0 - j->b2;                           \
    const double decay = j->decay, step = j->step, bc2s = j->bc2s, eps = j->eps;                       \
    for (size_t i = b; i < e; i++) {                                                                   \
      double gi = g[i];                                                                                \
      double mi = b1 * m[i] + c1 * gi;                                                                 \
      double vi = b2 * v[i] + c2 * gi * gi;                                                            \
      m[i] = (float)mi;                                                                                \
      v[i] = (float)vi;                                                                                \
      p[i] = (float)(p[i] * decay - step * mi / (sqrt(vi) / bc2s + eps));                              \
    }                                                                                                  \
  }

ADAMW_BODY(c, )
#ifdef KILN_X86
ADAMW_BODY(avx2, __attribute__((target("avx2,fma"))))
ADAMW_BODY(avx512, __attribute__((target("avx512f,avx2,fma"))))
#endif

static void adamw_range(void *q, size_t b, size_t e) { ISA_DISPATCH(adamw_range, (const adam_job *)q, b, e); }

void kiln_adamw(float *param, const float *grad, float *m, float *v, size_t n, double lr, double beta1, double beta2,
                double eps, double weightDecay, double bc1, double bc2) {
  adam_job j = { param, m, v, grad, lr, beta1, beta2, eps, 1.0 - lr * weightDecay, lr / bc1, sqrt(bc2) };
  kiln_parallel_for(n, CHUNK_ELEMS, MIN_PAR * 2, adamw_range, &j);
}

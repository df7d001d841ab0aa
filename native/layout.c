/* Reductions over the middle axis of an (outer, dim, inner) view, arg-max, and data movement: permute, slices,
 * index select/add (embedding gather and scatter-add), gather/scatter-add. indexAdd is threaded by destination
 * rows, so every destination row is summed in source order whatever the thread count. */
#include "kiln.h"
#include <math.h>
#include <string.h>

#define CHUNK 16384
#define MIN_PAR 131072

/* ---------------- reduce / argmax ---------------- */

typedef struct {
  int op; const float *x; size_t outer, dim, inner; float *out; int32_t *iout;
  const int32_t *idx; size_t k; const int *shape, *perm; int rank;
  size_t start, len, ddim;
} lay_job;

static void reduce_rows(void *p, size_t o0, size_t o1) {
  /* rows here are output rows of the (outer) axis when inner == 1, else outer slices */
  lay_job *j = p;
  const size_t dim = j->dim, inner = j->inner;
  for (size_t o = o0; o < o1; o++) {
    const float *x = j->x + o * dim * inner;
    float *out = j->out + o * inner;
    if (inner == 1) {
      if (j->op == R_SUM) {
        float acc[16] = { 0 };
        size_t d = 0;
        for (; d + 16 <= dim; d += 16)
          for (int t = 0; t < 16; t++) acc[t] += x[d + t];
        float s = 0.0f;
        for (int t = 0; t < 16; t++) s += acc[t];
        for (; d < dim; d++) s += x[d];
        out[0] = s;
      } else {
        int isMax = j->op == R_MAX;
        float cur = isMax ? -INFINITY : INFINITY;
        for (size_t d = 0; d < dim; d++) {
          float v = x[d];
          if (v != v) { cur = v; break; }
          if (isMax ? v > cur : v < cur) cur = v;
        }
        out[0] = cur;
      }
    } else if (j->op == R_SUM) {
      for (size_t i = 0; i < inner; i++) out[i] = 0.0f;
      for (size_t d = 0; d < dim; d++) {
        const float *row = x + d * inner;
        for (size_t i = 0; i < inner; i++) out[i] += row[i];
      }
    } else {
      int isMax = j->op == R_MAX;
      for (size_t i = 0; i < inner; i++) out[i] = isMax ? -INFINITY : INFINITY;
      for (size_t d = 0; d < dim; d++) {
        const float *row = x + d * inner;
        if (isMax) {
          for (size_t i = 0; i < inner; i++) { float v = row[i], c = out[i]; out[i] = (v > c || v != v) && c == c ? v : c; }
        } else {
          for (size_t i = 0; i < inner; i++) { float v = row[i], c = out[i]; out[i] = (v < c || v != v) && c == c ? v : c; }
        }
      }
    }
  }
}

void kiln_reduce(int op, const float *x, size_t outer, size_t dim, size_t inner, float *out) {
  if (outer == 0 || inner == 0) return;
  lay_job j = { .op = op, .x = x, .outer = outer, .dim = dim, .inner = inner, .out = out };
  size_t per = dim * inner > 0 ? dim * inner : 1;
  size_t chunk = CHUNK / per ? CHUNK / per : 1;
  kiln_parallel_for(outer, chunk, MIN_PAR / per + 1, reduce_rows, &j);
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
/* One contiguous row (x (n)): what the loop in argmax_rows finds (the first NaN, else the first index of the
 * largest value, 0 when none is above -inf), in two vector passes: the maximum and whether a NaN is there, then the
 * first index equal to it (the loop keeps the first of equal values, +0 and -0 included). A sampler's greedy pick
 * over a 4096-token vocabulary: ~2.5 us with the loop. */
__attribute__((target("avx512f")))
static int32_t argmax_row_avx512(const float *x, size_t n) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  __mmask16 nan = 0;
  size_t d = 0;
  for (; d + 16 <= n; d += 16) {
    const __m512 v = _mm512_loadu_ps(x + d);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    mx = _mm512_max_ps(mx, v);
  }
  float best = _mm512_reduce_max_ps(mx);
  for (size_t e = d; e < n; e++) {
    if (x[e] != x[e]) nan = 1;
    else if (x[e] > best) best = x[e];
  }
  if (nan) {
    for (size_t e = 0; e < n; e++) if (x[e] != x[e]) return (int32_t)e;
  }
  const __m512 b = _mm512_set1_ps(best);
  for (d = 0; d + 16 <= n; d += 16) {
    const __mmask16 eq = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + d), b, _CMP_EQ_OQ);
    if (eq) return (int32_t)(d + (size_t)__builtin_ctz(eq));
  }
  for (; d < n; d++) if (x[d] == best) return (int32_t)d;
  return 0;
}
#endif

static void argmax_rows(void *p, size_t o0, size_t o1) {
  lay_job *j = p;
  const size_t dim = j->dim, inner = j->inner;
  for (size_t o = o0; o < o1; o++) {
    const float *x = j->x + o * dim * inner;
#if defined(__x86_64__) || defined(__i386__)
    if (inner == 1 && kiln_isa() == KILN_ISA_AVX512) {
      j->iout[o] = argmax_row_avx512(x, dim);
      continue;
    }
#endif
    for (size_t i = 0; i < inner; i++) {
      float best = -INFINITY;
      int32_t bi = 0;
      for (size_t d = 0; d < dim; d++) {
        float v = x[d * inner + i];
        if (v != v) { bi = (int32_t)d; break; }
        if (v > best) { best = v; bi = (int32_t)d; }
      }
      j->iout[o * inner + i] = bi;
    }
  }
}

void kiln_argmax(const float *x, size_t outer, size_t dim, size_t inner, int32_t *out) {
  if (outer == 0 || inner == 0) return;
  lay_job j = { .x = x, .outer = outer, .dim = dim, .inner = inner, .iout = out };
  size_t per = dim * inner > 0 ? dim * inner : 1;
  size_t chunk = CHUNK / per ? CHUNK / per : 1;
  kiln_parallel_for(outer, chunk, MIN_PAR / per + 1, argmax_rows, &j);
}

/* ---------------- permute ---------------- */

typedef struct {
  const float *x; float *out; int rank; long oshape[KILN_MAX_RANK], istride[KILN_MAX_RANK]; size_t n;
} perm_job;

static void permute_rows(void *p, size_t r0, size_t r1) {
  perm_job *j = p;
  const int rank = j->rank;
  long idx[KILN_MAX_RANK];
  size_t rem = r0;
  long src = 0;
  for (int d = rank - 2; d >= 0; d--) {
    idx[d] = (long)(rem % (size_t)j->oshape[d]);
    rem /= (size_t)j->oshape[d];
    src += idx[d] * j->istride[d];
  }
  const size_t n = j->n;
  const long ls = j->istride[rank - 1];
  for (size_t r = r0; r < r1; r++) {
    float *o = j->out + r * n;
    const float *x = j->x + src;
    if (ls == 1) memcpy(o, x, n * sizeof(float));
    else for (size_t i = 0; i < n; i++) o[i] = x[(long)i * ls];
    for (int d = rank - 2; d >= 0; d--) {
      idx[d]++;
      src += j->istride[d];
      if (idx[d] < j->oshape[d]) break;
      src -= j->istride[d] * j->oshape[d];
      idx[d] = 0;
    }
  }
}

void kiln_permute(const float *x, const int *shape, const int *perm, int rank, float *out) {
  size_t total = 1;
  for (int d = 0; d < rank; d++) total *= (size_t)shape[d];
  if (total == 0) return;
  if (rank == 0) { out[0] = x[0]; return; }
  long in_stride[KILN_MAX_RANK];
  long s = 1;
  for (int d = rank - 1; d >= 0; d--) { in_stride[d] = s; s *= shape[d]; }
  /* drop output axes of size 1, merge output axes that are consecutive in the input */
  perm_job j;
  int r = 0;
  for (int d = 0; d < rank; d++) {
    long sz = shape[perm[d]], st = in_stride[perm[d]];
    if (sz == 1) continue;
    if (r > 0 && j.istride[r - 1] == st * sz) { j.oshape[r - 1] *= sz; j.istride[r - 1] = st; continue; }
    j.oshape[r] = sz; j.istride[r] = st; r++;
  }
  if (r == 0) { j.oshape[0] = 1; j.istride[0] = 1; r = 1; }
  j.rank = r; j.x = x; j.out = out; j.n = (size_t)j.oshape[r - 1];
  size_t rows = total / j.n;
  size_t chunk = CHUNK / j.n ? CHUNK / j.n : 1;
  kiln_parallel_for(rows, chunk, MIN_PAR / j.n + 1, permute_rows, &j);
}

/* ---------------- slices ---------------- */

static void slice_copy_rows(void *p, size_t o0, size_t o1) {
  lay_job *j = p;
  size_t chunk = j->len * j->inner;
  for (size_t o = o0; o < o1; o++)
    memcpy(j->out + o * chunk, j->x + (o * j->ddim + j->start) * j->inner, chunk * sizeof(float));
}
static void slice_assign_rows(void *p, size_t o0, size_t o1) {
  lay_job *j = p;
  size_t chunk = j->len * j->inner;
  for (size_t o = o0; o < o1; o++)
    memcpy(j->out + (o * j->ddim + j->start) * j->inner, j->x + o * chunk, chunk * sizeof(float));
}

void kiln_slice_copy(const float *src, size_t outer, size_t srcDim, size_t inner, size_t start, size_t len, float *dst) {
  size_t per = len * inner;
  if (per == 0 || outer == 0) return;
  lay_job j = { .x = src, .out = dst, .outer = outer, .ddim = srcDim, .inner = inner, .start = start, .len = len };
  kiln_parallel_for(outer, CHUNK * 4 / per + 1, MIN_PAR * 4 / per + 1, slice_copy_rows, &j);
}

void kiln_slice_assign(const float *src, size_t outer, size_t dstDim, size_t inner, size_t start, size_t len, float *dst) {
  size_t per = len * inner;
  if (per == 0 || outer == 0) return;
  lay_job j = { .x = src, .out = dst, .outer = outer, .ddim = dstDim, .inner = inner, .start = start, .len = len };
  kiln_parallel_for(outer, CHUNK * 4 / per + 1, MIN_PAR * 4 / per + 1, slice_assign_rows, &j);
}

/* ---------------- index select / add, gather / scatter-add ---------------- */

/* rows of the (outer, k) output */
static void index_select_rows(void *p, size_t r0, size_t r1) {
  lay_job *j = p;
  for (size_t r = r0; r < r1; r++) {
    size_t o = r / j->k, q = r % j->k;
    memcpy(j->out + r * j->inner, j->x + (o * j->dim + (size_t)j->idx[q]) * j->inner, j->inner * sizeof(float));
  }
}

void kiln_index_select(const float *x, size_t outer, size_t dim, size_t inner, const int32_t *idx, size_t k, float *out) {
  if (outer == 0 || k == 0 || inner == 0) return;
  lay_job j = { .x = x, .out = out, .outer = outer, .dim = dim, .inner = inner, .idx = idx, .k = k };
  kiln_parallel_for(outer * k, CHUNK / inner + 1, MIN_PAR / inner + 1, index_select_rows, &j);
}

/* destination rows [d0, d1) of every outer slice; each thread scans all sources in order */
static void index_add_rows(void *p, size_t d0, size_t d1) {
  lay_job *j = p;
  const size_t inner = j->inner, k = j->k, dim = j->dim;
  float *dx = j->out;
  for (size_t o = 0; o < j->outer; o++) {
    for (size_t q = 0; q < k; q++) {
      size_t d = (size_t)j->idx[q];
      if (d < d0 || d >= d1) continue;
      float *to = dx + (o * dim + d) * inner;
      const float *from = j->x + (o * k + q) * inner;
      for (size_t i = 0; i < inner; i++) to[i] += from[i];
    }
  }
}

void kiln_index_add(const float *dout, size_t outer, size_t dim, size_t inner, const int32_t *idx, size_t k, float *dx) {
  if (outer == 0 || k == 0 || inner == 0 || dim == 0) return;
  lay_job j = { .x = dout, .out = dx, .outer = outer, .dim = dim, .inner = inner, .idx = idx, .k = k };
  size_t work = outer * k * inner;
  size_t chunk = (dim + 15) / 16;
  if (chunk < 1) chunk = 1;
  kiln_parallel_for(dim, chunk, work >= MIN_PAR ? 2 : dim + 1, index_add_rows, &j);
}

static void gather_rows(void *p, size_t r0, size_t r1) {
  lay_job *j = p;
  const size_t inner = j->inner, k = j->k, dim = j->dim;
  for (size_t r = r0; r < r1; r++) {
    size_t o = r / k;
    const int32_t *ix = j->idx + r * inner;
    float *out = j->out + r * inner;
    const float *x = j->x + o * dim * inner;
    for (size_t i = 0; i < inner; i++) out[i] = x[(size_t)ix[i] * inner + i];
  }
}

void kiln_gather(const float *x, size_t outer, size_t dim, size_t inner, const int32_t *idx, size_t k, float *out) {
  if (outer == 0 || k == 0 || inner == 0) return;
  lay_job j = { .x = x, .out = out, .outer = outer, .dim = dim, .inner = inner, .idx = idx, .k = k };
  kiln_parallel_for(outer * k, CHUNK / inner + 1, MIN_PAR / inner + 1, gather_rows, &j);
}

/* outer slices are independent: thread over them; inside a slice, sources in order */
static void scatter_add_slices(void *p, size_t o0, size_t o1) {
  lay_job *j = p;
  const size_t inner = j->inner, k = j->k, dim = j->dim;
  for (size_t o = o0; o < o1; o++) {
    float *dx = j->out + o * dim * inner;
    for (size_t q = 0; q < k; q++) {
      size_t p0 = (o * k + q) * inner;
      for (size_t i = 0; i < inner; i++) dx[(size_t)j->idx[p0 + i] * inner + i] += j->x[p0 + i];
    }
  }
}

void kiln_scatter_add(const float *dout, size_t outer, size_t dim, size_t inner, const int32_t *idx, size_t k, float *dx) {
  if (outer == 0 || k == 0 || inner == 0) return;
  lay_job j = { .x = dout, .out = dx, .outer = outer, .dim = dim, .inner = inner, .idx = idx, .k = k };
  size_t per = k * inner;
  kiln_parallel_for(outer, CHUNK / per + 1, MIN_PAR / per + 1, scatter_add_slices, &j);
}

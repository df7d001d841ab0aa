/* Causal multi-head attention, forward and backward, flash-style: per (batch, head) and block of query rows,
 * scores exist only for that block (never the whole T x T matrix of every head), and the forward keeps the
 * log-sum-exp of each row for the backward pass. q, k, v are (B, T, NH, HS) with heads interleaved in
 * channels; each head is copied to contiguous (T, HS) buffers and multiplied with the packed GEMM. Work is
 * split by (batch, head[, query block]) in fixed order, so results do not depend on the thread count. */
#include "kiln.h"
#include "vmath.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KILN_X86 1
#endif
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#define KILN_SIMD128 1
#endif

#define QB 64
/* Up to this many query rows (a decoding step: one new token per sequence) take the direct path below. */
#define DECODE_MAX_TQ 4

typedef struct {
  const float *q, *k, *v, *out_in, *dout, *lse_in;
  float *out, *lse, *dq, *dk, *dv;
  int B, Tq, Tk, NH, HS, causal, nqb;
  long ld; /* row stride of q, k, v, dq, dk, dv; out and dout are (B, Tq, NH * HS) */
  float scale;
  size_t tasks;
  int failed;
} att_job;

/* dst (T, HS) = head h of src, rows of stride ld */
static void head_gather(float *dst, const float *src, int T, long ld, int HS, int h) {
  for (int t = 0; t < T; t++) memcpy(dst + (size_t)t * HS, src + (size_t)t * ld + (size_t)h * HS, HS * sizeof(float));
}
/* head h of dst, rows of stride ld = src (T, HS) */
static void head_scatter(float *dst, const float *src, int T, long ld, int HS, int h) {
  for (int t = 0; t < T; t++) memcpy(dst + (size_t)t * ld + (size_t)h * HS, src + (size_t)t * HS, HS * sizeof(float));
}
/* the first C of each of `rows` rows of stride ld = 0 */
static void zero_rows(float *p, size_t rows, size_t C, long ld) {
  for (size_t r = 0; r < rows; r++) memset(p + r * (size_t)ld, 0, C * sizeof(float));
}

/* keys visible to query row i */
static inline int visible(const att_job *j, int i) {
  if (!j->causal) return j->Tk;
  int n = i + (j->Tk - j->Tq) + 1;
  return n < 0 ? 0 : n > j->Tk ? j->Tk : n;
}

static void forward_task(att_job *j, size_t task, int tid, float *scratch) {
  const int HS = j->HS, C = j->NH * HS, Tq = j->Tq, Tk = j->Tk;
  size_t bh = task / (size_t)j->nqb;
  /* Later query blocks see more keys and cost more; odd heads take their blocks in reverse order so that
   * threads taking every n-th task get even shares (with two blocks and two threads, one thread would
   * otherwise get every long block). */
  int qb = (int)(task % (size_t)j->nqb);
  if (bh & 1) qb = j->nqb - 1 - qb;
  int h = (int)(bh % (size_t)j->NH), b = (int)(bh / (size_t)j->NH);
  int i0 = qb * QB, i1 = i0 + QB < Tq ? i0 + QB : Tq, bq = i1 - i0;
  int kmax = visible(j, i1 - 1);
  float *Qh = scratch, *Kh = Qh + (size_t)QB * HS, *Vh = Kh + (size_t)Tk * HS, *S = Vh + (size_t)Tk * HS;
  float *Oh = S + (size_t)QB * Tk;
  float *lse = j->lse + ((size_t)b * j->NH + h) * Tq;
  if (kmax == 0) {
    for (int i = i0; i < i1; i++) {
      memset(j->out + ((size_t)b * Tq + i) * C + (size_t)h * HS, 0, HS * sizeof(float));
      lse[i] = -INFINITY;
    }
    return;
  }
  const long ld = j->ld;
  head_gather(Qh, j->q + ((size_t)b * Tq + i0) * ld, bq, ld, HS, h);
  head_gather(Kh, j->k + (size_t)b * Tk * ld, kmax, ld, HS, h);
  head_gather(Vh, j->v + (size_t)b * Tk * ld, kmax, ld, HS, h);
  kiln_gemm_serial(tid, 0, 1, bq, kmax, HS, j->scale, Qh, Kh, 0.0f, S);
  for (int r = 0; r < bq; r++) {
    float *s = S + (size_t)r * kmax;
    int n = visible(j, i0 + r);
    if (n == 0) { memset(s, 0, kmax * sizeof(float)); lse[i0 + r] = -INFINITY; continue; }
    float max = kiln_row_max(s, (size_t)n);
    float sum = kiln_exp_sum(s, max, s, (size_t)n);
    float inv = 1.0f / sum;
    for (int c = 0; c < n; c++) s[c] *= inv;
    if (n < kmax) memset(s + n, 0, (size_t)(kmax - n) * sizeof(float));
    lse[i0 + r] = max + logf(sum);
  }
  kiln_gemm_serial(tid, 0, 0, bq, HS, kmax, 1.0f, S, Vh, 0.0f, Oh);
  head_scatter(j->out + ((size_t)b * Tq + i0) * C, Oh, bq, C, HS, h);
}

static void backward_task(att_job *j, size_t bh, int tid, float *scratch) {
  const int HS = j->HS, C = j->NH * HS, Tq = j->Tq, Tk = j->Tk;
  int h = (int)(bh % (size_t)j->NH), b = (int)(bh / (size_t)j->NH);
  float *Qh = scratch, *dOh = Qh + (size_t)Tq * HS, *Oh = dOh + (size_t)Tq * HS, *dQh = Oh + (size_t)Tq * HS;
  float *Kh = dQh + (size_t)Tq * HS, *Vh = Kh + (size_t)Tk * HS, *dKh = Vh + (size_t)Tk * HS;
  float *dVh = dKh + (size_t)Tk * HS, *P = dVh + (size_t)Tk * HS, *dP = P + (size_t)QB * Tk;
  const float *lse = j->lse_in + ((size_t)b * j->NH + h) * Tq;
  const long ld = j->ld;
  head_gather(Qh, j->q + (size_t)b * Tq * ld, Tq, ld, HS, h);
  head_gather(dOh, j->dout + (size_t)b * Tq * C, Tq, C, HS, h);
  head_gather(Oh, j->out_in + (size_t)b * Tq * C, Tq, C, HS, h);
  head_gather(Kh, j->k + (size_t)b * Tk * ld, Tk, ld, HS, h);
  head_gather(Vh, j->v + (size_t)b * Tk * ld, Tk, ld, HS, h);
  memset(dQh, 0, (size_t)Tq * HS * sizeof(float));
  memset(dKh, 0, (size_t)Tk * HS * sizeof(float));
  memset(dVh, 0, (size_t)Tk * HS * sizeof(float));
  for (int i0 = 0; i0 < Tq; i0 += QB) {
    int i1 = i0 + QB < Tq ? i0 + QB : Tq, bq = i1 - i0;
    int kmax = visible(j, i1 - 1);
    if (kmax == 0) continue;
    const float *Qb = Qh + (size_t)i0 * HS, *dOb = dOh + (size_t)i0 * HS;
    kiln_gemm_serial(tid, 0, 1, bq, kmax, HS, j->scale, Qb, Kh, 0.0f, P);
    kiln_gemm_serial(tid, 0, 1, bq, kmax, HS, 1.0f, dOb, Vh, 0.0f, dP);
    for (int r = 0; r < bq; r++) {
      float *p = P + (size_t)r * kmax, *dp = dP + (size_t)r * kmax;
      int n = visible(j, i0 + r);
      if (n > 0) {
        kiln_exp_sum(p, lse[i0 + r], p, (size_t)n);
        const float *o = Oh + (size_t)(i0 + r) * HS, *dO = dOb + (size_t)r * HS;
        float D = 0.0f;
        for (int d = 0; d < HS; d++) D += dO[d] * o[d];
        for (int c = 0; c < n; c++) dp[c] = p[c] * (dp[c] - D) * j->scale;
      }
      if (n < kmax) {
        memset(p + n, 0, (size_t)(kmax - n) * sizeof(float));
        memset(dp + n, 0, (size_t)(kmax - n) * sizeof(float));
      }
    }
    kiln_gemm_serial(tid, 1, 0, kmax, HS, bq, 1.0f, P, dOb, 1.0f, dVh);
    kiln_gemm_serial(tid, 0, 0, bq, HS, kmax, 1.0f, dP, Kh, 0.0f, dQh + (size_t)i0 * HS);
    kiln_gemm_serial(tid, 1, 0, kmax, HS, bq, 1.0f, dP, Qb, 1.0f, dKh);
  }
  head_scatter(j->dq + (size_t)b * Tq * ld, dQh, Tq, ld, HS, h);
  head_scatter(j->dk + (size_t)b * Tk * ld, dKh, Tk, ld, HS, h);
  head_scatter(j->dv + (size_t)b * Tk * ld, dVh, Tk, ld, HS, h);
}

/* ---- Decoding: a few query rows against the cache, straight from the strided q, k, v rows ----
 * For one query row the packed path's copies (every visible key and value row of the head gathered into scratch)
 * and two GEMM calls cost more than the arithmetic (T3 decoding: ~13 us a layer for ~0.5 MFLOP); here each score is
 * one dot product over the head's HS channels of the key row in place, and the output one pass over the value rows. */

/* s (n) = scale * q . k_t for t < n; q (HS); k rows of stride ld, HS floats each at the head's offset */
static void decode_scores_scalar(const float *q, const float *k, long ld, int n, int HS, float scale, float *s) {
  for (int t = 0; t < n; t++) {
    const float *kt = k + (size_t)t * ld;
    float acc = 0.0f;
    for (int d = 0; d < HS; d++) acc += q[d] * kt[d];
    s[t] = scale * acc;
  }
}
/* o (HS) = inv * sum_t p[t] * v_t for t < n; p (n); v rows of stride ld */
static void decode_values_scalar(const float *p, const float *v, long ld, int n, int HS, float inv, float *o) {
  for (int d = 0; d < HS; d++) o[d] = 0.0f;
  for (int t = 0; t < n; t++) {
    const float *vt = v + (size_t)t * ld;
    for (int d = 0; d < HS; d++) o[d] += p[t] * vt[d];
  }
  for (int d = 0; d < HS; d++) o[d] *= inv;
}

#ifdef KILN_X86
#define DECODE_AHEAD 8 /* keys or values prefetched this many positions ahead */
__attribute__((target("avx512f,avx2,fma")))
static void decode_scores_avx512(const float *q, const float *k, long ld, int n, int HS, float scale, float *s) {
  const int H16 = HS & ~15;
  const __mmask16 tail = (__mmask16)((1u << (HS - H16)) - 1);
  for (int t = 0; t < n; t++) {
    const float *kt = k + (size_t)t * ld;
    /* keys are one cache row apart and come from L3 or memory (a batch's cache is megabytes): ask ahead */
    if (t + DECODE_AHEAD < n) for (int d = 0; d < HS; d += 16) _mm_prefetch((const char *)(kt + DECODE_AHEAD * ld + d), _MM_HINT_T0);
    __m512 acc = _mm512_setzero_ps();
    int d = 0;
    for (; d < H16; d += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(kt + d), acc);
    if (tail) acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, q + d), _mm512_maskz_loadu_ps(tail, kt + d), acc);
    s[t] = scale * _mm512_reduce_add_ps(acc);
  }
}
__attribute__((target("avx512f,avx2,fma")))
static void decode_values_avx512(const float *p, const float *v, long ld, int n, int HS, float inv, float *o) {
  const int H16 = HS & ~15;
  const __mmask16 tail = (__mmask16)((1u << (HS - H16)) - 1);
  const __m512 scale = _mm512_set1_ps(inv);
  int d = 0;
  /* Four column vectors at once: four independent chains of multiply-adds instead of one (which waits on the last
   * add at every key), and plain loads (a zero-masked load is several times slower on AMD's Zen 4). Each output is
   * still the sum over keys in order from zero, so results do not change. */
  for (; d + 64 <= H16; d += 64) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int t = 0; t < n; t++) {
      const __m512 pt = _mm512_set1_ps(p[t]);
      const float *vt = v + (size_t)t * ld + d; /* (64) of key t's value row */
      if (t + DECODE_AHEAD < n) for (int e = 0; e < 64; e += 16) _mm_prefetch((const char *)(vt + DECODE_AHEAD * ld + e), _MM_HINT_T0);
      a0 = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vt), a0);
      a1 = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vt + 16), a1);
      a2 = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vt + 32), a2);
      a3 = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vt + 48), a3);
    }
    _mm512_storeu_ps(o + d, _mm512_mul_ps(a0, scale));
    _mm512_storeu_ps(o + d + 16, _mm512_mul_ps(a1, scale));
    _mm512_storeu_ps(o + d + 32, _mm512_mul_ps(a2, scale));
    _mm512_storeu_ps(o + d + 48, _mm512_mul_ps(a3, scale));
  }
  for (; d < HS; d += 16) {
    const __mmask16 m = d < H16 ? (__mmask16)0xffff : tail;
    __m512 acc = _mm512_setzero_ps();
    if (m == 0xffff) for (int t = 0; t < n; t++) acc = _mm512_fmadd_ps(_mm512_set1_ps(p[t]), _mm512_loadu_ps(v + (size_t)t * ld + d), acc);
    else for (int t = 0; t < n; t++) acc = _mm512_fmadd_ps(_mm512_set1_ps(p[t]), _mm512_maskz_loadu_ps(m, v + (size_t)t * ld + d), acc);
    _mm512_mask_storeu_ps(o + d, m, _mm512_mul_ps(acc, scale));
  }
}
#endif

#ifdef KILN_SIMD128
static void decode_scores_simd128(const float *q, const float *k, long ld, int n, int HS, float scale, float *s) {
  const int H4 = HS & ~3;
  for (int t = 0; t < n; t++) {
    const float *kt = k + (size_t)t * ld;
    v128_t acc = wasm_f32x4_splat(0.0f);
    for (int d = 0; d < H4; d += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(q + d), wasm_v128_load(kt + d)));
    float r = (wasm_f32x4_extract_lane(acc, 0) + wasm_f32x4_extract_lane(acc, 1)) +
              (wasm_f32x4_extract_lane(acc, 2) + wasm_f32x4_extract_lane(acc, 3));
    for (int d = H4; d < HS; d++) r += q[d] * kt[d];
    s[t] = scale * r;
  }
}
#endif

/* Query rows [0, Tq) of (batch b, head h); s: (Tk) scratch for one row's scores. */
static void decode_task(att_job *j, size_t bh, float *s) {
  const int HS = j->HS, C = j->NH * HS, Tq = j->Tq, Tk = j->Tk;
  const int h = (int)(bh % (size_t)j->NH), b = (int)(bh / (size_t)j->NH);
  const long ld = j->ld;
  const float *k = j->k + (size_t)b * Tk * ld + (size_t)h * HS, *v = j->v + (size_t)b * Tk * ld + (size_t)h * HS;
  float *lse = j->lse + ((size_t)b * j->NH + h) * Tq;
  const int avx512 = kiln_isa() == KILN_ISA_AVX512;
  (void)avx512;
  for (int i = 0; i < Tq; i++) {
    const float *q = j->q + ((size_t)b * Tq + i) * ld + (size_t)h * HS;
    float *o = j->out + ((size_t)b * Tq + i) * C + (size_t)h * HS;
    const int n = visible(j, i);
    if (n == 0) { memset(o, 0, HS * sizeof(float)); lse[i] = -INFINITY; continue; }
#ifdef KILN_X86
    if (avx512) decode_scores_avx512(q, k, ld, n, HS, j->scale, s);
    else
#endif
#ifdef KILN_SIMD128
    if (kiln_isa() == KILN_ISA_SIMD128) decode_scores_simd128(q, k, ld, n, HS, j->scale, s);
    else
#endif
      decode_scores_scalar(q, k, ld, n, HS, j->scale, s);
    const float max = kiln_row_max(s, (size_t)n);
    const float sum = kiln_exp_sum(s, max, s, (size_t)n);
#ifdef KILN_X86
    if (avx512) decode_values_avx512(s, v, ld, n, HS, 1.0f / sum, o);
    else
#endif
      decode_values_scalar(s, v, ld, n, HS, 1.0f / sum, o);
    lse[i] = max + logf(sum);
  }
}

static void decode_thread(void *p, int tid, int n) {
  att_job *j = p;
  float *s = malloc((size_t)j->Tk * sizeof(float)); /* (Tk) scores of one row */
  if (!s) { j->failed = 1; return; }
  for (size_t t = (size_t)tid; t < j->tasks; t += (size_t)n) decode_task(j, t, s);
  free(s);
}

static size_t forward_scratch(const att_job *j) {
  return (size_t)QB * j->HS * 2 + (size_t)j->Tk * j->HS * 2 + (size_t)QB * j->Tk;
}
static size_t backward_scratch(const att_job *j) {
  return (size_t)j->Tq * j->HS * 4 + (size_t)j->Tk * j->HS * 4 + (size_t)QB * j->Tk * 2;
}

static void forward_thread(void *p, int tid, int n) {
  att_job *j = p;
  float *scratch = malloc(forward_scratch(j) * sizeof(float));
  if (!scratch) { j->failed = 1; return; }
  for (size_t t = (size_t)tid; t < j->tasks; t += (size_t)n) forward_task(j, t, tid, scratch);
  free(scratch);
}

static void backward_thread(void *p, int tid, int n) {
  att_job *j = p;
  float *scratch = malloc(backward_scratch(j) * sizeof(float));
  if (!scratch) { j->failed = 1; return; }
  for (size_t t = (size_t)tid; t < j->tasks; t += (size_t)n) backward_task(j, t, tid, scratch);
  free(scratch);
}

static int threads_for(size_t tasks, double flops) {
  int n = kiln_threads();
  if (flops < 2e5) n = 1;
  if ((size_t)n > tasks) n = (int)tasks;
  return n < 1 ? 1 : n;
}

void kiln_attention(const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH, int HS,
                    int causal, float scale, float *out, float *lse, long ld) {
  if (B <= 0 || Tq <= 0 || NH <= 0) return;
  att_job j = { .q = q, .k = k, .v = v, .out = out, .lse = lse, .B = B, .Tq = Tq, .Tk = Tk, .NH = NH, .HS = HS,
                .causal = causal, .scale = scale, .ld = ld };
  if (Tk <= 0 || HS <= 0) {
    /* no keys: every row is empty (lse -inf); no head size: out is empty but lse is still the log-sum-exp */
    if (HS > 0) memset(out, 0, (size_t)B * Tq * NH * HS * sizeof(float));
    for (size_t i = 0; i < (size_t)B * NH * Tq; i++) lse[i] = -INFINITY;
    if (Tk <= 0 || HS > 0) return;
  }
  j.nqb = (Tq + QB - 1) / QB;
  j.tasks = (size_t)B * NH * j.nqb;
  if (HS <= 0) {
    /* scores are all 0: lse = log(visible keys) */
    for (int b = 0; b < B; b++)
      for (int h = 0; h < NH; h++)
        for (int i = 0; i < Tq; i++) {
          int n = visible(&j, i);
          lse[((size_t)b * NH + h) * Tq + i] = n > 0 ? logf((float)n) : -INFINITY;
        }
    return;
  }
  if (Tq <= DECODE_MAX_TQ) {
    j.tasks = (size_t)B * NH;
    int n = threads_for(j.tasks, 4.0 * B * NH * Tq * (double)Tk * HS);
    kiln_parallel(decode_thread, &j, n);
    if (j.failed) { j.failed = 0; decode_thread(&j, 0, 1); }
    return;
  }
  int n = threads_for(j.tasks, 4.0 * B * NH * Tq * (double)Tk * HS);
  kiln_lock(); /* the GEMM buffers of every pool thread are in use */
  kiln_parallel(forward_thread, &j, n);
  if (j.failed) { j.failed = 0; forward_thread(&j, 0, 1); }
  kiln_unlock();
}

void kiln_attention_backward(const float *dout, const float *q, const float *k, const float *v, const float *out,
                             const float *lse, int B, int Tq, int Tk, int NH, int HS, int causal, float scale,
                             float *dq, float *dk, float *dv, long ld) {
  size_t C = (size_t)NH * (HS > 0 ? HS : 0);
  if (B <= 0 || NH <= 0 || HS <= 0) return;
  if (Tq <= 0 || Tk <= 0) {
    if (Tq > 0) zero_rows(dq, (size_t)B * Tq, C, ld);
    if (Tk > 0) { zero_rows(dk, (size_t)B * Tk, C, ld); zero_rows(dv, (size_t)B * Tk, C, ld); }
    return;
  }
  att_job j = { .dout = dout, .q = q, .k = k, .v = v, .out_in = out, .lse_in = lse, .dq = dq, .dk = dk, .dv = dv,
                .B = B, .Tq = Tq, .Tk = Tk, .NH = NH, .HS = HS, .causal = causal, .scale = scale, .ld = ld };
  j.tasks = (size_t)B * NH;
  int n = threads_for(j.tasks, 8.0 * B * NH * Tq * (double)Tk * HS);
  kiln_lock();
  kiln_parallel(backward_thread, &j, n);
  if (j.failed) { j.failed = 0; backward_thread(&j, 0, 1); }
  kiln_unlock();
}

/* ---- the decoding step of A sequences at once: one new query each, keys and values in a KV cache ---- */

typedef struct {
  const float *q;             /* (A, NH * HS) one query row per sequence */
  const float *keys, *values; /* (cache rows, P, KVH * HS) */
  const int32_t *rows, *starts;
  float *out;                 /* (A, NH * HS) */
  int A, NH, KVH, HS, P;
  float scale;
  int failed;
} batch_decode_job;

/* Heads [h0, h1) of one sequence in one pass over each cached key row and one over each value row: the rows of the
 * cache are read as one sequential stream, where a task per head read HS floats every ld (a strided stream per
 * head, one page apart every few positions, which the hardware prefetcher follows poorly; the KV cache of a batch
 * is megabytes and comes from L3 or memory). Each score and each output is decode_task's, operation for operation:
 * the score a sum over channels in order from zero, scaled; the output a sum over positions in order from zero,
 * times the softmax's 1 / sum. Key/value heads equal query heads (G = 1). s: (h1 - h0, n) scores; acc: (ld) sums. */
#ifdef KILN_X86
__attribute__((target("avx512f,avx2,fma")))
static void decode_heads_avx512(const float *q, const float *k, const float *v, long ld, int n, int h0, int h1, int HS,
                                float scale, float *s, float *acc, float *out) {
  const int H16 = HS & ~15, nh = h1 - h0;
  const __mmask16 tail = (__mmask16)((1u << (HS - H16)) - 1);
  const long c0 = (long)h0 * HS, c1 = (long)h1 * HS; /* the heads' channels [c0, c1) of each row */
  for (int t = 0; t < n; t++) {
    const float *kt = k + (size_t)t * ld;
    if (t + DECODE_AHEAD < n) for (long c = c0; c < c1; c += 16) _mm_prefetch((const char *)(kt + DECODE_AHEAD * ld + c), _MM_HINT_T0);
    for (int h = 0; h < nh; h++) {
      const float *qh = q + c0 + (size_t)h * HS, *kh = kt + c0 + (size_t)h * HS;
      __m512 a = _mm512_setzero_ps();
      int d = 0;
      for (; d < H16; d += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(qh + d), _mm512_loadu_ps(kh + d), a);
      if (tail) a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, qh + d), _mm512_maskz_loadu_ps(tail, kh + d), a);
      s[(size_t)h * n + t] = scale * _mm512_reduce_add_ps(a);
    }
  }
  for (int h = 0; h < nh; h++) { /* softmax numerators in place; 1 / sum parked in the head's first output */
    float *sh = s + (size_t)h * n;
    const float max = kiln_row_max(sh, (size_t)n);
    out[c0 + (size_t)h * HS] = 1.0f / kiln_exp_sum(sh, max, sh, (size_t)n);
  }
  memset(acc + c0, 0, (size_t)(c1 - c0) * sizeof(float));
  for (int t = 0; t < n; t++) {
    const float *vt = v + (size_t)t * ld;
    if (t + DECODE_AHEAD < n) for (long c = c0; c < c1; c += 16) _mm_prefetch((const char *)(vt + DECODE_AHEAD * ld + c), _MM_HINT_T0);
    for (int h = 0; h < nh; h++) {
      const __m512 pt = _mm512_set1_ps(s[(size_t)h * n + t]);
      float *ah = acc + c0 + (size_t)h * HS;
      const float *vh = vt + c0 + (size_t)h * HS;
      int d = 0;
      for (; d < H16; d += 16) _mm512_storeu_ps(ah + d, _mm512_fmadd_ps(pt, _mm512_loadu_ps(vh + d), _mm512_loadu_ps(ah + d)));
      if (tail) _mm512_mask_storeu_ps(ah + d, tail, _mm512_fmadd_ps(pt, _mm512_maskz_loadu_ps(tail, vh + d), _mm512_maskz_loadu_ps(tail, ah + d)));
    }
  }
  for (int h = 0; h < nh; h++) {
    const float *ah = acc + c0 + (size_t)h * HS;
    float *oh = out + c0 + (size_t)h * HS;
    const __m512 inv = _mm512_set1_ps(oh[0]);
    int d = 0;
    for (; d < H16; d += 16) _mm512_storeu_ps(oh + d, _mm512_mul_ps(_mm512_loadu_ps(ah + d), inv));
    if (tail) _mm512_mask_storeu_ps(oh + d, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, ah + d), inv));
  }
}
#endif

/* Task (a, h) is sequence a's query head h, which reads key/value head h / (NH / KVH): exactly what kiln_attention
 * computes for that head of that sequence alone, with the key/value heads repeated. Thread tid of n takes a
 * contiguous run of the tasks in (a, h) order holding about 1/n of their positions (a task costs its sequence's
 * length), so long and short sequences share out evenly; which thread computes a task never changes its result. */
static void batch_decode_thread(void *p, int tid, int n) {
  batch_decode_job *b = p;
  const int C = b->NH * b->HS, KW = b->KVH * b->HS, G = b->NH / b->KVH;
  size_t total = 0;
  for (int a = 0; a < b->A; a++) total += (size_t)b->NH * (size_t)(b->starts[a] + 2);
  const size_t from = total * (size_t)tid / (size_t)n, to = total * (size_t)(tid + 1) / (size_t)n;
  /* (NH, P) scores of one sequence, (1) lse, (C) output sums */
  float *s = malloc(((size_t)b->NH * b->P + 1 + (size_t)C) * sizeof(float));
  if (!s) { b->failed = 1; return; }
  float *lse = s + (size_t)b->NH * b->P;
  size_t at = 0; /* positions of the tasks before sequence a */
  for (int a = 0; a < b->A; a++) {
    const size_t cost = (size_t)(b->starts[a] + 2);
    /* this thread's heads of sequence a: those whose first position falls in [from, to) */
    int h0 = 0, h1 = 0;
    while (h0 < b->NH && at + (size_t)h0 * cost < from) h0++;
    h1 = h0;
    while (h1 < b->NH && at + (size_t)h1 * cost < to) h1++;
    at += (size_t)b->NH * cost;
    if (h0 >= h1) continue;
    const size_t row = (size_t)b->rows[a] * b->P * KW; /* the sequence's (P, KW) block */
    const int Tk = b->starts[a] + 1;
#ifdef KILN_X86
    if (G == 1 && kiln_isa() == KILN_ISA_AVX512) {
      decode_heads_avx512(b->q + (size_t)a * C, b->keys + row, b->values + row, KW, Tk, h0, h1, b->HS, b->scale, s,
                          lse + 1, b->out + (size_t)a * C);
      continue;
    }
#endif
    for (int h = h0; h < h1; h++) {
      const size_t kv = row + (size_t)(h / G) * b->HS; /* the head's first key */
      att_job j = { .q = b->q + (size_t)a * C + (size_t)h * b->HS, .k = b->keys + kv, .v = b->values + kv,
                    .out = b->out + (size_t)a * C + (size_t)h * b->HS, .lse = lse, .B = 1, .Tq = 1,
                    .Tk = Tk, .NH = 1, .HS = b->HS, .causal = 1, .scale = b->scale, .ld = KW };
      decode_task(&j, 0, s);
    }
  }
  free(s);
}

void kiln_attention_decode_batch(const float *q, const float *keys, const float *values, const int32_t *rows,
                                 const int32_t *starts, int A, int NH, int KVH, int HS, int P, float scale, float *out) {
  if (A <= 0 || NH <= 0 || HS <= 0 || KVH <= 0 || NH % KVH != 0) return;
  batch_decode_job b = { .q = q, .keys = keys, .values = values, .rows = rows, .starts = starts, .out = out, .A = A,
                         .NH = NH, .KVH = KVH, .HS = HS, .P = P, .scale = scale };
  double flops = 0;
  for (int a = 0; a < A; a++) flops += 4.0 * NH * (double)(starts[a] + 1) * HS;
  int n = threads_for((size_t)A * NH, flops);
  kiln_parallel(batch_decode_thread, &b, n);
  if (b.failed) { b.failed = 0; batch_decode_thread(&b, 0, 1); }
}

int kiln_attention_decode_part(const float *q, const float *keys, const float *values, const int32_t *rows,
                               const int32_t *starts, int A, int NH, int KVH, int HS, int P, float scale, float *out,
                               int tid, int n) {
  batch_decode_job b = { .q = q, .keys = keys, .values = values, .rows = rows, .starts = starts, .out = out, .A = A,
                         .NH = NH, .KVH = KVH, .HS = HS, .P = P, .scale = scale };
  batch_decode_thread(&b, tid, n);
  return b.failed ? -2 : 0;
}

/* Small-M GEMM (M <= KILN_GEMV_MAX_M rows of A, batch 1): C = alpha * A @ op(B) + beta * C without packing.
 * Decoding feeds one token (M = 1) or a few through every weight matrix; the packed GEMM would copy all of B and
 * pad A to a 14-row tile, so here B is streamed once, straight from memory, with the rows of A in registers.
 * Threads split the N output columns in fixed chunks and never split K: the same inputs give bitwise the same
 * result for any thread count. */
#include "kiln.h"
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KILN_X86 1
#endif
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#define KILN_SIMD128 1
#endif

typedef struct {
  int transA, transB, M, N, K;
  float alpha, beta;
  const float *A; /* (M, K), or (K, M) with transA */
  const float *B; /* (K, N), or (N, K) with transB */
  float *C;       /* (M, N) */
} gemv_job;

/* A's row i as a contiguous (K) vector: rows of a transposed A are gathered into `rowbuf` once per call. */
static const float *a_row(const gemv_job *g, int i, float *rowbuf) {
  if (!g->transA) return g->A + (size_t)i * g->K;
  else for (int k = 0; k < g->K; k++) rowbuf[k] = g->A[(size_t)k * g->M + i];
  return rowbuf;
}

static inline void store_c(const gemv_job *g, int i, int j, float acc) {
  float *c = g->C + (size_t)i * g->N + j;
  float r = g->alpha * acc;
  *c = g->beta == 0.0f ? r : r + g->beta * *c;
}

/* ---- B (K, N): columns [j0, j1) of every row, B read row by row ---- */

static void rows_scalar(const gemv_job *g, const float *const *a, int j0, int j1) {
  for (int i = 0; i < g->M; i++)
    for (int j = j0; j < j1; j++) {
      float s = 0.0f;
      for (int k = 0; k < g->K; k++) s += a[i][k] * g->B[(size_t)k * g->N + j];
      store_c(g, i, j, s);
    }
}

#ifdef KILN_X86
/* Column tiles of GEMV_TILE: each row of B is read as one contiguous run per tile (sequential streams the
 * prefetcher follows), 4 rows of B a step, into accumulators in L1. Every output's sum runs over k in order with
 * one fused multiply-add per term, so the result does not depend on the tile or chunk edges. */
#define GEMV_TILE 1024
#define ROWS_TILE_MAX_M 4 /* more rows take rows_blocked_avx512 */
__attribute__((target("avx512f,avx2,fma")))
static void rows_avx512(const gemv_job *g, const float *const *a, int j0, int j1) {
  const int M = g->M, N = g->N, K = g->K;
  _Alignas(64) float acc[ROWS_TILE_MAX_M][GEMV_TILE]; /* (M, tile) */
  for (int t0 = j0; t0 < j1; t0 += GEMV_TILE) {
    const int w = j1 - t0 < GEMV_TILE ? j1 - t0 : GEMV_TILE;
    const int w16 = w & ~15;
    const __mmask16 tail = (__mmask16)((1u << (w - w16)) - 1);
    for (int i = 0; i < M; i++) memset(acc[i], 0, (size_t)w * sizeof(float));
    int k = 0;
    for (; k + 4 <= K; k += 4) {
      const float *b0 = g->B + (size_t)k * N + t0, *b1 = b0 + N, *b2 = b1 + N, *b3 = b2 + N;
      for (int i = 0; i < M; i++) {
        const __m512 x0 = _mm512_set1_ps(a[i][k]), x1 = _mm512_set1_ps(a[i][k + 1]);
        const __m512 x2 = _mm512_set1_ps(a[i][k + 2]), x3 = _mm512_set1_ps(a[i][k + 3]);
        float *y = acc[i];
        int j = 0;
        for (; j < w16; j += 16) {
          __m512 v = _mm512_load_ps(y + j);
          v = _mm512_fmadd_ps(x0, _mm512_loadu_ps(b0 + j), v);
          v = _mm512_fmadd_ps(x1, _mm512_loadu_ps(b1 + j), v);
          v = _mm512_fmadd_ps(x2, _mm512_loadu_ps(b2 + j), v);
          v = _mm512_fmadd_ps(x3, _mm512_loadu_ps(b3 + j), v);
          _mm512_store_ps(y + j, v);
        }
        if (tail) {
          __m512 v = _mm512_maskz_load_ps(tail, y + j);
          v = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(tail, b0 + j), v);
          v = _mm512_fmadd_ps(x1, _mm512_maskz_loadu_ps(tail, b1 + j), v);
          v = _mm512_fmadd_ps(x2, _mm512_maskz_loadu_ps(tail, b2 + j), v);
          v = _mm512_fmadd_ps(x3, _mm512_maskz_loadu_ps(tail, b3 + j), v);
          _mm512_mask_store_ps(y + j, tail, v);
        }
      }
    }
    for (; k < K; k++) {
      const float *b0 = g->B + (size_t)k * N + t0;
      for (int i = 0; i < M; i++) {
        const __m512 x0 = _mm512_set1_ps(a[i][k]);
        float *y = acc[i];
        int j = 0;
        for (; j < w16; j += 16) _mm512_store_ps(y + j, _mm512_fmadd_ps(x0, _mm512_loadu_ps(b0 + j), _mm512_load_ps(y + j)));
        if (tail) _mm512_mask_store_ps(y + j, tail, _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(tail, b0 + j), _mm512_maskz_load_ps(tail, y + j)));
      }
    }
    for (int i = 0; i < M; i++)
      for (int c = 0; c < w; c++) store_c(g, i, t0 + c, acc[i][c]);
  }
}

static inline __mmask16 lanes(int w, int off) {
  int n = w - off;
  return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* One load of up to 16 columns: a plain load for a whole vector (a zero-masked load is several times slower on AMD's
 * Zen 4: masked loads alone made the blocked kernel below run at 40% of its FMA rate), a masked one at a tail. */
__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline __m512 load_cols(const float *p, __mmask16 m, int whole) {
  return whole ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}

/* Rows of B the tile asks for ahead of the one it multiplies. 8 left it waiting on memory: a 16-row step reads
 * every weight from L3 or DRAM (16 x 1024 x 256 from 34 MB of cold panels on one thread: 122 GFLOP/s at 8 rows
 * ahead, 158 at 64, 165-172 when a panel's prefetches run on into the next panel; 235 from L2). */
#define BLOCKED_AHEAD 64

/* acc (8 rows, 16 NV columns) += x[t][k] * B[k][0, 16 NV) over k in order; row k of B at b + k N, its v-th 16
 * columns vs floats further (16 in a (K, N) matrix, K * 16 in packed panels). `whole`: all 16 NV columns exist, so
 * every load is a plain one; NV and whole are constants after inlining (one copy of the loop each). */
__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline void blocked_tile(const float *const *x, const float *b, size_t N, size_t vs, int K,
                                const __mmask16 m[3], int whole, int NV, __m512 acc[8][3]) {
  for (int k = 0; k < K; k++, b += N) {
    /* B is walked down a column block, one row apart, and comes from L3 or memory: ask for the rows BLOCKED_AHEAD
     * ahead. Past the end of a panel (vs > 16) lies the next one, which the product reads next: ask there too. */
    if (k + BLOCKED_AHEAD < K || vs > 16) for (int v = 0; v < NV; v++) _mm_prefetch((const char *)(b + BLOCKED_AHEAD * N + v * vs), _MM_HINT_T0);
    __m512 bv[3];
    for (int v = 0; v < NV; v++) bv[v] = load_cols(b + v * vs, m[v], whole);
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
      const __m512 xv = _mm512_set1_ps(x[t][k]);
      for (int v = 0; v < NV; v++) acc[t][v] = _mm512_fmadd_ps(xv, bv[v], acc[t][v]);
    }
  }
}

/* Rows i0 .. i0+r of C, columns j .. j+w, from an 8 x 48 tile of sums (C = alpha * sum + beta * C). */
__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline void store_tile(const gemv_job *g, __m512 acc[8][3], int i0, int r, int j, int w, const __mmask16 m[3]) {
  const int plain = g->alpha == 1.0f && (g->beta == 0.0f || g->beta == 1.0f); /* alpha * acc + beta * c is exact */
  const int nv = (w + 15) / 16; /* vectors holding the block's columns */
  for (int t = 0; t < r; t++) {
    float *c = g->C + (size_t)(i0 + t) * g->N + j;
    if (plain) {
      for (int v = 0; v < nv; v++) {
        __m512 y = acc[t][v];
        if (m[v] == 0xffff) {
          if (g->beta != 0.0f) y = _mm512_add_ps(y, _mm512_loadu_ps(c + 16 * v));
          _mm512_storeu_ps(c + 16 * v, y);
        } else {
          if (g->beta != 0.0f) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m[v], c + 16 * v));
          _mm512_mask_storeu_ps(c + 16 * v, m[v], y);
        }
      }
    } else {
      _Alignas(64) float tmp[48];
      for (int v = 0; v < 3; v++) _mm512_store_ps(tmp + 16 * v, acc[t][v]);
      for (int q = 0; q < w; q++) store_c(g, i0 + t, j + q, tmp[q]);
    }
  }
}

/* Every group of 8 rows of A against columns j .. j+w of C, B's block read from b with rows ldb apart. With
 * `whole`, B's block has whole vectors (w a multiple of 16, or a zero-padded panel): plain loads of ceil(w/16)
 * vectors; otherwise three masked ones. */
__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline void row_groups(const gemv_job *g, const float *const *a, const float *b, size_t ldb, size_t vs, int j,
                              int w, int whole) {
  static const __mmask16 all[3] = { 0xffff, 0xffff, 0xffff };
  const __mmask16 m[3] = { lanes(w, 0), lanes(w, 16), lanes(w, 32) };
  const int nv = (w + 15) / 16;
  for (int i0 = 0; i0 < g->M; i0 += 8) {
    const int r = g->M - i0 < 8 ? g->M - i0 : 8;
    const float *x[8];
    for (int t = 0; t < 8; t++) x[t] = a[i0 + (t < r ? t : r - 1)];
    __m512 acc[8][3];
    for (int t = 0; t < 8; t++) acc[t][0] = acc[t][1] = acc[t][2] = _mm512_setzero_ps();
    if (!whole) blocked_tile(x, b, ldb, vs, g->K, m, 0, 3, acc);
    else if (nv == 3) blocked_tile(x, b, ldb, vs, g->K, all, 1, 3, acc);
    else if (nv == 2) blocked_tile(x, b, ldb, vs, g->K, all, 1, 2, acc);
    else blocked_tile(x, b, ldb, vs, g->K, all, 1, 1, acc);
    store_tile(g, acc, i0, r, j, w, m);
  }
}

/* 5 .. KILN_GEMV_MAX_M rows (a server's batch of sequences): 8 rows by 48 columns of accumulators in registers, one
 * row of B (3 vectors) loaded per k and used by all 8 rows. Each output is the same sum as in rows_avx512 (over k in
 * order, one fused multiply-add a term, from zero), so the kernel choice never changes a result. A last group of
 * fewer rows repeats its last row and drops the extra sums. A last block of 16 or 32 columns (a thread's share of
 * 256 columns is 48 + 48 + 32) runs as 1 or 2 whole vectors: with masked loads it ran at under half the rate. */
__attribute__((target("avx512f,avx2,fma")))
static void rows_blocked_avx512(const gemv_job *g, const float *const *a, int j0, int j1) {
  for (int j = j0; j < j1; j += 48) {
    const int w = j1 - j < 48 ? j1 - j : 48;
    row_groups(g, a, g->B + j, (size_t)g->N, 16, j, w, w % 16 == 0);
  }
}

/* B (N, K), 5 .. KILN_GEMV_MAX_M rows of A (a batched decoding step's head, every projection of a Llama layer):
 * each block of 48 rows of B is transposed into a (K, 48) panel on the stack, zero past N, and runs through the
 * 8 x 48 register tile above. The dot-product kernel below spent about as long reducing its 16-lane sums as on the
 * products (58 GFLOP/s a thread against 110 for B (K, N)). Each output is the sum over k in order from zero, as
 * rows_blocked_avx512 computes it, whichever thread takes its block. Longer rows than DOTS_PANEL_MAX_K keep the
 * dot-product kernel. */
#define DOTS_PANEL_MAX_K 1024
__attribute__((target("avx512f,avx2,fma")))
static void dots_blocked_avx512(const gemv_job *g, const float *const *a, int j0, int j1) {
  const int K = g->K;
  _Alignas(64) float panel[DOTS_PANEL_MAX_K * 48]; /* (K, 48): rows j .. j+48 of B, transposed */
  for (int j = j0; j < j1; j += 48) {
    const int w = j1 - j < 48 ? j1 - j : 48;
    const float *rows[48];
    for (int r = 0; r < w; r++) rows[r] = g->B + (size_t)(j + r) * K;
    kiln_pack_rows_t(rows, w, K, 48, panel);
    row_groups(g, a, panel, 48, 16, j, w, 1);
  }
}

/* The last w < 32 columns from j, for every row of A: 8-column vectors, the last one masked (masked-off lanes load
 * zero), each output the sum over k in order from zero with one fused multiply-add a term, as in the 32-column
 * blocks. A column's sum must not depend on whether it falls in a whole block or in the tail: the fused decoding
 * step splits a product's columns at other edges (16-aligned, per thread) than kiln_gemm's chunks (64-aligned), and
 * the scalar loop (a multiply and an add, each rounded) gave other sums here. */
__attribute__((target("avx2,fma")))
static void rows_avx2_tail(const gemv_job *g, const float *const *a, int j, int w) {
  const int M = g->M, N = g->N, K = g->K, nv = (w + 7) / 8;
  __m256i m[4];
  for (int v = 0; v < 4; v++) {
    const int n = w - 8 * v;
    m[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); /* lane < n */
  }
  for (int i = 0; i < M; i++) {
    __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() };
    const float *b = g->B + j;
    for (int k = 0; k < K; k++, b += N) {
      const __m256 x = _mm256_set1_ps(a[i][k]);
      for (int v = 0; v < nv; v++) acc[v] = _mm256_fmadd_ps(x, _mm256_maskload_ps(b + 8 * v, m[v]), acc[v]);
    }
    _Alignas(32) float t[32];
    for (int v = 0; v < nv; v++) _mm256_store_ps(t + 8 * v, acc[v]);
    for (int c = 0; c < w; c++) store_c(g, i, j + c, t[c]);
  }
}

/* 32 columns a block (4 vectors) for up to 4 rows of A; the columns past the last whole block in rows_avx2_tail.
 * Every output is the sum over k in order from zero, one fused multiply-add a term, wherever the block and chunk
 * edges fall (as on AVX-512), so the thread count never changes a result. */
__attribute__((target("avx2,fma")))
static void rows_avx2(const gemv_job *g, const float *const *a, int j0, int j1) {
  const int M = g->M, N = g->N, K = g->K;
  int j = j0;
  for (; j + 32 <= j1; j += 32) {
    for (int i0 = 0; i0 < M; i0 += 4) { /* rows in groups of 4: the accumulators stay in registers */
      const int mi = M - i0 < 4 ? M - i0 : 4;
      __m256 acc[4][4];
      for (int i = 0; i < mi; i++) for (int v = 0; v < 4; v++) acc[i][v] = _mm256_setzero_ps();
      const float *b = g->B + j;
      for (int k = 0; k < K; k++, b += N) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), b2 = _mm256_loadu_ps(b + 16), b3 = _mm256_loadu_ps(b + 24);
        for (int i = 0; i < mi; i++) {
          __m256 x = _mm256_set1_ps(a[i0 + i][k]);
          acc[i][0] = _mm256_fmadd_ps(x, b0, acc[i][0]);
          acc[i][1] = _mm256_fmadd_ps(x, b1, acc[i][1]);
          acc[i][2] = _mm256_fmadd_ps(x, b2, acc[i][2]);
          acc[i][3] = _mm256_fmadd_ps(x, b3, acc[i][3]);
        }
      }
      for (int i = 0; i < mi; i++) {
        _Alignas(32) float t[32];
        for (int v = 0; v < 4; v++) _mm256_store_ps(t + 8 * v, acc[i][v]);
        for (int c = 0; c < 32; c++) store_c(g, i0 + i, j + c, t[c]);
      }
    }
  }
  if (j < j1) rows_avx2_tail(g, a, j, j1 - j);
}
#endif

/* ---- B as panels: (ceil(N / 16), K, 16), each 16 columns of op(B) contiguous down k ----
 * A batched decoding step reads every weight matrix once per step from L3 or memory. Down a 48-column block of a
 * (K, N) matrix, each k is 192 bytes a row of B apart, so nearly every k is on another 4 KiB page, where the
 * hardware prefetcher stops: the 8 x 48 tile ran at half its rate on cold weights (16 x 768 x 256 on one thread:
 * 51-57 GFLOP/s against 97 from panels). In panels, each 16 columns are one sequential stream. */

size_t kiln_panels_size(int N, int K) { return (size_t)((N + 15) / 16) * 16 * (size_t)(K > 0 ? K : 0); }

void kiln_pack_panels(int transB, int N, int K, const float *B, float *dst) {
  for (int p0 = 0; p0 < N; p0 += 16) {
    float *d = dst + (size_t)(p0 / 16) * K * 16; /* (K, 16): columns p0 .. p0+16 */
    const int w = N - p0 < 16 ? N - p0 : 16;
    for (int k = 0; k < K; k++) {
      for (int c = 0; c < w; c++) d[(size_t)k * 16 + c] = transB ? B[(size_t)(p0 + c) * K + k] : B[(size_t)k * N + p0 + c];
      for (int c = w; c < 16; c++) d[(size_t)k * 16 + c] = 0.0f;
    }
  }
}

int kiln_gemv_panels_applies(int transB, int M, int K) {
#ifdef KILN_X86
  /* the products whose unpacked kernel sums over k in order from zero, as the panel kernel does */
  return kiln_isa() == KILN_ISA_AVX512 && M > ROWS_TILE_MAX_M && M <= KILN_GEMV_MAX_M && K >= 1 &&
         (!transB || K <= DOTS_PANEL_MAX_K);
#else
  (void)transB; (void)M; (void)K;
  return 0;
#endif
}

#ifdef KILN_X86
/* Columns [j0, j1) (j0 a multiple of 16) in blocks of 48 through the 8 x 48 tile: each vector of a block is its own
 * panel, K * 16 floats from the next (zero past N, so whole vectors) */
__attribute__((target("avx512f,avx2,fma")))
static void panels_blocked_avx512(const gemv_job *g, const float *const *a, const float *panels, int j0, int j1) {
  const size_t vs = (size_t)g->K * 16;
  for (int j = j0; j < j1; j += 48)
    row_groups(g, a, panels + (size_t)(j / 16) * vs, 16, vs, j, j1 - j < 48 ? j1 - j : 48, 1);
}
#endif

int kiln_gemv_span_panels(int M, int N, int K, const float *A, const float *panels, float beta, float *C, int j0,
                          int j1) {
  if (j0 % 16 != 0 || j0 < 0 || j1 > N || M < 1 || M > KILN_GEMV_MAX_M) return -1;
#ifdef KILN_X86
  if (kiln_isa() != KILN_ISA_AVX512) return -1;
  gemv_job g = { 0, 0, M, N, K, 1.0f, beta, A, NULL, C };
  const float *a[KILN_GEMV_MAX_M];
  for (int i = 0; i < M; i++) a[i] = A + (size_t)i * K;
  if (j0 < j1) panels_blocked_avx512(&g, a, panels, j0, j1);
  return 0;
#else
  (void)A; (void)panels; (void)beta; (void)C; (void)K;
  return -1;
#endif
}

/* ---- B (N, K): output column j is the dot product of A's row with B's row j ---- */

static void dots_scalar(const gemv_job *g, const float *const *a, int j0, int j1) {
  for (int j = j0; j < j1; j++) {
    const float *b = g->B + (size_t)j * g->K;
    for (int i = 0; i < g->M; i++) {
      float s = 0.0f;
      for (int k = 0; k < g->K; k++) s += a[i][k] * b[k];
      store_c(g, i, j, s);
    }
  }
}

#ifdef KILN_X86
/* acc[i][r] += A row i, B row r over the 16 (or m's) values from k on */
__attribute__((target("avx512f,avx2,fma"), always_inline))
static inline void dots_step(const float *const *b, const float *const *a, int mi, int k, __mmask16 m, int whole,
                             __m512 acc[4][4]) {
  const __m512 b0 = load_cols(b[0] + k, m, whole), b1 = load_cols(b[1] + k, m, whole);
  const __m512 b2 = load_cols(b[2] + k, m, whole), b3 = load_cols(b[3] + k, m, whole);
  for (int i = 0; i < mi; i++) {
    const __m512 x = load_cols(a[i] + k, m, whole);
    acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
    acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
    acc[i][2] = _mm512_fmadd_ps(x, b2, acc[i][2]);
    acc[i][3] = _mm512_fmadd_ps(x, b3, acc[i][3]);
  }
}

/* 4 rows of B at a time against up to 4 rows of A: 16 accumulators, reduced once at the end */
__attribute__((target("avx512f,avx2,fma")))
static void dots_avx512(const gemv_job *g, const float *const *a, int j0, int j1) {
  const int M = g->M, K = g->K;
  const int K16 = K & ~15;
  const __mmask16 tail = (__mmask16)((1u << (K - K16)) - 1);
  for (int j = j0; j < j1; j += 4) {
    int nb = j1 - j < 4 ? j1 - j : 4;
    const float *b[4];
    for (int r = 0; r < 4; r++) b[r] = g->B + (size_t)(j + (r < nb ? r : 0)) * K;
    for (int i0 = 0; i0 < M; i0 += 4) { /* rows of A in groups of 4; B's 4 rows stay in L1 between groups */
      const int mi = M - i0 < 4 ? M - i0 : 4;
      __m512 acc[4][4];
      for (int i = 0; i < mi; i++) for (int r = 0; r < 4; r++) acc[i][r] = _mm512_setzero_ps();
      /* whole vectors with plain loads, then the tail masked (load_cols): the same sums in the same order */
      for (int k = 0; k < K16; k += 16) dots_step(b, a + i0, mi, k, 0xffff, 1, acc);
      if (tail) dots_step(b, a + i0, mi, K16, tail, 0, acc);
      for (int i = 0; i < mi; i++)
        for (int r = 0; r < nb; r++) store_c(g, i0 + i, j + r, _mm512_reduce_add_ps(acc[i][r]));
    }
  }
}

/* M = 1: 8 rows of B at a time (more loads in flight; the head of a language model is one such product) */
__attribute__((target("avx512f,avx2,fma")))
static void dots1_avx512(const gemv_job *g, const float *const *a, int j0, int j1) {
  const int K = g->K;
  const int K16 = K & ~15;
  const __mmask16 tail = (__mmask16)((1u << (K - K16)) - 1);
  const float *x = a[0];
  for (int j = j0; j < j1; j += 8) {
    int nb = j1 - j < 8 ? j1 - j : 8;
    const float *b[8];
    for (int r = 0; r < 8; r++) b[r] = g->B + (size_t)(j + (r < nb ? r : 0)) * K;
    __m512 acc[8];
    for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
    for (int k = 0; k < K16; k += 16) {
      __m512 xv = _mm512_loadu_ps(x + k);
#pragma GCC unroll 8
      for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(b[r] + k), acc[r]);
    }
    if (tail) {
      __m512 xv = _mm512_maskz_loadu_ps(tail, x + K16);
      for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, b[r] + K16), acc[r]);
    }
    for (int r = 0; r < nb; r++) store_c(g, 0, j + r, _mm512_reduce_add_ps(acc[r]));
  }
}

__attribute__((target("avx2,fma")))
static float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
static void dots_avx2(const gemv_job *g, const float *const *a, int j0, int j1) {
  const int M = g->M, K = g->K;
  const int K8 = K & ~7;
  for (int j = j0; j < j1; j += 4) {
    int nb = j1 - j < 4 ? j1 - j : 4;
    const float *b[4];
    for (int r = 0; r < 4; r++) b[r] = g->B + (size_t)(j + (r < nb ? r : 0)) * K;
    for (int i0 = 0; i0 < M; i0 += 4) {
      const int mi = M - i0 < 4 ? M - i0 : 4;
      __m256 acc[4][4];
      for (int i = 0; i < mi; i++) for (int r = 0; r < 4; r++) acc[i][r] = _mm256_setzero_ps();
      for (int k = 0; k < K8; k += 8) {
        __m256 b0 = _mm256_loadu_ps(b[0] + k), b1 = _mm256_loadu_ps(b[1] + k);
        __m256 b2 = _mm256_loadu_ps(b[2] + k), b3 = _mm256_loadu_ps(b[3] + k);
        for (int i = 0; i < mi; i++) {
          __m256 x = _mm256_loadu_ps(a[i0 + i] + k);
          acc[i][0] = _mm256_fmadd_ps(x, b0, acc[i][0]);
          acc[i][1] = _mm256_fmadd_ps(x, b1, acc[i][1]);
          acc[i][2] = _mm256_fmadd_ps(x, b2, acc[i][2]);
          acc[i][3] = _mm256_fmadd_ps(x, b3, acc[i][3]);
        }
      }
      for (int i = 0; i < mi; i++)
        for (int r = 0; r < nb; r++) {
          float s = hsum256(acc[i][r]);
          for (int k = K8; k < K; k++) s += a[i0 + i][k] * b[r][k];
          store_c(g, i0 + i, j + r, s);
        }
    }
  }
}
#endif


#ifdef KILN_SIMD128
static inline float hsum128(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

/* 4 rows of B at a time against up to 4 rows of A, 4 lanes each; the K tail in order after the lanes are summed */
static void dots_simd128(const gemv_job *g, const float *const *a, int j0, int j1) {
  const int M = g->M, K = g->K;
  const int K4 = K & ~3;
  for (int j = j0; j < j1; j += 4) {
    int nb = j1 - j < 4 ? j1 - j : 4;
    const float *b[4];
    for (int r = 0; r < 4; r++) b[r] = g->B + (size_t)(j + (r < nb ? r : 0)) * K;
    for (int i = 0; i < M; i++) {
      const float *x = a[i];
      v128_t acc0 = wasm_f32x4_splat(0.0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
      for (int k = 0; k < K4; k += 4) {
        v128_t xv = wasm_v128_load(x + k);
        acc0 = wasm_f32x4_add(acc0, wasm_f32x4_mul(xv, wasm_v128_load(b[0] + k)));
        acc1 = wasm_f32x4_add(acc1, wasm_f32x4_mul(xv, wasm_v128_load(b[1] + k)));
        acc2 = wasm_f32x4_add(acc2, wasm_f32x4_mul(xv, wasm_v128_load(b[2] + k)));
        acc3 = wasm_f32x4_add(acc3, wasm_f32x4_mul(xv, wasm_v128_load(b[3] + k)));
      }
      float s[4] = { hsum128(acc0), hsum128(acc1), hsum128(acc2), hsum128(acc3) };
      for (int r = 0; r < nb; r++) {
        for (int k = K4; k < K; k++) s[r] += x[k] * b[r][k];
        store_c(g, i, j + r, s[r]);
      }
    }
  }
}

/* 16 columns a block (4 vectors) for each row of A, B read row by row */
static void rows_simd128(const gemv_job *g, const float *const *a, int j0, int j1) {
  const int M = g->M, N = g->N, K = g->K;
  int j = j0;
  for (; j + 16 <= j1; j += 16) {
    for (int i = 0; i < M; i++) {
      v128_t acc0 = wasm_f32x4_splat(0.0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
      const float *b = g->B + j;
      for (int k = 0; k < K; k++, b += N) {
        v128_t x = wasm_f32x4_splat(a[i][k]);
        acc0 = wasm_f32x4_add(acc0, wasm_f32x4_mul(x, wasm_v128_load(b)));
        acc1 = wasm_f32x4_add(acc1, wasm_f32x4_mul(x, wasm_v128_load(b + 4)));
        acc2 = wasm_f32x4_add(acc2, wasm_f32x4_mul(x, wasm_v128_load(b + 8)));
        acc3 = wasm_f32x4_add(acc3, wasm_f32x4_mul(x, wasm_v128_load(b + 12)));
      }
      float t[16];
      wasm_v128_store(t, acc0); wasm_v128_store(t + 4, acc1); wasm_v128_store(t + 8, acc2); wasm_v128_store(t + 12, acc3);
      for (int c = 0; c < 16; c++) store_c(g, i, j + c, t[c]);
    }
  }
  if (j < j1) rows_scalar(g, a, j, j1);
}
#endif

typedef void (*span_fn)(const gemv_job *g, const float *const *a, int j0, int j1);

static span_fn pick(int transB, int M, int g_K) {
  switch (kiln_isa()) {
#ifdef KILN_X86
    case KILN_ISA_AVX512:
      if (transB) return M == 1 ? dots1_avx512 : M <= ROWS_TILE_MAX_M || g_K > DOTS_PANEL_MAX_K ? dots_avx512 : dots_blocked_avx512;
      return M <= ROWS_TILE_MAX_M ? rows_avx512 : rows_blocked_avx512;
    case KILN_ISA_AVX2: return transB ? dots_avx2 : rows_avx2;
#endif
#ifdef KILN_SIMD128
    case KILN_ISA_SIMD128: return transB ? dots_simd128 : rows_simd128;
#endif
    default: return transB ? dots_scalar : rows_scalar;
  }
}

typedef struct { const gemv_job *g; const float *const *a; span_fn fn; size_t per; } gemv_task;

static void gemv_range(void *p, size_t begin, size_t end) {
  const gemv_task *t = p;
  size_t j0 = begin * t->per, j1 = end * t->per;
  if (j1 > (size_t)t->g->N) j1 = (size_t)t->g->N;
  t->fn(t->g, t->a, (int)j0, (int)j1);
}

void kiln_gemv_span(int transB, int M, int N, int K, const float *A, const float *B, float beta, float *C, int j0,
                    int j1) {
  gemv_job g = { 0, transB, M, N, K, 1.0f, beta, A, B, C };
  const float *a[KILN_GEMV_MAX_M];
  for (int i = 0; i < M; i++) a[i] = A + (size_t)i * K;
  if (j0 < j1) pick(transB, M, K)(&g, a, j0, j1);
}

int kiln_gemv_applies(int batch, int M, int K) { return batch == 1 && M >= 1 && M <= KILN_GEMV_MAX_M && K >= 1; }

/* Called with the kernel lock held (from kiln_gemm); `scratch` holds M * K floats for a transposed A. With
 * `serial`, runs on the calling thread only (a kernel already running on a pool thread). */
void kiln_gemv_locked(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                      float beta, float *C, float *scratch, int serial) {
  gemv_job g = { transA, transB, M, N, K, alpha, beta, A, B, C };
  const float *a[KILN_GEMV_MAX_M];
  for (int i = 0; i < M; i++) a[i] = a_row(&g, i, scratch + (size_t)i * K);
  if (serial) {
    pick(transB, M, K)(&g, a, 0, N);
    return;
  }
  /* One chunk of columns per thread, a multiple of 64 (the widest column block): every column is computed the same
   * way wherever the chunk edges fall, so the thread count never changes a result. */
  int T = kiln_threads();
  size_t per = (((size_t)N + T - 1) / T + 63) / 64 * 64;
  gemv_task t = { &g, a, pick(transB, M, K), per };
  size_t chunks = ((size_t)N + per - 1) / per;
  /* A second thread pays only for big products: inside a decoding step, where JavaScript runs between the kernels
   * and V8's background threads share the cores, a 256x768 product took 48 us on two threads against 26 us on
   * one (the worker is rarely where it is needed); the 4096x256 LM head is still faster on two. */
  size_t min_parallel = (size_t)M * K * N >= ((size_t)1 << 16) ? 2 : chunks + 1;
  kiln_parallel_for(chunks, 1, min_parallel, gemv_range, &t);
}

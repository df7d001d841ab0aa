/* Batched float32 GEMM, C = alpha * op(A) @ op(B) + beta * C, in the BLIS style: A and B are packed into
 * contiguous micro-panels (transposes are resolved while packing), blocked for L1/L2 (KC, MC) and L3 (NC),
 * and multiplied by a register-tiled micro-kernel per ISA (AVX-512 14x32, AVX2 6x16, portable 4x8).
 * Threads split C by fixed row (or column-panel) ranges and never split K, so results are bitwise the same
 * for any thread count. With beta = 0, C is never read.
 * kiln_gemm_bf16 runs the same driver with inputs rounded to bfloat16 (round to nearest even) and float32
 * accumulation: on CPUs with AVX512_BF16 the packing converts float32 panels to bf16 pairs on the fly and a 14x32
 * vdpbf16ps micro-kernel multiplies them (half the packed bytes, twice the products per instruction); elsewhere the
 * float32 panels are rounded to bf16 values in place and the float32 micro-kernel runs (the same products, exact in
 * float32, summed in another order). */
#include "kiln.h"
#include <stdatomic.h>
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

typedef void (*ukernel_fn)(int kc, const float *A, const float *B, float *C, long ldc, float alpha, float beta);

#define MAX_MR 16
#define MAX_NR 32

/* ---------------- micro-kernels ---------------- */

#ifdef KILN_X86
#define MR512 14
#define NR512 32
__attribute__((target("avx512f,avx2,fma")))
static void ukr_avx512(int kc, const float *restrict A, const float *restrict B, float *restrict C, long ldc,
                       float alpha, float beta) {
  __m512 c[MR512][2];
#pragma GCC unroll 14
  for (int i = 0; i < MR512; i++) {
    c[i][0] = _mm512_setzero_ps();
    c[i][1] = _mm512_setzero_ps();
    _mm_prefetch((const char *)(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(C + i * ldc + 16), _MM_HINT_T0);
  }
  for (int k = 0; k < kc; k++) {
    __m512 b0 = _mm512_load_ps(B), b1 = _mm512_load_ps(B + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR512; i++) {
      __m512 a = _mm512_set1_ps(A[i]);
      c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
    }
    A += MR512;
    B += NR512;
  }
  __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 14
    for (int i = 0; i < MR512; i++) {
      _mm512_storeu_ps(C + i * ldc, _mm512_mul_ps(c[i][0], va));
      _mm512_storeu_ps(C + i * ldc + 16, _mm512_mul_ps(c[i][1], va));
    }
  } else if (beta == 1.0f) {
#pragma GCC unroll 14
    for (int i = 0; i < MR512; i++) {
      _mm512_storeu_ps(C + i * ldc, _mm512_fmadd_ps(c[i][0], va, _mm512_loadu_ps(C + i * ldc)));
      _mm512_storeu_ps(C + i * ldc + 16, _mm512_fmadd_ps(c[i][1], va, _mm512_loadu_ps(C + i * ldc + 16)));
    }
  } else {
    __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
    for (int i = 0; i < MR512; i++) {
      _mm512_storeu_ps(C + i * ldc, _mm512_fmadd_ps(c[i][0], va, _mm512_mul_ps(_mm512_loadu_ps(C + i * ldc), vb)));
      _mm512_storeu_ps(C + i * ldc + 16,
                       _mm512_fmadd_ps(c[i][1], va, _mm512_mul_ps(_mm512_loadu_ps(C + i * ldc + 16), vb)));
    }
  }
}


/* Pair layout (mode 2): a packed A panel holds, per k pair p, MR 32-bit words (bf16(a[r][2p]) low, bf16(a[r][2p+1])
 * high); a B panel holds NR such words per k pair. vdpbf16ps adds both products of a pair into one float32 lane. */
__attribute__((target("avx512f,avx512bf16")))
static void ukr_bf16(int kp, const float *restrict Af, const float *restrict Bf, float *restrict C, long ldc,
                     float alpha, float beta) {
  const int32_t *A = (const int32_t *)Af; /* (kp, MR512) pairs */
  const int32_t *B = (const int32_t *)Bf; /* (kp, NR512) pairs */
  __m512 c[MR512][2];
#pragma GCC unroll 14
  for (int i = 0; i < MR512; i++) {
    c[i][0] = _mm512_setzero_ps();
    c[i][1] = _mm512_setzero_ps();
    _mm_prefetch((const char *)(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(C + i * ldc + 16), _MM_HINT_T0);
  }
  for (int k = 0; k < kp; k++) {
    __m512bh b0 = (__m512bh)_mm512_load_si512(B), b1 = (__m512bh)_mm512_load_si512(B + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR512; i++) {
      __m512bh a = (__m512bh)_mm512_set1_epi32(A[i]);
      c[i][0] = _mm512_dpbf16_ps(c[i][0], a, b0);
      c[i][1] = _mm512_dpbf16_ps(c[i][1], a, b1);
    }
    A += MR512;
    B += NR512;
  }
  __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 14
    for (int i = 0; i < MR512; i++) {
      _mm512_storeu_ps(C + i * ldc, _mm512_mul_ps(c[i][0], va));
      _mm512_storeu_ps(C + i * ldc + 16, _mm512_mul_ps(c[i][1], va));
    }
  } else {
    __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
    for (int i = 0; i < MR512; i++) {
      _mm512_storeu_ps(C + i * ldc, _mm512_fmadd_ps(c[i][0], va, _mm512_mul_ps(_mm512_loadu_ps(C + i * ldc), vb)));
      _mm512_storeu_ps(C + i * ldc + 16,
                       _mm512_fmadd_ps(c[i][1], va, _mm512_mul_ps(_mm512_loadu_ps(C + i * ldc + 16), vb)));
    }
  }
}

#define MR256 6
#define NR256 16
__attribute__((target("avx2,fma")))
static void ukr_avx2(int kc, const float *restrict A, const float *restrict B, float *restrict C, long ldc,
                     float alpha, float beta) {
  __m256 c[MR256][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR256; i++) {
    c[i][0] = _mm256_setzero_ps();
    c[i][1] = _mm256_setzero_ps();
    _mm_prefetch((const char *)(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(C + i * ldc + 8), _MM_HINT_T0);
  }
  for (int k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(B), b1 = _mm256_load_ps(B + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR256; i++) {
      __m256 a = _mm256_broadcast_ss(A + i);
      c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
    }
    A += MR256;
    B += NR256;
  }
  __m256 va = _mm256_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 6
    for (int i = 0; i < MR256; i++) {
      _mm256_storeu_ps(C + i * ldc, _mm256_mul_ps(c[i][0], va));
      _mm256_storeu_ps(C + i * ldc + 8, _mm256_mul_ps(c[i][1], va));
    }
  } else {
    __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < MR256; i++) {
      _mm256_storeu_ps(C + i * ldc, _mm256_fmadd_ps(c[i][0], va, _mm256_mul_ps(_mm256_loadu_ps(C + i * ldc), vb)));
      _mm256_storeu_ps(C + i * ldc + 8,
                       _mm256_fmadd_ps(c[i][1], va, _mm256_mul_ps(_mm256_loadu_ps(C + i * ldc + 8), vb)));
    }
  }
}
#endif


#ifdef KILN_SIMD128
/* WebAssembly SIMD128 has no fused multiply-add: a multiply and an add per product. V8 on x86 keeps a tile in its
 * 15 free xmm registers only up to 4x8 (8 accumulators, 2 of B, a broadcast of A, a product): 6x8 spills and runs at
 * 57% of 4x8's speed (50 against 29 GFLOP/s measured on one core). */
#define MR128 4
#define NR128 8
static void ukr_simd128(int kc, const float *restrict A, const float *restrict B, float *restrict C, long ldc,
                        float alpha, float beta) {
  v128_t c00 = wasm_f32x4_splat(0.0f), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int k = 0; k < kc; k++) {
    v128_t b0 = wasm_v128_load(B), b1 = wasm_v128_load(B + 4);
    v128_t a;
    a = wasm_v128_load32_splat(A + 0); c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(a, b0)); c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(a, b1));
    a = wasm_v128_load32_splat(A + 1); c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(a, b0)); c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(a, b1));
    a = wasm_v128_load32_splat(A + 2); c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(a, b0)); c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(a, b1));
    a = wasm_v128_load32_splat(A + 3); c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(a, b0)); c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(a, b1));
    A += MR128;
    B += NR128;
  }
  v128_t acc[MR128][2] = { { c00, c01 }, { c10, c11 }, { c20, c21 }, { c30, c31 } };
  v128_t va = wasm_f32x4_splat(alpha);
  for (int i = 0; i < MR128; i++) {
    float *c = C + i * ldc;
    v128_t r0 = wasm_f32x4_mul(acc[i][0], va), r1 = wasm_f32x4_mul(acc[i][1], va);
    if (beta != 0.0f) {
      v128_t vb = wasm_f32x4_splat(beta);
      r0 = wasm_f32x4_add(r0, wasm_f32x4_mul(wasm_v128_load(c), vb));
      r1 = wasm_f32x4_add(r1, wasm_f32x4_mul(wasm_v128_load(c + 4), vb));
    }
    wasm_v128_store(c, r0);
    wasm_v128_store(c + 4, r1);
  }
}
#endif

#define MRS 4
#define NRS 8
static void ukr_scalar(int kc, const float *restrict A, const float *restrict B, float *restrict C, long ldc,
                       float alpha, float beta) {
  float c[MRS][NRS];
  memset(c, 0, sizeof c);
  for (int k = 0; k < kc; k++) {
    for (int i = 0; i < MRS; i++) {
      float a = A[i];
      for (int j = 0; j < NRS; j++) c[i][j] += a * B[j];
    }
    A += MRS;
    B += NRS;
  }
  for (int i = 0; i < MRS; i++)
    for (int j = 0; j < NRS; j++) {
      float r = alpha * c[i][j];
      C[i * ldc + j] = beta == 0.0f ? r : r + beta * C[i * ldc + j];
    }
}

/* ---------------- blocking parameters ---------------- */

/* mode: 0 float32; 1 float32 panels rounded to bf16 values (fallback); 2 bf16 pairs for vdpbf16ps. */
typedef struct { ukernel_fn ukr; int MR, NR, MC, KC, NC, mode; } gemm_cfg;

static int tune_mc = 0, tune_kc = 0, tune_nc = 0;
void kiln_gemm_tune(int mc, int kc, int nc) { tune_mc = mc; tune_kc = kc; tune_nc = nc; }

static gemm_cfg config(int bf16) {
  gemm_cfg g;
#ifdef KILN_X86
  if (bf16 && kiln_bf16()) {
    /* A k pair costs the bytes of one float32 k step, so KC doubles for the same cache footprint. */
    g = (gemm_cfg){ ukr_bf16, MR512, NR512, 14 * 18, 1024, 4096, 2 };
    if (tune_mc > 0) g.MC = (tune_mc + g.MR - 1) / g.MR * g.MR;
    if (tune_kc > 0) g.KC = 2 * tune_kc;
    if (tune_nc > 0) g.NC = (tune_nc + g.NR - 1) / g.NR * g.NR;
    return g;
  }
#endif
  switch (kiln_isa()) {
#ifdef KILN_X86
    case KILN_ISA_AVX512: g = (gemm_cfg){ ukr_avx512, MR512, NR512, 14 * 18, 512, 4096, 0 }; break;
    case KILN_ISA_AVX2: g = (gemm_cfg){ ukr_avx2, MR256, NR256, 6 * 24, 512, 4096, 0 }; break;
#endif
#ifdef KILN_SIMD128
    case KILN_ISA_SIMD128: g = (gemm_cfg){ ukr_simd128, MR128, NR128, 4 * 36, 256, 2048, 0 }; break;
#endif
    default: g = (gemm_cfg){ ukr_scalar, MRS, NRS, 4 * 32, 256, 2048, 0 }; break;
  }
  g.mode = bf16 ? 1 : 0;
  if (tune_mc > 0) g.MC = (tune_mc + g.MR - 1) / g.MR * g.MR;
  if (tune_kc > 0) g.KC = tune_kc;
  if (tune_nc > 0) g.NC = (tune_nc + g.NR - 1) / g.NR * g.NR;
  return g;
}

/* ---------------- packing ---------------- */

/* Transposing copy: dst[k * P + r] = rows[r][k] for r < R, k < kc, and 0 for R <= r < P. This is the packing of
 * a row-major A (rows of A become columns of the panel) and of a transposed B. */
static void pack_rows_t_c(const float *const *rows, int R, int kc, int P, float *dst) {
  for (int k = 0; k < kc; k++) {
    int r = 0;
    for (; r < R; r++) dst[(size_t)k * P + r] = rows[r][k];
    for (; r < P; r++) dst[(size_t)k * P + r] = 0.0f;
  }
}

#ifdef KILN_X86
/* The same with 8x8 AVX transposes. A group of fewer than 8 rows repeats its last row; its extra lanes land on
 * padding rows (zeroed at the end), so the stores stay whole vectors. Where a last group would reach past the
 * panel's width P (rows 8..13 of a 14-wide A panel), it starts at P - 8 instead and rewrites two rows with the same
 * values: a masked store (vmaskmovps) costs several times a plain one on AMD cores, and A's packing took 14% of a
 * 256x256 product with it. Only panels narrower than 8 mask their stores. */
__attribute__((target("avx2,fma")))
static void pack_rows_t_avx(const float *const *rows, int R, int kc, int P, float *dst) {
  for (int g = 0; g < R; g += 8) {
    int r0 = P >= 8 && g + 8 > P ? P - 8 : g; /* first row of this group */
    int rem = R - r0 < 8 ? R - r0 : 8;
    int whole = r0 + 8 <= P;
    const float *p[8];
    for (int i = 0; i < 8; i++) p[i] = rows[r0 + (i < rem ? i : rem - 1)];
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
      __m256 a0 = _mm256_loadu_ps(p[0] + k), a1 = _mm256_loadu_ps(p[1] + k), a2 = _mm256_loadu_ps(p[2] + k);
      __m256 a3 = _mm256_loadu_ps(p[3] + k), a4 = _mm256_loadu_ps(p[4] + k), a5 = _mm256_loadu_ps(p[5] + k);
      __m256 a6 = _mm256_loadu_ps(p[6] + k), a7 = _mm256_loadu_ps(p[7] + k);
      __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
      __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
      __m256 t4 = _mm256_unpacklo_ps(a4, a5), t5 = _mm256_unpackhi_ps(a4, a5);
      __m256 t6 = _mm256_unpacklo_ps(a6, a7), t7 = _mm256_unpackhi_ps(a6, a7);
      __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
      __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
      __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
      __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
      __m256 o[8];
      o[0] = _mm256_permute2f128_ps(u0, u4, 0x20); o[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
      o[2] = _mm256_permute2f128_ps(u2, u6, 0x20); o[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
      o[4] = _mm256_permute2f128_ps(u0, u4, 0x31); o[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
      o[6] = _mm256_permute2f128_ps(u2, u6, 0x31); o[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
      float *d = dst + (size_t)k * P + r0;
      if (whole) {
        for (int j = 0; j < 8; j++) _mm256_storeu_ps(d + (size_t)j * P, o[j]);
      } else {
        for (int j = 0; j < 8; j++) _mm256_maskstore_ps(d + (size_t)j * P, mask, o[j]);
      }
    }
    for (; k < kc; k++)
      for (int i = 0; i < rem; i++) dst[(size_t)k * P + r0 + i] = p[i][k];
  }
  if (R < P)
    for (int k = 0; k < kc; k++)
      for (int r = R; r < P; r++) dst[(size_t)k * P + r] = 0.0f;
}
#endif


#ifdef KILN_SIMD128
/* The same with 4x4 SIMD128 transposes; a last group of fewer than 4 rows goes through the portable loop. */
static void pack_rows_t_simd128(const float *const *rows, int R, int kc, int P, float *dst) {
  int r0 = 0;
  for (; r0 + 4 <= R; r0 += 4) {
    const float *p0 = rows[r0], *p1 = rows[r0 + 1], *p2 = rows[r0 + 2], *p3 = rows[r0 + 3];
    int k = 0;
    for (; k + 4 <= kc; k += 4) {
      v128_t a0 = wasm_v128_load(p0 + k), a1 = wasm_v128_load(p1 + k), a2 = wasm_v128_load(p2 + k), a3 = wasm_v128_load(p3 + k);
      v128_t t0 = wasm_i32x4_shuffle(a0, a1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(a0, a1, 2, 6, 3, 7);
      v128_t t2 = wasm_i32x4_shuffle(a2, a3, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(a2, a3, 2, 6, 3, 7);
      float *d = dst + (size_t)k * P + r0;
      wasm_v128_store(d, wasm_i64x2_shuffle(t0, t2, 0, 2));
      wasm_v128_store(d + P, wasm_i64x2_shuffle(t0, t2, 1, 3));
      wasm_v128_store(d + 2 * (size_t)P, wasm_i64x2_shuffle(t1, t3, 0, 2));
      wasm_v128_store(d + 3 * (size_t)P, wasm_i64x2_shuffle(t1, t3, 1, 3));
    }
    for (; k < kc; k++) {
      float *d = dst + (size_t)k * P + r0;
      d[0] = p0[k]; d[1] = p1[k]; d[2] = p2[k]; d[3] = p3[k];
    }
  }
  for (int k = 0; k < kc; k++)
    for (int r = r0; r < P; r++) dst[(size_t)k * P + r] = r < R ? rows[r][k] : 0.0f;
}
#endif

static void pack_rows_t(const float *const *rows, int R, int kc, int P, float *dst) {
#ifdef KILN_SIMD128
  if (kiln_isa() == KILN_ISA_SIMD128) { pack_rows_t_simd128(rows, R, kc, P, dst); return; }
#endif
#ifdef KILN_X86
  if (kiln_isa() >= KILN_ISA_AVX2) { pack_rows_t_avx(rows, R, kc, P, dst); return; }
#endif
  pack_rows_t_c(rows, R, kc, P, dst);
}

void kiln_pack_rows_t(const float *const *rows, int R, int kc, int P, float *dst) { pack_rows_t(rows, R, kc, P, dst); }

/* ---------------- bfloat16 rounding ---------------- */

/* x rounded to the nearest bf16 (ties to even), as the high 16 bits of the returned word; NaN stays a quiet NaN. */
static inline uint32_t bf16_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return u | 0x00400000u;
  return u + 0x7fffu + ((u >> 16) & 1u);
}

float kiln_bf16_round(float x) {
  uint32_t u = bf16_bits(x) & 0xffff0000u;
  float r;
  memcpy(&r, &u, 4);
  return r;
}

#ifdef KILN_X86
__attribute__((target("avx512f")))
static inline __m512i bf16_bits512(__m512 x) {
  __m512i u = _mm512_castps_si512(x);
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                                   _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))));
  __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
}

/* dst[r] = pair(e[r], o[r]) for r < n and 0 for n <= r < P; o NULL gives a zero high half. */
__attribute__((target("avx512f")))
static void pair_row_512(const float *e, const float *o, int n, int P, uint32_t *dst) {
  for (int r = 0; r < P; r += 16) {
    __mmask16 m = n - r >= 16 ? 0xffff : n - r <= 0 ? 0 : (__mmask16)((1u << (n - r)) - 1);
    /* plain loads for whole vectors: a zero-masked load is several times slower on AMD's Zen 4 */
    const int whole = m == 0xffff;
    __m512i lo = _mm512_srli_epi32(bf16_bits512(whole ? _mm512_loadu_ps(e + r) : _mm512_maskz_loadu_ps(m, e + r)), 16);
    __m512i hi = o ? _mm512_and_si512(bf16_bits512(whole ? _mm512_loadu_ps(o + r) : _mm512_maskz_loadu_ps(m, o + r)),
                                      _mm512_set1_epi32((int)0xffff0000u))
                   : _mm512_setzero_si512();
    __m512i w = _mm512_maskz_or_epi32(m, lo, hi);
    if (P - r >= 16) _mm512_storeu_si512(dst + r, w);
    else _mm512_mask_storeu_epi32(dst + r, (__mmask16)((1u << (P - r)) - 1), w);
  }
}

__attribute__((target("avx512f")))
static void round_panel_512(float *x, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i b = _mm512_and_si512(bf16_bits512(_mm512_loadu_ps(x + i)), _mm512_set1_epi32((int)0xffff0000u));
    _mm512_storeu_ps(x + i, _mm512_castsi512_ps(b));
  }
  for (; i < n; i++) x[i] = kiln_bf16_round(x[i]);
}
#endif

static void pair_row(const float *e, const float *o, int n, int P, uint32_t *dst) {
#ifdef KILN_X86
  if (kiln_isa() >= KILN_ISA_AVX512) { pair_row_512(e, o, n, P, dst); return; }
#endif
  for (int r = 0; r < P; r++)
    dst[r] = r < n ? (bf16_bits(e[r]) >> 16) | (o ? bf16_bits(o[r]) & 0xffff0000u : 0u) : 0u;
}

/* Mode 1: a float32 panel's values rounded to bf16 in place. */
static void round_panel(float *x, size_t n) {
#ifdef KILN_X86
  if (kiln_isa() >= KILN_ISA_AVX512) { round_panel_512(x, n); return; }
#endif
  for (size_t i = 0; i < n; i++) x[i] = kiln_bf16_round(x[i]);
}

/* dst (ceil(n/2)) pairs of one contiguous row x from value k0 on: word p = bf16(x[2p]) | bf16(x[2p+1]) << 16. */
static void row_pairs_c(const float *x, int k0, int n, uint32_t *dst) {
  for (int k = k0; k < n; k += 2) dst[k / 2] = (bf16_bits(x[k]) >> 16) | (k + 1 < n ? bf16_bits(x[k + 1]) & 0xffff0000u : 0u);
}

#ifdef KILN_X86
/* dst (ceil(n/2)) pairs of one contiguous row x (n), as row_pairs_c, 32 values a step:
 * after rounding, the high halves of the 32 words are picked in order by one 16-bit permute. */
__attribute__((target("avx512f,avx512bw")))
static void row_pairs_512(const float *x, int n, uint32_t *dst) {
  const __m512i high_halves = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33,
                                               31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  int k = 0;
  for (; k + 32 <= n; k += 32) {
    const __m512i b0 = bf16_bits512(_mm512_loadu_ps(x + k)), b1 = bf16_bits512(_mm512_loadu_ps(x + k + 16));
    _mm512_storeu_si512(dst + k / 2, _mm512_permutex2var_epi16(b0, high_halves, b1));
  }
  row_pairs_c(x, k, n, dst);
}
#endif

/* Mode 2 from R rows of kc contiguous values (a row-major A, a transposed B): dst (ceil(kc/2), P) pairs of
 * consecutive k, rows R .. P zero. Each row becomes pairs in place of its own (scratch: R * ceil(kc/2) words), then
 * the words are transposed as pack_rows_t transposes floats: half the data of transposing the floats first. */
static void pair_rows_t(const float *const *rows, int R, int kc, int P, uint32_t *dst, uint32_t *scratch) {
  const int kcs = (kc + 1) / 2;
  const float *pairs[MAX_NR];
  for (int r = 0; r < R; r++) {
    uint32_t *w = scratch + (size_t)r * kcs; /* (kcs) pairs of row r */
#ifdef KILN_X86
    if (kiln_isa() >= KILN_ISA_AVX512) row_pairs_512(rows[r], kc, w);
    else
#endif
      row_pairs_c(rows[r], 0, kc, w);
    pairs[r] = (const float *)w;
  }
  pack_rows_t(pairs, R, kcs, P, (float *)dst); /* moves 32-bit words; no arithmetic touches them */
}

/* Ap: ceil(mc/MR) panels of (kc, MR) (mode 2: (ceil(kc/2), MR) pairs); op(A)(i, k) = transA ? A[k*M + i] : A[i*K + k].
 * tmp: scratch of (MR, ceil(kc/2)) words for mode 2. */
static void pack_a(const gemm_cfg *cf, int transA, const float *A, int M, int K, int i0, int mc, int p0, int kc,
                   float *Ap, float *tmp) {
  const int MR = cf->MR, kcs = cf->mode == 2 ? (kc + 1) / 2 : kc;
  if (cf->mode == 2 && transA) {
    /* k pairs outermost: rows k and k+1 of A are paired across the whole block at once, in order and in whole
     * vectors, then each panel copies its MR words (panel by panel, each row was read in pieces of MR values, a
     * cache line in two, with masked vector loads) */
    uint32_t *pairs = (uint32_t *)tmp; /* (mc) pairs of one k pair */
    for (int k = 0; k < kc; k += 2) {
      const float *e = A + (size_t)(p0 + k) * M + i0, *o = k + 1 < kc ? e + M : NULL; /* (mc) each */
      pair_row(e, o, mc, mc, pairs);
      for (int ir = 0; ir < mc; ir += MR) {
        int mr = mc - ir < MR ? mc - ir : MR;
        uint32_t *d = (uint32_t *)(Ap + (size_t)ir * kcs) + (size_t)(k / 2) * MR; /* (MR) of panel ir */
        memcpy(d, pairs + ir, sizeof(uint32_t) * (size_t)mr);
        if (mr < MR) memset(d + mr, 0, sizeof(uint32_t) * (size_t)(MR - mr));
      }
    }
    return;
  }
  for (int ir = 0; ir < mc; ir += MR) {
    int mr = mc - ir < MR ? mc - ir : MR;
    float *dst = Ap + (size_t)ir * kcs;
    float *out = dst;
    if (!transA) {
      const float *rows[MAX_MR];
      for (int r = 0; r < mr; r++) rows[r] = A + (size_t)(i0 + ir + r) * K + p0;
      if (cf->mode == 2) { pair_rows_t(rows, mr, kc, MR, (uint32_t *)dst, (uint32_t *)tmp); continue; }
      pack_rows_t(rows, mr, kc, MR, out);
    } else {
      const float *src = A + (size_t)p0 * M + i0 + ir;
      float *d = out;
      for (int k = 0; k < kc; k++) {
        int r = 0;
        for (; r < mr; r++) d[r] = src[r];
        for (; r < MR; r++) d[r] = 0.0f;
        d += MR;
        src += M;
      }
    }
    if (cf->mode == 1) round_panel(dst, (size_t)kc * MR);
  }
}

/* One B panel: (kc, NR) (mode 2: (ceil(kc/2), NR) pairs) from columns j0 .. j0+nr; op(B)(k, j) = transB ? B[j*K + k]
 * : B[k*N + j]. tmp: scratch of (NR, ceil(kc/2)) words for mode 2. */
static void pack_b_panel(const gemm_cfg *cf, int transB, const float *B, int N, int K, int j0, int nr, int p0, int kc,
                         float *dst, float *tmp) {
  const int NR = cf->NR;
  if (cf->mode == 2 && !transB) {
    const float *src = B + (size_t)p0 * N + j0;
    for (int k = 0; k < kc; k += 2)
      pair_row(src + (size_t)k * N, k + 1 < kc ? src + (size_t)(k + 1) * N : NULL, nr, NR,
               (uint32_t *)dst + (size_t)(k / 2) * NR);
    return;
  }
  float *out = dst;
  if (!transB) {
    const float *src = B + (size_t)p0 * N + j0;
    float *d = out;
    if (nr == NR) {
      for (int k = 0; k < kc; k++) { memcpy(d, src, sizeof(float) * NR); d += NR; src += N; }
    } else {
      for (int k = 0; k < kc; k++) {
        int c = 0;
        for (; c < nr; c++) d[c] = src[c];
        for (; c < NR; c++) d[c] = 0.0f;
        d += NR;
        src += N;
      }
    }
  } else {
    const float *rows[MAX_NR];
    for (int c = 0; c < nr; c++) rows[c] = B + (size_t)(j0 + c) * K + p0;
    if (cf->mode == 2) { pair_rows_t(rows, nr, kc, NR, (uint32_t *)dst, (uint32_t *)tmp); return; }
    pack_rows_t(rows, nr, kc, NR, out);
  }
  if (cf->mode == 1) round_panel(dst, (size_t)kc * NR);
}

/* ---------------- per-thread buffers ---------------- */

#define MAX_POOL 256
static float *abuf[MAX_POOL], *bbuf[MAX_POOL], *tbuf[MAX_POOL]; /* tbuf: (KC, max(MR, NR)) mode-2 scratch */
static size_t abuf_n[MAX_POOL], bbuf_n[MAX_POOL], tbuf_n[MAX_POOL];

static int ensure(float **buf, size_t *have, size_t need) {
  if (*have >= need) return 0;
  free(*buf);
  /* A panel buffer of a MiB or more is a whole number of 2 MiB huge pages (a few faults instead of hundreds). */
  const size_t huge = (size_t)2 << 20;
  size_t bytes = (need * sizeof(float) + 63) / 64 * 64;
#if defined(__wasm__)
  size_t align = 64; /* no pages to advise in wasm */
#else
  size_t align = bytes >= huge / 2 ? huge : 64;
#endif
  bytes = (bytes + align - 1) / align * align;
  *buf = aligned_alloc(align, bytes);
  if (*buf && align == huge) kiln_memory_advise_huge(*buf, bytes);
  *have = *buf ? bytes / sizeof(float) : 0;
  return *buf ? 0 : -1;
}

/* ---------------- driver ---------------- */

typedef struct {
  gemm_cfg cfg;
  int transA, transB, M, N, K;
  float alpha, beta;
  const float *A, *B;
  float *C;
  long strideA, strideB, strideC;
  int batch;
  int splitN; /* 1: threads own column panels (small M); 0: threads share row blocks */
  _Atomic int next_panel[2], next_block[2];
} gemm_job;

static void merge_edge(float *c, long ldc, const float *tmp, int NR, int mr, int nr, float beta) {
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) {
      float r = tmp[i * NR + j];
      c[i * ldc + j] = beta == 0.0f ? r : r + beta * c[i * ldc + j];
    }
}

/* Computes the tiles of C rows [m0, m1) (m0 a multiple of MR) against the packed column panels [q0, q1). */
static void macro_block(const gemm_job *g, const float *A, float *C, int m0, int m1, int q0, int q1, int jc, int nc,
                        int pc, int kc, float beta, float *Ap, const float *Bp, float *tmpbuf) {
  const gemm_cfg *cf = &g->cfg;
  const int M = g->M, N = g->N, K = g->K, MR = cf->MR, NR = cf->NR;
  _Alignas(64) float tmp[MAX_MR * MAX_NR];
  const int kcs = cf->mode == 2 ? (kc + 1) / 2 : kc; /* stored k steps per panel */
  for (int ic = m0; ic < m1; ic += cf->MC) {
    int mc = m1 - ic < cf->MC ? m1 - ic : cf->MC;
    pack_a(cf, g->transA, A, M, K, ic, mc, pc, kc, Ap, tmpbuf);
    for (int q = q0; q < q1; q++) {
      int jr = q * NR, nr = nc - jr < NR ? nc - jr : NR;
      const float *bp = Bp + (size_t)jr * kcs;
      for (int ir = 0; ir < mc; ir += MR) {
        int mr = mc - ir < MR ? mc - ir : MR;
        float *c = C + (size_t)(ic + ir) * N + jc + jr;
        if (mr == MR && nr == NR) {
          cf->ukr(kcs, Ap + (size_t)ir * kcs, bp, c, N, g->alpha, beta);
        } else {
          cf->ukr(kcs, Ap + (size_t)ir * kcs, bp, tmp, NR, g->alpha, 0.0f);
          merge_edge(c, N, tmp, NR, mr, nr, beta);
        }
      }
    }
  }
}

/*
 * One GEMM (M, N, K) on thread tid of T; T == 1 runs it alone with this thread's buffers.
 * Shared mode (splitN = 0): per (NC, KC) block the threads pack B's panels together, then take row blocks of C
 * from a shared counter, so a thread slowed by a noisy neighbour takes fewer. Who computes a tile never changes
 * its value (K is never split), so results stay bitwise the same. Counters alternate between two sets per
 * iteration; thread 0 clears the next set between the two barriers, when no thread can be using it.
 * Column mode (splitN = 1, small M): each thread owns a fixed range of column panels and packs them itself.
 */
static void gemm_one(gemm_job *g, const float *A, const float *B, float *C, int tid, int T, float *Ap, float *Bp,
                     float *tmp, int *iter) {
  const gemm_cfg *cf = &g->cfg;
  const int M = g->M, N = g->N, K = g->K, MR = cf->MR, NR = cf->NR;
  /* Row blocks for the shared counter: about 8 per thread, a multiple of MR, and a count that divides evenly among
   * the threads where one close by does (15 blocks on 2 threads leave one thread idle for a block per K step). */
  int mb = (M + 8 * T - 1) / (8 * T);
  mb = (mb + MR - 1) / MR * MR;
  if (mb > cf->MC) mb = cf->MC;
  for (int cand = mb; T > 1 && cand > MR && cand >= mb / 2; cand -= MR) {
    if (((M + cand - 1) / cand) % T == 0) { mb = cand; break; }
  }
  int nblocks = (M + mb - 1) / mb;
  for (int jc = 0; jc < N; jc += cf->NC) {
    int nc = N - jc < cf->NC ? N - jc : cf->NC;
    int npanels = (nc + NR - 1) / NR;
    for (int pc = 0; pc < K; pc += cf->KC) {
      int kc = K - pc < cf->KC ? K - pc : cf->KC;
      int kcs = cf->mode == 2 ? (kc + 1) / 2 : kc;
      float beta = pc == 0 ? g->beta : 1.0f;
      if (T == 1) {
        for (int q = 0; q < npanels; q++) {
          int jr = q * NR, nr = nc - jr < NR ? nc - jr : NR;
          pack_b_panel(cf, g->transB, B, N, K, jc + jr, nr, pc, kc, Bp + (size_t)jr * kcs, tmp);
        }
        macro_block(g, A, C, 0, M, 0, npanels, jc, nc, pc, kc, beta, Ap, Bp, tmp);
      } else if (g->splitN) {
        int q0 = (int)((long)npanels * tid / T), q1 = (int)((long)npanels * (tid + 1) / T);
        for (int q = q0; q < q1; q++) {
          int jr = q * NR, nr = nc - jr < NR ? nc - jr : NR;
          pack_b_panel(cf, g->transB, B, N, K, jc + jr, nr, pc, kc, Bp + (size_t)jr * kcs, tmp);
        }
        macro_block(g, A, C, 0, M, q0, q1, jc, nc, pc, kc, beta, Ap, Bp, tmp);
      } else {
        int set = *iter & 1;
        (*iter)++;
        for (;;) {
          int q = atomic_fetch_add_explicit(&g->next_panel[set], 1, memory_order_relaxed);
          if (q >= npanels) break;
          int jr = q * NR, nr = nc - jr < NR ? nc - jr : NR;
          pack_b_panel(cf, g->transB, B, N, K, jc + jr, nr, pc, kc, Bp + (size_t)jr * kcs, tmp);
        }
        kiln_barrier(T);
        if (tid == 0) {
          atomic_store_explicit(&g->next_panel[set ^ 1], 0, memory_order_relaxed);
          atomic_store_explicit(&g->next_block[set ^ 1], 0, memory_order_relaxed);
        }
        for (;;) {
          int bi = atomic_fetch_add_explicit(&g->next_block[set], 1, memory_order_relaxed);
          if (bi >= nblocks) break;
          int m0 = bi * mb, m1 = m0 + mb < M ? m0 + mb : M;
          macro_block(g, A, C, m0, m1, 0, npanels, jc, nc, pc, kc, beta, Ap, Bp, tmp);
        }
        kiln_barrier(T);
      }
    }
  }
}

static void scale_c(float *C, size_t n, float beta) {
  if (beta == 1.0f) return;
  if (beta == 0.0f) { memset(C, 0, n * sizeof(float)); return; }
  for (size_t i = 0; i < n; i++) C[i] *= beta;
}

static void naive(const gemm_job *g, const float *A, const float *B, float *C) {
  const int M = g->M, N = g->N, K = g->K;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float s = 0.0f;
      for (int k = 0; k < K; k++) {
        float a = g->transA ? A[(size_t)k * M + i] : A[(size_t)i * K + k];
        float b = g->transB ? B[(size_t)j * K + k] : B[(size_t)k * N + j];
        if (g->cfg.mode) { a = kiln_bf16_round(a); b = kiln_bf16_round(b); }
        s += a * b;
      }
      float r = g->alpha * s;
      C[(size_t)i * N + j] = g->beta == 0.0f ? r : r + g->beta * C[(size_t)i * N + j];
    }
}

static int is_tiny(const gemm_job *g) { return (long)g->M * g->N * g->K <= 512; }

/* batch item b, shared by T threads of which this is `tid`; `buf` selects this thread's packing buffers */
static void item(gemm_job *g, int b, int tid, int T, int buf, int *iter) {
  const float *A = g->A + (size_t)b * g->strideA, *B = g->B + (size_t)b * g->strideB;
  float *C = g->C + (size_t)b * g->strideC;
  if (is_tiny(g)) { if (tid == 0) naive(g, A, B, C); return; }
  gemm_one(g, A, B, C, tid, T, abuf[buf], T > 1 && !g->splitN ? bbuf[0] : bbuf[buf], tbuf[buf], iter);
}

/* threads share each GEMM of the batch */
static void task_shared(void *p, int tid, int T) {
  gemm_job *g = p;
  int iter = 0;
  for (int b = 0; b < g->batch; b++) item(g, b, tid, T, tid, &iter);
}

/* threads own fixed ranges of batch items */
static void task_batch(void *p, int tid, int T) {
  gemm_job *g = p;
  int iter = 0;
  int b0 = (int)((long)g->batch * tid / T), b1 = (int)((long)g->batch * (tid + 1) / T);
  for (int b = b0; b < b1; b++) item(g, b, 0, 1, tid, &iter);
}

static void gemm_locked(int bf16, int transA, int transB, int batch, int M, int N, int K, float alpha,
                        const float *A, long strideA, const float *B, long strideB, float beta, float *C, long strideC);

void kiln_gemm(int transA, int transB, int batch, int M, int N, int K, float alpha,
               const float *A, long strideA, const float *B, long strideB, float beta, float *C, long strideC) {
  kiln_lock();
  gemm_locked(0, transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC);
  kiln_unlock();
}

void kiln_gemm_bf16(int transA, int transB, int batch, int M, int N, int K, float alpha,
                    const float *A, long strideA, const float *B, long strideB, float beta, float *C, long strideC) {
  kiln_lock();
  gemm_locked(1, transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC);
  kiln_unlock();
}

static void gemm_locked(int bf16, int transA, int transB, int batch, int M, int N, int K, float alpha,
                        const float *A, long strideA, const float *B, long strideB, float beta, float *C, long strideC) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    for (int b = 0; b < batch; b++) scale_c(C + (size_t)b * strideC, (size_t)M * N, beta);
    return;
  }
  /* Decoding-sized products stream B once instead of packing it; A's rows are copied into abuf[0] first (when that
   * buffer cannot grow, the packed path below still works). */
  if (!bf16 && kiln_gemv_applies(batch, M, K) && (long)N * K > 512 &&
      !ensure(&abuf[0], &abuf_n[0], (size_t)M * K)) {
    kiln_gemv_locked(transA, transB, M, N, K, alpha, A, B, beta, C, abuf[0], 0);
    return;
  }
  gemm_job g = { config(bf16), transA, transB, M, N, K, alpha, beta, A, B, C, strideA, strideB, strideC, batch, 0, { 0, 0 }, { 0, 0 } };
  int T = kiln_threads();
  double flops = 2.0 * M * N * K;
  if (flops * batch < 2e6) T = 1; /* ~10 us on one core: less than waking a sleeping worker */
  int units = (M + g.cfg.MR - 1) / g.cfg.MR;
  int by_batch = T > 1 && batch >= T && (batch >= 4 * T || flops < 4e6 || batch % T == 0);
  if (T > 1 && !by_batch) {
    if (flops < 2e6) T = 1;
    /* Column panels per thread (no barriers; each thread packs the whole A block itself) win when M is small, and up
     * to ~1800 rows once N has 8 or more panels (N = 256 on 1024 rows: 311 -> 348 GFLOP/s here); row blocks win
     * beyond. */
    else if (units < 16 * T || (units < 64 * T && N >= 256)) g.splitN = 1;
  }
  /* buffers sized for this call */
  int kc = K < g.cfg.KC ? K : g.cfg.KC;
  int nc = N < g.cfg.NC ? N : g.cfg.NC;
  int mc = M < g.cfg.MC ? M : g.cfg.MC;
  size_t an = (size_t)((mc + g.cfg.MR - 1) / g.cfg.MR * g.cfg.MR) * kc;
  size_t bn = (size_t)((nc + g.cfg.NR - 1) / g.cfg.NR * g.cfg.NR) * kc;
  int nb = T > MAX_POOL ? MAX_POOL : T;
  for (int t = 0; t < nb; t++) {
    if (ensure(&abuf[t], &abuf_n[t], an) || ensure(&bbuf[t], &bbuf_n[t], bn) ||
        (g.cfg.mode == 2 && ensure(&tbuf[t], &tbuf_n[t], (size_t)kc * MAX_NR))) {
      /* out of memory: fall back to the unpacked loop on this thread */
      for (int b = 0; b < batch; b++)
        naive(&g, A + (size_t)b * strideA, B + (size_t)b * strideB, C + (size_t)b * strideC);
      return;
    }
  }
  if (T <= 1) task_shared(&g, 0, 1);
  else if (by_batch) kiln_parallel(task_batch, &g, T);
  else kiln_parallel(task_shared, &g, T);
}

/* One GEMM on the calling thread, for kernels that are already running on pool thread `tid` (attention). */
void kiln_gemm_serial(int tid, int transA, int transB, int M, int N, int K, float alpha, const float *A,
                      const float *B, float beta, float *C) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) { scale_c(C, (size_t)M * N, beta); return; }
  gemm_job g = { config(0), transA, transB, M, N, K, alpha, beta, A, B, C, 0, 0, 0, 1, 0, { 0, 0 }, { 0, 0 } };
  if (is_tiny(&g) || tid < 0 || tid >= MAX_POOL) { naive(&g, A, B, C); return; }
  if (kiln_gemv_applies(1, M, K) && !ensure(&abuf[tid], &abuf_n[tid], (size_t)M * K)) {
    kiln_gemv_locked(transA, transB, M, N, K, alpha, A, B, beta, C, abuf[tid], 1);
    return;
  }
  int kc = K < g.cfg.KC ? K : g.cfg.KC;
  int nc = N < g.cfg.NC ? N : g.cfg.NC;
  int mc = M < g.cfg.MC ? M : g.cfg.MC;
  size_t an = (size_t)((mc + g.cfg.MR - 1) / g.cfg.MR * g.cfg.MR) * kc;
  size_t bn = (size_t)((nc + g.cfg.NR - 1) / g.cfg.NR * g.cfg.NR) * kc;
  if (ensure(&abuf[tid], &abuf_n[tid], an) || ensure(&bbuf[tid], &bbuf_n[tid], bn)) { naive(&g, A, B, C); return; }
  int iter = 0;
  gemm_one(&g, A, B, C, 0, 1, abuf[tid], bbuf[tid], tbuf[tid], &iter);
}

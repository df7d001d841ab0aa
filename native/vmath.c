/* Vectorised row helpers for the fused kernels: max of a row and exp(x - shift) with its sum, in AVX-512,
 * AVX2 and portable variants chosen at run time. exp is a Cephes-style polynomial, about 1 ulp, with
 * NaN, +-inf and underflow handled like expf. */
#include "kiln.h"
#include <math.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KILN_X86 1
#endif
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#define KILN_SIMD128 1
#endif
#include "vmath.h"

#define EXP_HI 88.72283935546875f
#define EXP_LO -103.972084045410f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f

static float row_max_c(const float *x, size_t n) {
  float m = -INFINITY;
  for (size_t i = 0; i < n; i++) if (x[i] > m) m = x[i];
  return m;
}

static float exp_sum_c(const float *x, float shift, float *out, size_t n) {
  float s = 0.0f;
  for (size_t i = 0; i < n; i++) {
    float e = expf(x[i] - shift);
    if (out) out[i] = e;
    s += e;
  }
  return s;
}

#ifdef KILN_X86
__attribute__((target("avx512f,avx2,fma")))
static inline __m512 exp512(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(EXP_LO), x); /* NaN stays (second operand) */
  x = _mm512_min_ps(_mm512_set1_ps(EXP_HI), x);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx512f,avx2,fma")))
static float row_max_512(const float *x, size_t n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    m = _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ), v);
  }
  if (i < n) {
    __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
    __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x + i);
    m = _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ), v);
  }
  return _mm512_reduce_max_ps(m);
}

__attribute__((target("avx512f,avx2,fma")))
static float exp_sum_512(const float *x, float shift, float *out, size_t n) {
  __m512 s = _mm512_setzero_ps(), sh = _mm512_set1_ps(shift);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), sh));
    if (out) _mm512_storeu_ps(out + i, e);
    s = _mm512_add_ps(s, e);
  }
  if (i < n) {
    __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
    __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), sh));
    if (out) _mm512_mask_storeu_ps(out + i, k, e);
    s = _mm512_add_ps(s, _mm512_maskz_mov_ps(k, e));
  }
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma")))
static inline __m256 exp256(__m256 x) {
  __m256 lo = _mm256_set1_ps(-87.3365478515625f);
  __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(lo, x);
  x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), x);
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  /* 2^n with n in [-126, 128]: split as 2^(n/2) * 2^(n - n/2) so n = 128 does not overflow the exponent */
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  __m256 res = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  return _mm256_andnot_ps(under, res);
}

__attribute__((target("avx2,fma")))
static float row_max_256(const float *x, size_t n) {
  __m256 m = _mm256_set1_ps(-INFINITY);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    m = _mm256_blendv_ps(m, v, _mm256_cmp_ps(v, m, _CMP_GT_OQ));
  }
  float t[8];
  _mm256_storeu_ps(t, m);
  float r = t[0];
  for (int k = 1; k < 8; k++) if (t[k] > r) r = t[k];
  for (; i < n; i++) if (x[i] > r) r = x[i];
  return r;
}

__attribute__((target("avx2,fma")))
static float exp_sum_256(const float *x, float shift, float *out, size_t n) {
  __m256 s = _mm256_setzero_ps(), sh = _mm256_set1_ps(shift);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
    if (out) _mm256_storeu_ps(out + i, e);
    s = _mm256_add_ps(s, e);
  }
  float t[8];
  _mm256_storeu_ps(t, s);
  float r = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
  for (; i < n; i++) {
    float e = expf(x[i] - shift);
    if (out) out[i] = e;
    r += e;
  }
  return r;
}

#endif /* KILN_X86 */

/* Vectorised unary maps built on exp: exp, sigmoid, silu, gelu_tanh and the backward of the last three.
 * sigmoid(v) = 1/(1+e) for v >= 0 and e/(1+e) otherwise, with e = exp(-|v|), so nothing cancels. */
#define VUNARY_BODY(V, LOAD, STORE, SET1, ADD, SUB, MUL, DIV, EXP, ABS, BLEND_NEG)                  \
  {                                                                                               \
    V one = SET1(1.0f), c0 = SET1(0.7978845608028654f), c1 = SET1(0.044715f), c3 = SET1(3.0f * 0.044715f); \
    for (; i + W <= n; i += W) {                                                                  \
      V v = LOAD(x + i), z, e, sp, sg, omsg, r;                                                     \
      if (op == U_EXP) { STORE(out + i, EXP(v)); continue; }                                      \
      z = op == U_GELU_TANH ? MUL(SET1(2.0f), MUL(c0, ADD(v, MUL(c1, MUL(v, MUL(v, v)))))) : v;    \
      e = EXP(SUB(SET1(0.0f), ABS(z)));                                                           \
      sp = DIV(one, ADD(one, e));                                                                 \
      sg = BLEND_NEG(z, sp, MUL(e, sp));      /* sigmoid(z) */                                    \
      omsg = BLEND_NEG(z, MUL(e, sp), sp);    /* 1 - sigmoid(z) */                                \
      if (!bwd) { r = op == U_SIGMOID ? sg : MUL(v, sg); STORE(out + i, r); continue; }           \
      V g = LOAD(dy + i);                                                                         \
      if (op == U_SIGMOID) r = MUL(g, MUL(sg, omsg));                                             \
      else if (op == U_SILU) r = MUL(g, MUL(sg, ADD(one, MUL(v, omsg))));                         \
      else {                                                                                      \
        V du = MUL(c0, ADD(one, MUL(c3, MUL(v, v))));                                             \
        r = MUL(g, ADD(sg, MUL(MUL(SET1(2.0f), v), MUL(MUL(sg, omsg), du))));                     \
      }                                                                                           \
      STORE(out + i, r);                                                                          \
    }                                                                                             \
  }

#ifdef KILN_X86
__attribute__((target("avx512f,avx2,fma"))) static inline __m512 abs512(__m512 v) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
}
__attribute__((target("avx512f,avx2,fma"))) static inline __m512 neg_blend512(__m512 z, __m512 pos, __m512 neg) {
  return _mm512_mask_mov_ps(pos, _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ), neg);
}
__attribute__((target("avx512f,avx2,fma")))
static size_t vunary_512(int op, int bwd, const float *x, const float *dy, float *out, size_t n) {
  size_t i = 0;
  enum { W = 16 };
  VUNARY_BODY(__m512, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_add_ps, _mm512_sub_ps,
              _mm512_mul_ps, _mm512_div_ps, exp512, abs512, neg_blend512)
  return i;
}
__attribute__((target("avx2,fma"))) static inline __m256 abs256(__m256 v) {
  return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}
__attribute__((target("avx2,fma"))) static inline __m256 neg_blend256(__m256 z, __m256 pos, __m256 neg) {
  return _mm256_blendv_ps(pos, neg, _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_LT_OQ));
}
__attribute__((target("avx2,fma")))
static size_t vunary_256(int op, int bwd, const float *x, const float *dy, float *out, size_t n) {
  size_t i = 0;
  enum { W = 8 };
  VUNARY_BODY(__m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_add_ps, _mm256_sub_ps,
              _mm256_mul_ps, _mm256_div_ps, exp256, abs256, neg_blend256)
  return i;
}
#endif

#ifdef KILN_SIMD128
/* WebAssembly SIMD128 versions: the AVX2 algorithms on 4 lanes (no fused multiply-add, so a multiply and an add).
 * Comparisons and bit selects keep NaN handling as above (f32x4.max would propagate NaN). */
static inline v128_t exp128(v128_t x) {
  v128_t lo = wasm_f32x4_splat(-87.3365478515625f);
  v128_t under = wasm_f32x4_lt(x, lo);
  v128_t nan = wasm_f32x4_ne(x, x);
  x = wasm_v128_bitselect(lo, x, wasm_f32x4_lt(x, lo));
  x = wasm_v128_bitselect(wasm_f32x4_splat(EXP_HI), x, wasm_f32x4_gt(x, wasm_f32x4_splat(EXP_HI)));
  v128_t n = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(LOG2E)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(LN2_HI)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(LN2_LO)));
  v128_t p = wasm_f32x4_splat(1.9875691500E-4f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.3981999507E-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(8.3334519073E-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(4.1665795894E-2f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.6666665459E-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(5.0000001201E-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, wasm_f32x4_mul(r, r)), wasm_f32x4_add(r, wasm_f32x4_splat(1.0f)));
  /* 2^n with n in [-126, 128]: split as 2^(n/2) * 2^(n - n/2) so n = 128 does not overflow the exponent */
  v128_t ni = wasm_i32x4_trunc_sat_f32x4(n);
  v128_t n1 = wasm_i32x4_shr(ni, 1), n2 = wasm_i32x4_sub(ni, n1);
  v128_t s1 = wasm_i32x4_shl(wasm_i32x4_add(n1, wasm_i32x4_splat(127)), 23);
  v128_t s2 = wasm_i32x4_shl(wasm_i32x4_add(n2, wasm_i32x4_splat(127)), 23);
  v128_t res = wasm_f32x4_mul(wasm_f32x4_mul(p, s1), s2);
  res = wasm_v128_andnot(res, under);
  return wasm_v128_bitselect(wasm_f32x4_add(x, x), res, nan); /* NaN in, NaN out */
}

static float row_max_128(const float *x, size_t n) {
  v128_t m = wasm_f32x4_splat(-INFINITY);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t v = wasm_v128_load(x + i);
    m = wasm_v128_bitselect(v, m, wasm_f32x4_gt(v, m));
  }
  float r = wasm_f32x4_extract_lane(m, 0);
  for (int k = 1; k < 4; k++) {
    float t = k == 1 ? wasm_f32x4_extract_lane(m, 1) : k == 2 ? wasm_f32x4_extract_lane(m, 2) : wasm_f32x4_extract_lane(m, 3);
    if (t > r) r = t;
  }
  for (; i < n; i++) if (x[i] > r) r = x[i];
  return r;
}

static float exp_sum_128(const float *x, float shift, float *out, size_t n) {
  v128_t s = wasm_f32x4_splat(0.0f), sh = wasm_f32x4_splat(shift);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t e = exp128(wasm_f32x4_sub(wasm_v128_load(x + i), sh));
    if (out) wasm_v128_store(out + i, e);
    s = wasm_f32x4_add(s, e);
  }
  float r = (wasm_f32x4_extract_lane(s, 0) + wasm_f32x4_extract_lane(s, 1)) +
            (wasm_f32x4_extract_lane(s, 2) + wasm_f32x4_extract_lane(s, 3));
  for (; i < n; i++) {
    float e = expf(x[i] - shift);
    if (out) out[i] = e;
    r += e;
  }
  return r;
}

static inline v128_t abs128(v128_t v) { return wasm_f32x4_abs(v); }
static inline v128_t neg_blend128(v128_t z, v128_t pos, v128_t neg) {
  return wasm_v128_bitselect(neg, pos, wasm_f32x4_lt(z, wasm_f32x4_splat(0.0f)));
}
static size_t vunary_128(int op, int bwd, const float *x, const float *dy, float *out, size_t n) {
  size_t i = 0;
  enum { W = 4 };
  VUNARY_BODY(v128_t, wasm_v128_load, wasm_v128_store, wasm_f32x4_splat, wasm_f32x4_add, wasm_f32x4_sub,
              wasm_f32x4_mul, wasm_f32x4_div, exp128, abs128, neg_blend128)
  return i;
}
#endif

size_t kiln_vunary(int op, int bwd, const float *x, const float *dy, float *out, size_t n) {
  if (op == U_EXP ? bwd : (op != U_SIGMOID && op != U_SILU && op != U_GELU_TANH)) return 0;
#ifdef KILN_X86
  int isa = kiln_isa();
  if (isa == KILN_ISA_AVX512) return vunary_512(op, bwd, x, dy, out, n);
  if (isa == KILN_ISA_AVX2) return vunary_256(op, bwd, x, dy, out, n);
#endif
#ifdef KILN_SIMD128
  if (kiln_isa() == KILN_ISA_SIMD128) return vunary_128(op, bwd, x, dy, out, n);
#endif
  (void)x; (void)dy; (void)out; (void)n;
  return 0;
}

float kiln_row_max(const float *x, size_t n) {
#ifdef KILN_X86
  int isa = kiln_isa();
  if (isa == KILN_ISA_AVX512) return row_max_512(x, n);
  if (isa == KILN_ISA_AVX2) return row_max_256(x, n);
#endif
#ifdef KILN_SIMD128
  if (kiln_isa() == KILN_ISA_SIMD128) return row_max_128(x, n);
#endif
  return row_max_c(x, n);
}

float kiln_exp_sum(const float *x, float shift, float *out, size_t n) {
#ifdef KILN_X86
  int isa = kiln_isa();
  if (isa == KILN_ISA_AVX512) return exp_sum_512(x, shift, out, n);
  if (isa == KILN_ISA_AVX2) return exp_sum_256(x, shift, out, n);
#endif
#ifdef KILN_SIMD128
  if (kiln_isa() == KILN_ISA_SIMD128) return exp_sum_128(x, shift, out, n);
#endif
  return exp_sum_c(x, shift, out, n);
}

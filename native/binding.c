/* N-API glue (plain C, node_api.h): unpacks JavaScript typed arrays in place (no copies), checks that every
 * buffer is large enough for the dimensions given, and calls the flat C API in kiln.h. Errors become
 * JavaScript exceptions with one clear sentence; nothing here ever writes outside a buffer. */
#define NAPI_VERSION 8
#include <node_api.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "kiln.h"

#define MAX_ARGS 20
#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, "kiln native: internal N-API error"); return NULL; } } while (0)
#define FAIL(...) do { char msg_[256]; snprintf(msg_, sizeof msg_, __VA_ARGS__); napi_throw_range_error(env, NULL, msg_); return NULL; } while (0)
#define ARGS(n) \
  size_t argc = MAX_ARGS; napi_value argv[MAX_ARGS]; \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL)); \
  if (argc < (size_t)(n)) FAIL("kiln native: %s expects %d arguments, got %zu", __func__, (int)(n), argc)

typedef struct { void *data; size_t len; napi_typedarray_type type; int present; } arr;

/* typed array of the given type; optional: null/undefined gives present = 0 */
static int get_arr(napi_env env, napi_value v, napi_typedarray_type want, int optional, arr *a) {
  napi_valuetype vt;
  a->data = NULL; a->len = 0; a->present = 0;
  if (napi_typeof(env, v, &vt) != napi_ok) return -1;
  if (optional && (vt == napi_null || vt == napi_undefined)) return 0;
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return -1;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &a->type, &a->len, &a->data, &ab, &off) != napi_ok) return -1;
  if (a->type != want) return -1;
  if (a->data == NULL && a->len > 0) return -1;
  a->present = 1;
  return 0;
}

#define F32(i, name) arr name; if (get_arr(env, argv[i], napi_float32_array, 0, &name)) FAIL("kiln native: %s: argument %s must be a Float32Array", __func__, #name)
#define F32OPT(i, name) arr name; if (get_arr(env, argv[i], napi_float32_array, 1, &name)) FAIL("kiln native: %s: argument %s must be a Float32Array or null", __func__, #name)
#define I32(i, name) arr name; if (get_arr(env, argv[i], napi_int32_array, 0, &name)) FAIL("kiln native: %s: argument %s must be an Int32Array", __func__, #name)
#define NUM(i, name) double name; CHECK(napi_get_value_double(env, argv[i], &name))
#define INT(i, name) double name##_d; CHECK(napi_get_value_double(env, argv[i], &name##_d)); \
  if (!(name##_d >= 0 && name##_d <= 9007199254740991.0) || name##_d != floor(name##_d)) FAIL("kiln native: %s: %s must be a non-negative integer, got %g", __func__, #name, name##_d); \
  size_t name = (size_t)name##_d
#define BOOL(i, name) bool name; { napi_value b_; CHECK(napi_coerce_to_bool(env, argv[i], &b_)); CHECK(napi_get_value_bool(env, b_, &name)); }
#define NEED(a, n) if ((a).len < (size_t)(n)) FAIL("kiln native: %s: %s has %zu elements, needs %zu", __func__, #a, (a).len, (size_t)(n))
#define F(a) ((float *)(a).data)
#define I(a) ((int32_t *)(a).data)

static napi_value undef(napi_env env) { napi_value u; napi_get_undefined(env, &u); return u; }

static napi_value fill(napi_env env, napi_callback_info info) {
  ARGS(2); F32(0, out); NUM(1, value);
  kiln_fill(F(out), out.len, (float)value);
  return undef(env);
}

static napi_value copy(napi_env env, napi_callback_info info) {
  ARGS(2); F32(0, src); F32(1, dst); NEED(dst, src.len);
  kiln_copy(F(src), F(dst), src.len);
  return undef(env);
}

static napi_value unary(napi_env env, napi_callback_info info) {
  ARGS(3); INT(0, op); F32(1, x); F32(2, out); NEED(out, x.len);
  if (op >= U_COUNT) FAIL("kiln native: unary: unknown op %zu", op);
  kiln_unary((int)op, F(x), F(out), x.len);
  return undef(env);
}

static napi_value unary_backward(napi_env env, napi_callback_info info) {
  ARGS(5); INT(0, op); F32(1, x); F32(2, y); F32(3, dy); F32(4, dx);
  NEED(y, x.len); NEED(dy, x.len); NEED(dx, x.len);
  if (op >= U_COUNT) FAIL("kiln native: unaryBackward: unknown op %zu", op);
  kiln_unary_backward((int)op, F(x), F(y), F(dy), F(dx), x.len);
  return undef(env);
}

static napi_value clamp(napi_env env, napi_callback_info info) {
  ARGS(4); F32(0, x); NUM(1, lo); NUM(2, hi); F32(3, out); NEED(out, x.len);
  kiln_clamp(F(x), (float)lo, (float)hi, F(out), x.len);
  return undef(env);
}

/* shapes: Int32Array [rank, s0..., s1..., ..., out...] for nshapes operand shapes plus the output */
static int read_shapes(const arr *s, int nshapes, int *rank, const int *shp[4], size_t counts[4]) {
  const int32_t *p = I(*s);
  if (s->len < 1) return -1;
  int r = p[0];
  if (r < 0 || r > KILN_MAX_RANK || s->len < (size_t)(1 + r * (nshapes + 1))) return -1;
  *rank = r;
  for (int k = 0; k <= nshapes; k++) {
    shp[k] = p + 1 + k * r;
    size_t c = 1;
    for (int d = 0; d < r; d++) {
      if (shp[k][d] < 0) return -1;
      c *= (size_t)shp[k][d];
    }
    counts[k] = c;
  }
  /* operands broadcast to the output: each dim equal or 1 */
  for (int k = 0; k < nshapes; k++)
    for (int d = 0; d < r; d++)
      if (shp[k][d] != shp[nshapes][d] && shp[k][d] != 1) return -1;
  return 0;
}

static napi_value binary(napi_env env, napi_callback_info info) {
  ARGS(5); INT(0, op); F32(1, a); F32(2, b); F32(3, out); I32(4, shapes);
  int rank; const int *shp[4]; size_t cnt[4];
  if (op >= B_COUNT) FAIL("kiln native: binary: unknown op %zu", op);
  if (read_shapes(&shapes, 2, &rank, shp, cnt)) FAIL("kiln native: binary: shapes do not broadcast to the output shape");
  NEED(a, cnt[0]); NEED(b, cnt[1]); NEED(out, cnt[2]);
  kiln_binary((int)op, F(a), shp[0], F(b), shp[1], F(out), shp[2], rank);
  return undef(env);
}

static napi_value where(napi_env env, napi_callback_info info) {
  ARGS(5);
  arr cond;
  int ci32 = 0;
  if (get_arr(env, argv[0], napi_float32_array, 0, &cond)) {
    if (get_arr(env, argv[0], napi_int32_array, 0, &cond)) FAIL("kiln native: where: cond must be a Float32Array or Int32Array");
    ci32 = 1;
  }
  F32(1, a); F32(2, b); F32(3, out); I32(4, shapes);
  int rank; const int *shp[4]; size_t cnt[4];
  if (read_shapes(&shapes, 3, &rank, shp, cnt)) FAIL("kiln native: where: shapes do not broadcast to the output shape");
  NEED(cond, cnt[0]); NEED(a, cnt[1]); NEED(b, cnt[2]); NEED(out, cnt[3]);
  kiln_where(cond.data, ci32, shp[0], F(a), shp[1], F(b), shp[2], F(out), shp[3], rank);
  return undef(env);
}

static napi_value expand(napi_env env, napi_callback_info info) {
  ARGS(3); F32(0, x); F32(1, out); I32(2, shapes);
  int rank; const int *shp[4]; size_t cnt[4];
  if (read_shapes(&shapes, 1, &rank, shp, cnt)) FAIL("kiln native: expand: shape does not broadcast to the output shape");
  NEED(x, cnt[0]); NEED(out, cnt[1]);
  kiln_expand(F(x), shp[0], F(out), shp[1], rank);
  return undef(env);
}

static napi_value reduce(napi_env env, napi_callback_info info) {
  ARGS(6); INT(0, op); F32(1, x); INT(2, outer); INT(3, dim); INT(4, inner); F32(5, out);
  if (op > R_MIN) FAIL("kiln native: reduce: unknown op %zu", op);
  NEED(x, outer * dim * inner); NEED(out, outer * inner);
  kiln_reduce((int)op, F(x), outer, dim, inner, F(out));
  return undef(env);
}

static napi_value argmax(napi_env env, napi_callback_info info) {
  ARGS(5); F32(0, x); INT(1, outer); INT(2, dim); INT(3, inner); I32(4, out);
  NEED(x, outer * dim * inner); NEED(out, outer * inner);
  kiln_argmax(F(x), outer, dim, inner, I(out));
  return undef(env);
}

static int long_arg(napi_env env, napi_value v, long *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return -1;
  if (!(d >= 0 && d < 9.0e15) || d != floor(d)) return -1;
  *out = (long)d;
  return 0;
}

static napi_value gemm_any(napi_env env, napi_callback_info info, int bf16) {
  ARGS(14);
  BOOL(0, transA); BOOL(1, transB); INT(2, batch); INT(3, M); INT(4, N); INT(5, K); NUM(6, alpha);
  F32(7, A); F32(9, B); NUM(11, beta); F32(12, C);
  long sA, sB, sC;
  if (long_arg(env, argv[8], &sA) || long_arg(env, argv[10], &sB) || long_arg(env, argv[13], &sC))
    FAIL("kiln native: gemm: strides must be non-negative integers");
  if (M > 0x7fffffff || N > 0x7fffffff || K > 0x7fffffff || batch > 0x7fffffff) FAIL("kiln native: gemm: dimension too large");
  if (batch > 0 && M > 0 && N > 0) {
    size_t b1 = batch - 1;
    NEED(C, b1 * (size_t)sC + M * N);
    if (K > 0) { NEED(A, b1 * (size_t)sA + M * K); NEED(B, b1 * (size_t)sB + K * N); }
  }
  (bf16 ? kiln_gemm_bf16 : kiln_gemm)(transA, transB, (int)batch, (int)M, (int)N, (int)K, (float)alpha, F(A), sA, F(B), sB, (float)beta, F(C), sC);
  return undef(env);
}

static napi_value gemm(napi_env env, napi_callback_info info) { return gemm_any(env, info, 0); }
/* gemmBf16: gemm's arguments; inputs rounded to bfloat16, float32 accumulation */
static napi_value gemm_bf16(napi_env env, napi_callback_info info) { return gemm_any(env, info, 1); }

/* bf16Info() -> { supported, active }; setBf16(on) -> boolean (false when on is asked and unsupported) */
static napi_value bf16_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o, sup, act;
  CHECK(napi_create_object(env, &o));
  CHECK(napi_get_boolean(env, kiln_bf16_supported(), &sup));
  CHECK(napi_get_boolean(env, kiln_bf16(), &act));
  CHECK(napi_set_named_property(env, o, "supported", sup));
  CHECK(napi_set_named_property(env, o, "active", act));
  return o;
}

static napi_value set_bf16(napi_env env, napi_callback_info info) {
  ARGS(1); BOOL(0, on);
  napi_value r;
  CHECK(napi_get_boolean(env, kiln_set_bf16(on) == 0, &r));
  return r;
}

static napi_value softmax(napi_env env, napi_callback_info info) {
  ARGS(5); F32(0, x); INT(1, rows); INT(2, cols); BOOL(3, log); F32(4, out);
  NEED(x, rows * cols); NEED(out, rows * cols);
  kiln_softmax(F(x), rows, cols, log, F(out));
  return undef(env);
}

static napi_value softmax_backward(napi_env env, napi_callback_info info) {
  ARGS(6); F32(0, y); F32(1, dy); INT(2, rows); INT(3, cols); BOOL(4, log); F32(5, dx);
  NEED(y, rows * cols); NEED(dy, rows * cols); NEED(dx, rows * cols);
  kiln_softmax_backward(F(y), F(dy), rows, cols, log, F(dx));
  return undef(env);
}

static napi_value layernorm(napi_env env, napi_callback_info info) {
  ARGS(9); F32(0, x); F32OPT(1, weight); F32OPT(2, bias); INT(3, rows); INT(4, C); NUM(5, eps);
  F32(6, out); F32(7, mean); F32(8, rstd);
  NEED(x, rows * C); NEED(out, rows * C); NEED(mean, rows); NEED(rstd, rows);
  if (weight.present) NEED(weight, C);
  if (bias.present) NEED(bias, C);
  kiln_layernorm(F(x), weight.present ? F(weight) : NULL, bias.present ? F(bias) : NULL, rows, C, (float)eps,
                 F(out), F(mean), F(rstd));
  return undef(env);
}

static napi_value layernorm_backward(napi_env env, napi_callback_info info) {
  ARGS(10); F32(0, dy); F32(1, x); F32OPT(2, weight); F32(3, mean); F32(4, rstd); INT(5, rows); INT(6, C);
  F32(7, dx); F32OPT(8, dweight); F32OPT(9, dbias);
  NEED(dy, rows * C); NEED(x, rows * C); NEED(dx, rows * C); NEED(mean, rows); NEED(rstd, rows);
  if (weight.present) NEED(weight, C);
  if (dweight.present) NEED(dweight, C);
  if (dbias.present) NEED(dbias, C);
  kiln_layernorm_backward(F(dy), F(x), weight.present ? F(weight) : NULL, F(mean), F(rstd), rows, C, F(dx),
                          dweight.present ? F(dweight) : NULL, dbias.present ? F(dbias) : NULL);
  return undef(env);
}

static napi_value rmsnorm(napi_env env, napi_callback_info info) {
  ARGS(7); F32(0, x); F32OPT(1, weight); INT(2, rows); INT(3, C); NUM(4, eps); F32(5, out); F32(6, rstd);
  NEED(x, rows * C); NEED(out, rows * C); NEED(rstd, rows);
  if (weight.present) NEED(weight, C);
  kiln_rmsnorm(F(x), weight.present ? F(weight) : NULL, rows, C, (float)eps, F(out), F(rstd));
  return undef(env);
}

static napi_value rmsnorm_backward(napi_env env, napi_callback_info info) {
  ARGS(8); F32(0, dy); F32(1, x); F32OPT(2, weight); F32(3, rstd); INT(4, rows); INT(5, C); F32(6, dx);
  F32OPT(7, dweight);
  NEED(dy, rows * C); NEED(x, rows * C); NEED(dx, rows * C); NEED(rstd, rows);
  if (weight.present) NEED(weight, C);
  if (dweight.present) NEED(dweight, C);
  kiln_rmsnorm_backward(F(dy), F(x), weight.present ? F(weight) : NULL, F(rstd), rows, C, F(dx),
                        dweight.present ? F(dweight) : NULL);
  return undef(env);
}

static napi_value rope(napi_env env, napi_callback_info info) {
  ARGS(9); F32(0, x); INT(1, B); INT(2, T); INT(3, NH); INT(4, HS); NUM(5, theta); I32(6, starts); BOOL(7, inverse);
  F32(8, out);
  NEED(x, B * T * NH * HS); NEED(out, B * T * NH * HS); NEED(starts, B);
  if (kiln_rope(F(x), B, T, NH, HS, theta, I(starts), inverse, F(out)) != 0) {
    FAIL("kiln native: rope: head size %zu must be even and at most 1024", HS);
  }
  return undef(env);
}

static napi_value cross_entropy(napi_env env, napi_callback_info info) {
  ARGS(8); F32(0, logits); I32(1, targets); INT(2, N); INT(3, V); NUM(4, ignore); NUM(5, smooth);
  F32(6, losses); F32(7, lse);
  NEED(logits, N * V); NEED(targets, N); NEED(losses, N); NEED(lse, N);
  long bad = kiln_cross_entropy(F(logits), I(targets), N, V, (int)ignore, (float)smooth, F(losses), F(lse));
  if (bad >= 0) FAIL("crossEntropy: target %d at row %ld is outside [0, %zu)", I(targets)[bad], bad, V);
  return undef(env);
}

static napi_value cross_entropy_backward(napi_env env, napi_callback_info info) {
  ARGS(9); F32(0, logits); I32(1, targets); F32(2, lse); F32(3, dlosses); INT(4, N); INT(5, V); NUM(6, ignore);
  NUM(7, smooth); F32(8, dlogits);
  NEED(logits, N * V); NEED(targets, N); NEED(lse, N); NEED(dlosses, N); NEED(dlogits, N * V);
  kiln_cross_entropy_backward(F(logits), I(targets), F(lse), F(dlosses), N, V, (int)ignore, (float)smooth, F(dlogits));
  return undef(env);
}

static int check_idx(const int32_t *idx, size_t n, size_t dim, size_t *bad) {
  for (size_t i = 0; i < n; i++)
    if (idx[i] < 0 || (size_t)idx[i] >= dim) { *bad = i; return -1; }
  return 0;
}

static napi_value index_select(napi_env env, napi_callback_info info) {
  ARGS(6); F32(0, x); INT(1, outer); INT(2, dim); INT(3, inner); I32(4, idx); F32(5, out);
  size_t bad;
  NEED(x, outer * dim * inner); NEED(out, outer * idx.len * inner);
  if (outer * inner > 0 && check_idx(I(idx), idx.len, dim, &bad)) FAIL("indexSelect: index %d at position %zu is outside [0, %zu)", I(idx)[bad], bad, dim);
  kiln_index_select(F(x), outer, dim, inner, I(idx), idx.len, F(out));
  return undef(env);
}

static napi_value index_add(napi_env env, napi_callback_info info) {
  ARGS(6); F32(0, dout); INT(1, outer); INT(2, dim); INT(3, inner); I32(4, idx); F32(5, dx);
  size_t bad;
  NEED(dout, outer * idx.len * inner); NEED(dx, outer * dim * inner);
  if (outer * inner > 0 && check_idx(I(idx), idx.len, dim, &bad)) FAIL("indexAdd: index %d at position %zu is outside [0, %zu)", I(idx)[bad], bad, dim);
  kiln_index_add(F(dout), outer, dim, inner, I(idx), idx.len, F(dx));
  return undef(env);
}

static napi_value gather(napi_env env, napi_callback_info info) {
  ARGS(7); F32(0, x); INT(1, outer); INT(2, dim); INT(3, inner); I32(4, idx); INT(5, k); F32(6, out);
  size_t bad;
  NEED(x, outer * dim * inner); NEED(idx, outer * k * inner); NEED(out, outer * k * inner);
  if (check_idx(I(idx), outer * k * inner, dim, &bad)) FAIL("gather: index %d at position %zu is outside [0, %zu)", I(idx)[bad], bad, dim);
  kiln_gather(F(x), outer, dim, inner, I(idx), k, F(out));
  return undef(env);
}

static napi_value scatter_add(napi_env env, napi_callback_info info) {
  ARGS(7); F32(0, dout); INT(1, outer); INT(2, dim); INT(3, inner); I32(4, idx); INT(5, k); F32(6, dx);
  size_t bad;
  NEED(dout, outer * k * inner); NEED(idx, outer * k * inner); NEED(dx, outer * dim * inner);
  if (check_idx(I(idx), outer * k * inner, dim, &bad)) FAIL("scatterAdd: index %d at position %zu is outside [0, %zu)", I(idx)[bad], bad, dim);
  kiln_scatter_add(F(dout), outer, dim, inner, I(idx), k, F(dx));
  return undef(env);
}

/* shapes: Int32Array [rank, shape..., perm...] */
static napi_value permute(napi_env env, napi_callback_info info) {
  ARGS(3); F32(0, x); I32(1, sp); F32(2, out);
  const int32_t *p = I(sp);
  if (sp.len < 1 || p[0] < 0 || p[0] > KILN_MAX_RANK || sp.len < (size_t)(1 + 2 * p[0])) FAIL("kiln native: permute: bad shape");
  int rank = p[0];
  const int *shape = p + 1, *perm = p + 1 + rank;
  int seen[KILN_MAX_RANK] = { 0 };
  size_t total = 1;
  for (int d = 0; d < rank; d++) {
    if (shape[d] < 0 || perm[d] < 0 || perm[d] >= rank || seen[perm[d]]++) FAIL("kiln native: permute: perm is not a permutation of the axes");
    total *= (size_t)shape[d];
  }
  NEED(x, total); NEED(out, total);
  kiln_permute(F(x), shape, perm, rank, F(out));
  return undef(env);
}

static napi_value slice_copy(napi_env env, napi_callback_info info) {
  ARGS(7); F32(0, src); INT(1, outer); INT(2, srcDim); INT(3, inner); INT(4, start); INT(5, len); F32(6, dst);
  if (start + len > srcDim) FAIL("sliceCopy: slice %zu..%zu is outside a dim of %zu", start, start + len, srcDim);
  NEED(src, outer * srcDim * inner); NEED(dst, outer * len * inner);
  kiln_slice_copy(F(src), outer, srcDim, inner, start, len, F(dst));
  return undef(env);
}

static napi_value slice_assign(napi_env env, napi_callback_info info) {
  ARGS(7); F32(0, src); INT(1, outer); INT(2, dstDim); INT(3, inner); INT(4, start); INT(5, len); F32(6, dst);
  if (start + len > dstDim) FAIL("sliceAssign: slice %zu..%zu is outside a dim of %zu", start, start + len, dstDim);
  NEED(src, outer * len * inner); NEED(dst, outer * dstDim * inner);
  kiln_slice_assign(F(src), outer, dstDim, inner, start, len, F(dst));
  return undef(env);
}

/* rows of a (rows, C) tensor stored with row stride ld need (rows - 1) * ld + C elements */
static size_t strided(size_t rows, size_t C, size_t ld) { return rows == 0 || C == 0 ? 0 : (rows - 1) * ld + C; }

static napi_value attention(napi_env env, napi_callback_info info) {
  ARGS(13); F32(0, q); F32(1, k); F32(2, v); INT(3, B); INT(4, Tq); INT(5, Tk); INT(6, NH); INT(7, HS);
  BOOL(8, causal); NUM(9, scale); F32(10, out); F32(11, lse); INT(12, ld);
  if (B > 0x7fffffff || Tq > 0x7fffffff || Tk > 0x7fffffff || NH > 0x7fffffff || HS > 0x7fffffff || ld > 0x7fffffff) FAIL("kiln native: attention: dimension too large");
  if (ld < NH * HS) FAIL("kiln native: attention: row stride %zu is less than NH * HS = %zu", ld, NH * HS);
  NEED(q, strided(B * Tq, NH * HS, ld)); NEED(k, strided(B * Tk, NH * HS, ld)); NEED(v, strided(B * Tk, NH * HS, ld));
  NEED(out, B * Tq * NH * HS); NEED(lse, B * NH * Tq);
  kiln_attention(F(q), F(k), F(v), (int)B, (int)Tq, (int)Tk, (int)NH, (int)HS, causal, (float)scale, F(out), F(lse),
                 (long)ld);
  return undef(env);
}

static napi_value attention_backward(napi_env env, napi_callback_info info) {
  ARGS(17); F32(0, dout); F32(1, q); F32(2, k); F32(3, v); F32(4, out); F32(5, lse); INT(6, B); INT(7, Tq);
  INT(8, Tk); INT(9, NH); INT(10, HS); BOOL(11, causal); NUM(12, scale); F32(13, dq); F32(14, dk); F32(15, dv);
  INT(16, ld);
  if (B > 0x7fffffff || Tq > 0x7fffffff || Tk > 0x7fffffff || NH > 0x7fffffff || HS > 0x7fffffff || ld > 0x7fffffff) FAIL("kiln native: attentionBackward: dimension too large");
  if (ld < NH * HS) FAIL("kiln native: attentionBackward: row stride %zu is less than NH * HS = %zu", ld, NH * HS);
  size_t nq = strided(B * Tq, NH * HS, ld), nk = strided(B * Tk, NH * HS, ld), no = B * Tq * NH * HS;
  NEED(dout, no); NEED(q, nq); NEED(out, no); NEED(dq, nq); NEED(k, nk); NEED(v, nk); NEED(dk, nk); NEED(dv, nk);
  NEED(lse, B * NH * Tq);
  kiln_attention_backward(F(dout), F(q), F(k), F(v), F(out), F(lse), (int)B, (int)Tq, (int)Tk, (int)NH, (int)HS,
                          causal, (float)scale, F(dq), F(dk), F(dv), (long)ld);
  return undef(env);
}

/* A fused decode step's weights: `n` entries of the array v, each a Float32Array of at least sizes[i] elements, or
 * null where optional[i]. Throws a RangeError naming the parameter and returns -1 when one is wrong. */
static int block_weights(napi_env env, const char *fn, napi_value v, uint32_t n, const char *const *names,
                         const size_t *sizes, const int *optional, const float **out) {
  char msg[256];
  bool is_array = false;
  if (napi_is_array(env, v, &is_array) != napi_ok || !is_array) {
    snprintf(msg, sizeof msg, "kiln native: %s: weights must be an array of %u Float32Array or null", fn, n);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    arr a;
    if (napi_get_element(env, v, i, &e) != napi_ok || get_arr(env, e, napi_float32_array, optional[i], &a)) {
      snprintf(msg, sizeof msg, "kiln native: %s: %s must be a Float32Array", fn, names[i]);
    } else if (a.present && a.len < sizes[i]) {
      snprintf(msg, sizeof msg, "kiln native: %s: %s has %zu elements, needs %zu", fn, names[i], a.len, sizes[i]);
    } else {
      out[i] = a.present ? F(a) : NULL;
      continue;
    }
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

/* Every sequence's cache row inside keys and values ((rows, P, width) each) and room for one more position in it.
 * Throws a RangeError and returns -1 otherwise. */
static int check_cache_rows(napi_env env, const char *fn, const arr *keys, const arr *values, const int32_t *rows,
                            const int32_t *starts, size_t A, size_t P, size_t width) {
  char msg[256];
  size_t capacity = keys->len / (P * width);
  if (values->len / (P * width) < capacity) capacity = values->len / (P * width);
  for (size_t a = 0; a < A; a++) {
    if (rows[a] < 0 || (size_t)rows[a] >= capacity) {
      snprintf(msg, sizeof msg, "kiln native: %s: cache row %d is outside the cache's %zu rows", fn, rows[a], capacity);
    } else if (starts[a] < 0 || (size_t)starts[a] + 1 > P) {
      snprintf(msg, sizeof msg, "kiln native: %s: %d cached positions and 1 new one exceed the context of %zu", fn, starts[a], P);
    } else continue;
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  return 0;
}

/* weights: an array of 12 Float32Array or null, in kiln_gpt_block's order; x (A, C) is updated in place */
static napi_value gpt_block_decode(napi_env env, napi_callback_info info) {
  ARGS(11); F32(0, x); F32(2, keys); F32(3, values); I32(4, rows); I32(5, starts); INT(6, A); INT(7, C); INT(8, NH);
  INT(9, P); NUM(10, eps);
  if (A > 0x7fff || C > 0x7fffff || NH == 0 || NH > C || C % NH != 0 || P == 0 || P > 0x7fffffff)
    FAIL("kiln native: gptBlockDecode: bad dimensions (A %zu, C %zu, NH %zu, P %zu)", A, C, NH, P);
  static const char *names[12] = { "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias" };
  const size_t sizes[12] = { C, C, C * 3 * C, 3 * C, C * C, C, C, C, C * 4 * C, 4 * C, 4 * C * C, C };
  static const int optional[12] = { 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1 };
  const float *p[12];
  if (block_weights(env, "gptBlockDecode", argv[1], 12, names, sizes, optional, p)) return NULL;
  NEED(x, A * C); NEED(rows, A); NEED(starts, A);
  if (check_cache_rows(env, "gptBlockDecode", &keys, &values, I(rows), I(starts), A, P, C)) return NULL;
  kiln_gpt_block w = { p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11] };
  int rc = kiln_gpt_block_decode(&w, F(x), F(keys), F(values), I(rows), I(starts), (int)A, (int)C, (int)NH, (int)P, (float)eps);
  if (rc == -2) FAIL("kiln native: gptBlockDecode: out of memory for %zu rows of width %zu", A, C);
  if (rc != 0) FAIL("kiln native: gptBlockDecode: %zu channels do not split into %zu heads", C, NH);
  return undef(env);
}

/* The Float32Array at index i of the JavaScript array v, of at least `need` elements; -1 (a RangeError thrown) else */
static int array_f32(napi_env env, const char *fn, const char *what, napi_value v, uint32_t i, size_t need, arr *out) {
  char msg[256];
  napi_value e;
  bool is_array = false;
  if (napi_is_array(env, v, &is_array) != napi_ok || !is_array || napi_get_element(env, v, i, &e) != napi_ok ||
      get_arr(env, e, napi_float32_array, 0, out)) {
    snprintf(msg, sizeof msg, "kiln native: %s: %s[%u] must be a Float32Array", fn, what, i);
  } else if (out->len < need) {
    snprintf(msg, sizeof msg, "kiln native: %s: %s[%u] has %zu elements, needs %zu", fn, what, i, out->len, need);
  } else return 0;
  napi_throw_range_error(env, NULL, msg);
  return -1;
}

/* panels: null, or 4 L + 1 Float32Array (or null) from packPanels: each block's attn, proj, fc and fc2 weights, then
 * the head; -1 (a RangeError thrown) when one is not an array of the packed size */
static int gpt_panels(napi_env env, napi_value v, uint32_t L, size_t C, size_t V, kiln_gpt_block *blocks,
                      const float **head_p) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_null || t == napi_undefined) return 0;
  char msg[256];
  uint32_t n = 0;
  bool is_array = false;
  if (napi_is_array(env, v, &is_array) != napi_ok || !is_array || napi_get_array_length(env, v, &n) != napi_ok ||
      n != 4 * L + 1) {
    snprintf(msg, sizeof msg, "kiln native: gptDecode: panels must be null or an array of %u Float32Array or null", 4 * L + 1);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    const int which = i == 4 * L ? 4 : (int)(i % 4); /* attn, proj, fc, fc2, head */
    const size_t dims[5][2] = { { 3 * C, C }, { C, C }, { 4 * C, C }, { C, 4 * C }, { V, C } }; /* N, K */
    napi_value e;
    napi_valuetype et;
    if (napi_get_element(env, v, i, &e) != napi_ok || napi_typeof(env, e, &et) != napi_ok) return -1;
    if (et == napi_null) continue;
    arr a;
    const size_t need = kiln_panels_size((int)dims[which][0], (int)dims[which][1]);
    if (array_f32(env, "gptDecode", "panels", v, i, need, &a)) return -1;
    if (which == 4) { *head_p = F(a); continue; }
    kiln_gpt_block *b = &blocks[i / 4];
    if (which == 0) b->attn_p = F(a);
    else if (which == 1) b->proj_p = F(a);
    else if (which == 2) b->fc_p = F(a);
    else b->fc2_p = F(a);
  }
  return 0;
}

/* dst: packPanels' layout of op(B) (K, N), kiln_panels_size(N, K) floats; B (K, N), or (N, K) with transB */
static napi_value pack_panels(napi_env env, napi_callback_info info) {
  ARGS(5); F32(0, dst); F32(1, B); BOOL(2, transB); INT(3, N); INT(4, K);
  if (N > 0x7fffffff || K > 0x7fffffff) FAIL("kiln native: packPanels: bad dimensions (N %zu, K %zu)", N, K);
  NEED(B, N * K); NEED(dst, kiln_panels_size((int)N, (int)K));
  kiln_pack_panels(transB, (int)N, (int)K, F(B), F(dst));
  return undef(env);
}

/* Whether packed panels speed up and give bitwise the products of M rows (transB: B stored (N, K)) */
static napi_value panels_apply(napi_env env, napi_callback_info info) {
  ARGS(3); BOOL(0, transB); INT(1, M); INT(2, K);
  napi_value r;
  CHECK(napi_get_boolean(env, M <= 0x7fff && K <= 0x7fffffff && kiln_gemv_panels_applies(transB, (int)M, (int)K), &r));
  return r;
}

/* logits (A, V) out; tokens, rows, starts (A); wte (V, C), wpe (P, C); blocks: L arrays of 12 as gptBlockDecode
 * takes them; keys, values: L caches (rows, P, C); ln_f weight and bias (or null); head (V, C); then optionally the
 * panels (gpt_panels) and headRows: the entries whose logits are wanted, ascending (logits (headRows.length, V)).
 * Returns false when the step does not fit kiln_gpt_decode (then decode block by block). */
static napi_value gpt_decode(napi_env env, napi_callback_info info) {
  ARGS(18); F32(0, logits); I32(1, tokens); I32(2, rows); I32(3, starts); F32(4, wte); F32(5, wpe);
  F32OPT(9, lnf_w); F32OPT(10, lnf_b); F32(11, head); INT(12, A); INT(13, C); INT(14, NH); INT(15, P); INT(16, V);
  NUM(17, eps);
  if (A > 0x7fff || C == 0 || C > 0x7fffff || NH == 0 || NH > C || C % NH != 0 || P == 0 || P > 0x7fffffff ||
      V == 0 || V > 0x7fffffff)
    FAIL("kiln native: gptDecode: bad dimensions (A %zu, C %zu, NH %zu, P %zu, V %zu)", A, C, NH, P, V);
  uint32_t L = 0;
  CHECK(napi_get_array_length(env, argv[6], &L));
  arr head_rows;
  if (get_arr(env, argv[19], napi_int32_array, 1, &head_rows)) FAIL("kiln native: gptDecode: headRows must be an Int32Array or null");
  const size_t n_out = head_rows.present ? head_rows.len : A;
  for (size_t i = 0; head_rows.present && i < n_out; i++) {
    const int32_t r = I(head_rows)[i];
    if (r < 0 || (size_t)r >= A || (i > 0 && r <= I(head_rows)[i - 1]))
      FAIL("kiln native: gptDecode: headRows must be ascending entries below %zu; got %d at %zu", A, r, i);
  }
  static const int32_t no_rows[1] = { 0 }; /* an empty headRows is not "all of them" */
  const int32_t *head_rows_p = !head_rows.present ? NULL : n_out ? I(head_rows) : no_rows;
  NEED(logits, n_out * V); NEED(tokens, A); NEED(rows, A); NEED(starts, A); NEED(wte, V * C); NEED(wpe, P * C);
  NEED(head, V * C);
  if (lnf_w.present) NEED(lnf_w, C);
  if (lnf_b.present) NEED(lnf_b, C);
  for (size_t a = 0; a < A; a++)
    if (I(tokens)[a] < 0 || (size_t)I(tokens)[a] >= V) FAIL("kiln native: gptDecode: token %d is outside the vocabulary of %zu", I(tokens)[a], V);
  kiln_gpt_block *blocks = malloc(sizeof(kiln_gpt_block) * (L ? L : 1));
  float **caches = malloc(sizeof(float *) * 2 * (L ? L : 1));
  if (!blocks || !caches) { free(blocks); free(caches); FAIL("kiln native: gptDecode: out of memory"); }
  static const char *names[12] = { "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias" };
  const size_t sizes[12] = { C, C, C * 3 * C, 3 * C, C * C, C, C, C, C * 4 * C, 4 * C, 4 * C * C, C };
  static const int optional[12] = { 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1 };
  int bad = 0;
  for (uint32_t l = 0; l < L && !bad; l++) {
    napi_value bw;
    arr keys, values;
    const float *p[12];
    if (napi_get_element(env, argv[6], l, &bw) != napi_ok ||
        block_weights(env, "gptDecode", bw, 12, names, sizes, optional, p) ||
        array_f32(env, "gptDecode", "keys", argv[7], l, 0, &keys) ||
        array_f32(env, "gptDecode", "values", argv[8], l, 0, &values) ||
        check_cache_rows(env, "gptDecode", &keys, &values, I(rows), I(starts), A, P, C)) { bad = 1; break; }
    blocks[l] = (kiln_gpt_block){ p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11] };
    caches[l] = F(keys);
    caches[L + l] = F(values);
  }
  const float *head_p = NULL;
  if (!bad && argc > 18 && gpt_panels(env, argv[18], L, C, V, blocks, &head_p)) bad = 1;
  int rc = -1;
  if (!bad) {
    kiln_gpt_model m = { F(wte), F(wpe), blocks, caches, caches + L, lnf_w.present ? F(lnf_w) : NULL,
                         lnf_b.present ? F(lnf_b) : NULL, F(head), (int)L, (int)C, (int)NH, (int)P, (int)V, (float)eps,
                         head_p };
    rc = kiln_gpt_decode(&m, I(tokens), I(rows), I(starts), (int)A, head_rows_p, (int)n_out, F(logits));
  }
  free(blocks);
  free(caches);
  if (bad) return NULL;
  if (rc == -2) FAIL("kiln native: gptDecode: out of memory for %zu rows of width %zu", A, C);
  napi_value r;
  CHECK(napi_get_boolean(env, rc == 0, &r));
  return r;
}

/* weights: an array of 9 Float32Array (the norms may be null), in kiln_llama_block's order; x (A, C) in place */
static napi_value llama_block_decode(napi_env env, napi_callback_info info) {
  ARGS(14); F32(0, x); F32(2, keys); F32(3, values); I32(4, rows); I32(5, starts); INT(6, A); INT(7, C); INT(8, NH);
  INT(9, KVH); INT(10, hidden); INT(11, P); NUM(12, eps); NUM(13, theta);
  if (A > 0x7fff || C > 0x7fffff || hidden > 0x7fffff || NH == 0 || NH > C || C % NH != 0 || KVH == 0 || NH % KVH != 0 ||
      (C / NH) % 2 != 0 || C / NH > 1024 || P == 0 || P > 0x7fffffff || !(theta > 0))
    FAIL("kiln native: llamaBlockDecode: bad dimensions (A %zu, C %zu, NH %zu, KVH %zu, hidden %zu, P %zu)", A, C, NH, KVH, hidden, P);
  const size_t KW = C / NH * KVH;
  static const char *names[9] = { "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight",
    "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight", "mlp.gate_proj.weight",
    "mlp.up_proj.weight", "mlp.down_proj.weight" };
  const size_t sizes[9] = { C, C, C * C, KW * C, KW * C, C * C, hidden * C, hidden * C, C * hidden };
  static const int optional[9] = { 1, 1, 0, 0, 0, 0, 0, 0, 0 };
  const float *p[9];
  if (block_weights(env, "llamaBlockDecode", argv[1], 9, names, sizes, optional, p)) return NULL;
  NEED(x, A * C); NEED(rows, A); NEED(starts, A);
  if (check_cache_rows(env, "llamaBlockDecode", &keys, &values, I(rows), I(starts), A, P, KW)) return NULL;
  kiln_llama_block w = { p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8] };
  int rc = kiln_llama_block_decode(&w, F(x), F(keys), F(values), I(rows), I(starts), (int)A, (int)C, (int)NH, (int)KVH,
                                   (int)hidden, (int)P, (float)eps, theta);
  if (rc == -2) FAIL("kiln native: llamaBlockDecode: out of memory for %zu rows of width %zu", A, C);
  if (rc != 0) FAIL("kiln native: llamaBlockDecode: %zu channels do not split into %zu heads of even size", C, NH);
  return undef(env);
}

static napi_value sample(napi_env env, napi_callback_info info) {
  ARGS(8); F32(0, logits); INT(1, V); NUM(2, inv_temperature); INT(3, top_k); NUM(4, top_p); NUM(5, u); NUM(6, u2);
  F32(7, scratch);
  if (V == 0 || V > 0x7fffffff) FAIL("kiln native: sample: the vocabulary size must be in 1 .. 2^31-1, got %zu", V);
  NEED(logits, V); NEED(scratch, V);
  if (!(inv_temperature > 0) || !(top_p > 0 && top_p <= 1) || !(u >= 0 && u < 1) || !(u2 >= 0 && u2 < 1)) {
    FAIL("kiln native: sample: bad sampling parameters");
  }
  int id = kiln_sample(F(logits), (int)V, inv_temperature, top_k > 0x7fffffff ? 0x7fffffff : (int)top_k, top_p, u, u2, F(scratch));
  if (id == -2) FAIL("kiln native: sample: out of memory");
  napi_value r;
  CHECK(napi_create_int32(env, id, &r));
  return r;
}

static napi_value adamw(napi_env env, napi_callback_info info) {
  ARGS(11); F32(0, param); F32(1, grad); F32(2, m); F32(3, v); NUM(4, lr); NUM(5, beta1); NUM(6, beta2);
  NUM(7, eps); NUM(8, wd); NUM(9, bc1); NUM(10, bc2);
  NEED(grad, param.len); NEED(m, param.len); NEED(v, param.len);
  kiln_adamw(F(param), F(grad), F(m), F(v), param.len, lr, beta1, beta2, eps, wd, bc1, bc2);
  return undef(env);
}

/* ---- vision kernels ---- */

#define DIM_MAX (1 << 24)

/* shape: Int32Array of kiln_conv2d_shape's 16 fields; every size checked so the kernels stay inside their buffers */
static int read_conv_shape(const arr *a, kiln_conv2d_shape *s) {
  if (a->len < 16) return -1;
  const int32_t *p = I(*a);
  for (int i = 0; i < 16; i++) if (p[i] < 0 || p[i] > DIM_MAX) return -1;
  *s = (kiln_conv2d_shape){ p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15] };
  if (s->KH < 1 || s->KW < 1 || s->sH < 1 || s->sW < 1 || s->dH < 1 || s->dW < 1 || s->G < 1) return -1;
  if (s->C % s->G || s->OC % s->G) return -1;
  return 0;
}

static napi_value conv2d(napi_env env, napi_callback_info info) {
  ARGS(5); F32(0, x); F32(1, w); F32OPT(2, bias); I32(3, shape); F32(4, out);
  kiln_conv2d_shape s;
  if (read_conv_shape(&shape, &s)) FAIL("kiln native: conv2d: bad shape (sizes must be non-negative, kernel, stride, dilation and groups positive, groups dividing the channels)");
  NEED(x, (size_t)s.N * s.C * s.H * s.W); NEED(w, (size_t)s.OC * (s.C / s.G) * s.KH * s.KW);
  NEED(out, (size_t)s.N * s.OC * s.OH * s.OW);
  if (bias.present) NEED(bias, s.OC);
  if (kiln_conv2d(F(x), F(w), bias.present ? F(bias) : NULL, &s, F(out))) FAIL("kiln native: conv2d: out of memory for the column buffer");
  return undef(env);
}

static napi_value conv2d_backward(napi_env env, napi_callback_info info) {
  ARGS(7); F32(0, dy); F32(1, x); F32(2, w); I32(3, shape); F32OPT(4, dx); F32OPT(5, dw); F32OPT(6, db);
  kiln_conv2d_shape s;
  if (read_conv_shape(&shape, &s)) FAIL("kiln native: conv2dBackward: bad shape (sizes must be non-negative, kernel, stride, dilation and groups positive, groups dividing the channels)");
  size_t nw = (size_t)s.OC * (s.C / s.G) * s.KH * s.KW;
  NEED(dy, (size_t)s.N * s.OC * s.OH * s.OW); NEED(x, (size_t)s.N * s.C * s.H * s.W); NEED(w, nw);
  if (dx.present) NEED(dx, (size_t)s.N * s.C * s.H * s.W);
  if (dw.present) NEED(dw, nw);
  if (db.present) NEED(db, s.OC);
  if (kiln_conv2d_backward(F(dy), F(x), F(w), &s, dx.present ? F(dx) : NULL, dw.present ? F(dw) : NULL,
                           db.present ? F(db) : NULL)) FAIL("kiln native: conv2dBackward: out of memory for the column buffer");
  return undef(env);
}

/* shape: Int32Array of kiln_pool2d_shape's 13 fields */
static int read_pool_shape(const arr *a, kiln_pool2d_shape *s) {
  if (a->len < 13) return -1;
  const int32_t *p = I(*a);
  for (int i = 0; i < 13; i++) if (p[i] < 0 || p[i] > DIM_MAX) return -1;
  *s = (kiln_pool2d_shape){ p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12] };
  if (s->KH < 1 || s->KW < 1 || s->sH < 1 || s->sW < 1 || s->dH < 1 || s->dW < 1) return -1;
  return 0;
}

#define POOL_SHAPE(i, what) arr shape_; I32_AS(i, shape_); kiln_pool2d_shape s; \
  if (read_pool_shape(&shape_, &s)) FAIL("kiln native: " what ": bad shape (sizes must be non-negative, kernel, stride and dilation positive)")
#define I32_AS(i, name) if (get_arr(env, argv[i], napi_int32_array, 0, &name)) FAIL("kiln native: %s: argument %s must be an Int32Array", __func__, #name)

static napi_value max_pool2d(napi_env env, napi_callback_info info) {
  ARGS(4); F32(0, x); POOL_SHAPE(1, "maxPool2d"); F32(2, out); I32(3, idx);
  NEED(x, (size_t)s.P * s.H * s.W); NEED(out, (size_t)s.P * s.OH * s.OW); NEED(idx, (size_t)s.P * s.OH * s.OW);
  kiln_max_pool2d(F(x), &s, F(out), I(idx));
  return undef(env);
}

static napi_value max_pool2d_backward(napi_env env, napi_callback_info info) {
  ARGS(4); F32(0, dy); I32(1, idx); POOL_SHAPE(2, "maxPool2dBackward"); F32(3, dx);
  size_t no = (size_t)s.P * s.OH * s.OW;
  NEED(dy, no); NEED(idx, no); NEED(dx, (size_t)s.P * s.H * s.W);
  for (size_t i = 0; i < no; i++)
    if (I(idx)[i] < -1 || I(idx)[i] >= s.H * s.W) FAIL("maxPool2dBackward: index %d at position %zu is outside [-1, %d)", I(idx)[i], i, s.H * s.W);
  kiln_max_pool2d_backward(F(dy), I(idx), &s, F(dx));
  return undef(env);
}

static napi_value avg_pool2d(napi_env env, napi_callback_info info) {
  ARGS(5); F32(0, x); POOL_SHAPE(1, "avgPool2d"); BOOL(2, pad); NUM(3, divisor); F32(4, out);
  NEED(x, (size_t)s.P * s.H * s.W); NEED(out, (size_t)s.P * s.OH * s.OW);
  kiln_avg_pool2d(F(x), &s, pad, (float)divisor, F(out));
  return undef(env);
}

static napi_value avg_pool2d_backward(napi_env env, napi_callback_info info) {
  ARGS(5); F32(0, dy); POOL_SHAPE(1, "avgPool2dBackward"); BOOL(2, pad); NUM(3, divisor); F32(4, dx);
  NEED(dy, (size_t)s.P * s.OH * s.OW); NEED(dx, (size_t)s.P * s.H * s.W);
  kiln_avg_pool2d_backward(F(dy), &s, pad, (float)divisor, F(dx));
  return undef(env);
}

static napi_value batchnorm_stats(napi_env env, napi_callback_info info) {
  ARGS(6); F32(0, x); INT(1, N); INT(2, C); INT(3, HW); F32(4, mean); F32(5, variance);
  NEED(x, N * C * HW); NEED(mean, C); NEED(variance, C);
  kiln_batchnorm_stats(F(x), N, C, HW, F(mean), F(variance));
  return undef(env);
}

static napi_value batchnorm(napi_env env, napi_callback_info info) {
  ARGS(9); F32(0, x); F32(1, mean); F32(2, invstd); F32OPT(3, weight); F32OPT(4, bias); INT(5, N); INT(6, C); INT(7, HW);
  F32(8, out);
  NEED(x, N * C * HW); NEED(out, N * C * HW); NEED(mean, C); NEED(invstd, C);
  if (weight.present) NEED(weight, C);
  if (bias.present) NEED(bias, C);
  kiln_batchnorm(F(x), F(mean), F(invstd), weight.present ? F(weight) : NULL, bias.present ? F(bias) : NULL, N, C, HW, F(out));
  return undef(env);
}

static napi_value batchnorm_backward(napi_env env, napi_callback_info info) {
  ARGS(12); F32(0, dy); F32(1, x); F32(2, mean); F32(3, invstd); F32OPT(4, weight); INT(5, N); INT(6, C); INT(7, HW);
  BOOL(8, batchStats); F32OPT(9, dx); F32OPT(10, dweight); F32OPT(11, dbias);
  NEED(dy, N * C * HW); NEED(x, N * C * HW); NEED(mean, C); NEED(invstd, C);
  if (weight.present) NEED(weight, C);
  if (dx.present) NEED(dx, N * C * HW);
  if (dweight.present) NEED(dweight, C);
  if (dbias.present) NEED(dbias, C);
  kiln_batchnorm_backward(F(dy), F(x), F(mean), F(invstd), weight.present ? F(weight) : NULL, N, C, HW, batchStats,
                          dx.present ? F(dx) : NULL, dweight.present ? F(dweight) : NULL, dbias.present ? F(dbias) : NULL);
  return undef(env);
}

/* info() -> { isa, threads, poolSize } */
static napi_value get_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o, isa, th, ps;
  CHECK(napi_create_object(env, &o));
  CHECK(napi_create_string_utf8(env, kiln_isa_name(kiln_isa()), NAPI_AUTO_LENGTH, &isa));
  CHECK(napi_create_int32(env, kiln_threads(), &th));
  CHECK(napi_create_int32(env, kiln_pool_size(), &ps));
  CHECK(napi_set_named_property(env, o, "isa", isa));
  CHECK(napi_set_named_property(env, o, "threads", th));
  CHECK(napi_set_named_property(env, o, "poolSize", ps));
  return o;
}

/* setIsa(name) -> boolean: for tests and benchmarks; false when the CPU lacks it */
static napi_value set_isa(napi_env env, napi_callback_info info) {
  ARGS(1);
  char name[32];
  size_t n;
  CHECK(napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n));
  int ok = 0;
  for (int i = 0; i <= KILN_ISA_AVX512; i++)
    if (strcmp(name, kiln_isa_name(i)) == 0) { ok = kiln_set_isa(i) == 0; break; }
  napi_value r;
  CHECK(napi_get_boolean(env, ok, &r));
  return r;
}

/* setThreads(n): threads used by parallel kernels, 1 .. pool size */
static napi_value set_threads(napi_env env, napi_callback_info info) {
  ARGS(1); INT(0, n);
  kiln_set_threads((int)(n > 4096 ? 4096 : n));
  return undef(env);
}

static napi_value gemm_tune(napi_env env, napi_callback_info info) {
  ARGS(3); INT(0, mc); INT(1, kc); INT(2, nc);
  kiln_gemm_tune((int)mc, (int)kc, (int)nc);
  return undef(env);
}

static napi_value memory_init(napi_env env, napi_callback_info info) {
  ARGS(1); INT(0, bound);
  napi_value r;
  napi_create_double(env, (double)kiln_memory_init(bound > 0 ? (size_t)bound : 0), &r);
  return r;
}

static napi_value memory_release(napi_env env, napi_callback_info info) {
  (void)info;
  kiln_memory_release();
  return undef(env);
}

/* The memory of the ArrayBuffer v; -1 (a TypeError thrown naming fn) when v is not one */
static int arraybuffer_memory(napi_env env, const char *fn, napi_value v, void **data, size_t *bytes) {
  if (napi_get_arraybuffer_info(env, v, data, bytes) == napi_ok) return 0;
  char msg[128];
  snprintf(msg, sizeof msg, "%s: expected an ArrayBuffer", fn);
  napi_throw_type_error(env, NULL, msg);
  return -1;
}

static napi_value memory_advise_huge(napi_env env, napi_callback_info info) {
  ARGS(1);
  void *data = NULL;
  size_t bytes = 0;
  if (arraybuffer_memory(env, "memoryAdviseHuge", argv[0], &data, &bytes)) return NULL;
  kiln_memory_advise_huge(data, bytes);
  return undef(env);
}

/* Bytes from the start of an ArrayBuffer to its first 64-byte boundary (a cache line, one AVX-512 vector) */
static napi_value align_offset(napi_env env, napi_callback_info info) {
  ARGS(1);
  void *data = NULL;
  size_t bytes = 0;
  if (arraybuffer_memory(env, "alignOffset", argv[0], &data, &bytes)) return NULL;
  napi_value r;
  CHECK(napi_create_uint32(env, (uint32_t)((64 - (uintptr_t)data % 64) % 64), &r));
  return r;
}

/* gates (B, 4H); c_prev, c, h (B, H) */
static napi_value lstm_cell(napi_env env, napi_callback_info info) {
  ARGS(6); F32(0, gates); F32(1, c_prev); INT(2, B); INT(3, H); F32(4, c); F32(5, h);
  NEED(gates, B * 4 * H); NEED(c_prev, B * H); NEED(c, B * H); NEED(h, B * H);
  kiln_lstm_cell(F(gates), F(c_prev), B, H, F(c), F(h));
  return undef(env);
}

/* gates, dgates (B, 4H); c_prev, c, dh, dc (B, H) */
static napi_value lstm_cell_backward(napi_env env, napi_callback_info info) {
  ARGS(8); F32(0, gates); F32(1, c_prev); F32(2, c); F32(3, dh); F32(4, dc); INT(5, B); INT(6, H); F32(7, dgates);
  NEED(gates, B * 4 * H); NEED(dgates, B * 4 * H); NEED(c_prev, B * H); NEED(c, B * H); NEED(dh, B * H); NEED(dc, B * H);
  kiln_lstm_cell_backward(F(gates), F(c_prev), F(c), F(dh), F(dc), B, H, F(dgates));
  return undef(env);
}

/* gx, gh (B, 3H); h_prev, h (B, H) */
static napi_value gru_cell(napi_env env, napi_callback_info info) {
  ARGS(6); F32(0, gx); F32(1, gh); F32(2, h_prev); INT(3, B); INT(4, H); F32(5, h);
  NEED(gx, B * 3 * H); NEED(gh, B * 3 * H); NEED(h_prev, B * H); NEED(h, B * H);
  kiln_gru_cell(F(gx), F(gh), F(h_prev), B, H, F(h));
  return undef(env);
}

/* gates, gh, dgx, dgh (B, 3H); h_prev, dh, dh_prev (B, H) */
static napi_value gru_cell_backward(napi_env env, napi_callback_info info) {
  ARGS(9); F32(0, gates); F32(1, gh); F32(2, h_prev); F32(3, dh); INT(4, B); INT(5, H); F32(6, dgx); F32(7, dgh);
  F32(8, dh_prev);
  NEED(gates, B * 3 * H); NEED(gh, B * 3 * H); NEED(dgx, B * 3 * H); NEED(dgh, B * 3 * H);
  NEED(h_prev, B * H); NEED(dh, B * H); NEED(dh_prev, B * H);
  kiln_gru_cell_backward(F(gates), F(gh), F(h_prev), F(dh), B, H, F(dgx), F(dgh), F(dh_prev));
  return undef(env);
}

static napi_value init(napi_env env, napi_value exports) {
  static const struct { const char *name; napi_callback cb; } fns[] = {
    { "fill", fill }, { "copy", copy }, { "unary", unary }, { "unaryBackward", unary_backward }, { "clamp", clamp },
    { "binary", binary }, { "where", where }, { "expand", expand }, { "reduce", reduce }, { "argmax", argmax },
    { "gemm", gemm }, { "softmax", softmax }, { "softmaxBackward", softmax_backward }, { "layerNorm", layernorm },
    { "layerNormBackward", layernorm_backward }, { "crossEntropy", cross_entropy },
    { "rmsNorm", rmsnorm }, { "rmsNormBackward", rmsnorm_backward }, { "rope", rope },
    { "crossEntropyBackward", cross_entropy_backward }, { "indexSelect", index_select }, { "indexAdd", index_add },
    { "gather", gather }, { "scatterAdd", scatter_add }, { "permute", permute }, { "sliceCopy", slice_copy },
    { "sliceAssign", slice_assign }, { "attention", attention }, { "attentionBackward", attention_backward },
    { "gptBlockDecode", gpt_block_decode }, { "alignOffset", align_offset }, { "gptDecode", gpt_decode }, { "packPanels", pack_panels }, { "panelsApply", panels_apply }, { "sample", sample },
    { "llamaBlockDecode", llama_block_decode },
    { "adamw", adamw }, { "info", get_info }, { "setIsa", set_isa }, { "setThreads", set_threads },
    { "gemmTune", gemm_tune }, { "gemmBf16", gemm_bf16 }, { "bf16Info", bf16_info }, { "setBf16", set_bf16 }, { "memoryInit", memory_init }, { "memoryRelease", memory_release },
    { "memoryAdviseHuge", memory_advise_huge },
    { "lstmCell", lstm_cell }, { "lstmCellBackward", lstm_cell_backward }, { "gruCell", gru_cell },
    { "gruCellBackward", gru_cell_backward },
    { "conv2d", conv2d }, { "conv2dBackward", conv2d_backward }, { "maxPool2d", max_pool2d },
    { "maxPool2dBackward", max_pool2d_backward }, { "avgPool2d", avg_pool2d }, { "avgPool2dBackward", avg_pool2d_backward },
    { "batchNormStats", batchnorm_stats }, { "batchNorm", batchnorm }, { "batchNormBackward", batchnorm_backward },
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &f) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, f) != napi_ok) return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

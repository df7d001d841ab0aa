/* One pre-norm GPT-2 block for a decoding step, in one call: A sequences with one new token each, their keys and
 * values appended to a KV cache. It runs the same kernels, in the same order and with the same rounding, as the
 * composed path in TypeScript (layer norm, the GEMM with the bias as its starting value, cached attention, the
 * residual adds, tanh-GELU), so both give bitwise the same result; what it saves is ~10 round trips to JavaScript
 * per block, during which the pool's worker would go idle and the caches cool. */
#include "kiln.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* rows (A, n) of out all start as bias (n), or zeros without one; returns the GEMM's beta */
static float start_with_bias(float *out, const float *bias, int A, int n) {
  if (!bias) return 0.0f;
  for (int a = 0; a < A; a++) memcpy(out + (size_t)a * n, bias, (size_t)n * sizeof(float));
  return 1.0f;
}

static void add_into(float *x, const float *y, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] += y[i];
}

int kiln_gpt_block_decode(const kiln_gpt_block *w, float *x, float *keys, float *values, const int32_t *rows,
                          const int32_t *starts, int A, int C, int NH, int P, float eps) {
  if (A <= 0) return 0;
  if (NH <= 0 || C % NH != 0) return -1;
  const int HS = C / NH;
  const size_t n = (size_t)A * C;
  /* scratch, one block: h (A, C) normed input, qkv (A, 3C), att (A, C), y (A, C) a sub-layer's output,
   * mlp (A, 4C), q (A, C) the queries, mean and rstd (A) each */
  float *buf = malloc(sizeof(float) * (n * 11 + 2 * (size_t)A));
  if (!buf) return -2;
  float *h = buf, *qkv = h + n, *att = qkv + 3 * n, *y = att + n, *mlp = y + n, *q = mlp + 4 * n;
  float *mean = q + n, *rstd = mean + A;
  const float scale = (float)(1.0 / sqrt((double)HS));
  kiln_lock(); /* recursive: the kernels below take it too; no other caller interleaves with the block */

  /* attention: x += c_proj(attn(c_attn(ln_1(x)))) */
  kiln_layernorm(x, w->ln1_w, w->ln1_b, (size_t)A, (size_t)C, eps, h, mean, rstd);
  float beta = start_with_bias(qkv, w->attn_b, A, 3 * C);
  kiln_gemm(0, 0, 1, A, 3 * C, C, 1.0f, h, 0, w->attn_w, 0, beta, qkv, 0);
  for (int a = 0; a < A; a++) {
    const float *src = qkv + (size_t)a * 3 * C; /* (3C): [q | k | v] */
    const size_t at = ((size_t)rows[a] * P + (size_t)starts[a]) * C; /* the new position in the row's (P, C) block */
    memcpy(q + (size_t)a * C, src, (size_t)C * sizeof(float));
    memcpy(keys + at, src + C, (size_t)C * sizeof(float));
    memcpy(values + at, src + 2 * C, (size_t)C * sizeof(float));
  }
  kiln_attention_decode_batch(q, keys, values, rows, starts, A, NH, NH, HS, P, scale, att);
  beta = start_with_bias(y, w->proj_b, A, C);
  kiln_gemm(0, 0, 1, A, C, C, 1.0f, att, 0, w->proj_w, 0, beta, y, 0);
  add_into(x, y, n);

  /* MLP: x += c_proj(gelu(c_fc(ln_2(x)))) */
  kiln_layernorm(x, w->ln2_w, w->ln2_b, (size_t)A, (size_t)C, eps, h, mean, rstd);
  beta = start_with_bias(mlp, w->fc_b, A, 4 * C);
  kiln_gemm(0, 0, 1, A, 4 * C, C, 1.0f, h, 0, w->fc_w, 0, beta, mlp, 0);
  kiln_unary(U_GELU_TANH, mlp, mlp, 4 * n);
  beta = start_with_bias(y, w->fc2_b, A, C);
  kiln_gemm(0, 0, 1, A, C, 4 * C, 1.0f, mlp, 0, w->fc2_w, 0, beta, y, 0);
  add_into(x, y, n);

  kiln_unlock();
  free(buf);
  return 0;
}

/* One Llama decoder layer for a decoding step, as the GPT block above: the same kernels and order as the composed
 * layer in src/models/llama.ts (RMSNorm, bias-free projections y = x W^T, rotary embeddings at each sequence's
 * position, grouped-query attention over the cache, SwiGLU), so bitwise the composed result. */
int kiln_llama_block_decode(const kiln_llama_block *w, float *x, float *keys, float *values, const int32_t *rows,
                            const int32_t *starts, int A, int C, int NH, int KVH, int hidden, int P, float eps,
                            double theta) {
  if (A <= 0) return 0;
  if (NH <= 0 || KVH <= 0 || C % NH != 0 || NH % KVH != 0 || (C / NH) % 2 != 0) return -1;
  const int HS = C / NH, KW = KVH * HS;
  const size_t n = (size_t)A * C, nk = (size_t)A * KW, nh = (size_t)A * hidden;
  /* scratch: h (A, C) normed input, q and qr (A, C) before and after rotation, k and kr (A, KW) likewise,
   * v (A, KW), att (A, C), y (A, C) a sub-layer's output, gate and up (A, hidden), rstd (A) */
  float *buf = malloc(sizeof(float) * (n * 5 + nk * 3 + nh * 2 + (size_t)A));
  if (!buf) return -2;
  float *h = buf, *q = h + n, *qr = q + n, *att = qr + n, *y = att + n;
  float *k = y + n, *kr = k + nk, *v = kr + nk, *gate = v + nk, *up = gate + nh, *rstd = up + nh;
  const float scale = (float)(1.0 / sqrt((double)HS));
  kiln_lock();

  /* attention: x += o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))), n = input_layernorm(x) */
  kiln_rmsnorm(x, w->in_norm, (size_t)A, (size_t)C, eps, h, rstd);
  kiln_gemm(0, 1, 1, A, C, C, 1.0f, h, 0, w->q_w, 0, 0.0f, q, 0);
  kiln_gemm(0, 1, 1, A, KW, C, 1.0f, h, 0, w->k_w, 0, 0.0f, k, 0);
  kiln_gemm(0, 1, 1, A, KW, C, 1.0f, h, 0, w->v_w, 0, 0.0f, v, 0);
  kiln_rope(q, (size_t)A, 1, (size_t)NH, (size_t)HS, theta, starts, 0, qr);
  kiln_rope(k, (size_t)A, 1, (size_t)KVH, (size_t)HS, theta, starts, 0, kr);
  for (int a = 0; a < A; a++) {
    const size_t at = ((size_t)rows[a] * P + (size_t)starts[a]) * KW; /* the new position in the row's (P, KW) block */
    memcpy(keys + at, kr + (size_t)a * KW, (size_t)KW * sizeof(float));
    memcpy(values + at, v + (size_t)a * KW, (size_t)KW * sizeof(float));
  }
  kiln_attention_decode_batch(qr, keys, values, rows, starts, A, NH, KVH, HS, P, scale, att);
  kiln_gemm(0, 1, 1, A, C, C, 1.0f, att, 0, w->o_w, 0, 0.0f, y, 0);
  add_into(x, y, n);

  /* MLP: x += down_proj(silu(gate_proj(n)) * up_proj(n)), n = post_attention_layernorm(x) */
  kiln_rmsnorm(x, w->post_norm, (size_t)A, (size_t)C, eps, h, rstd);
  kiln_gemm(0, 1, 1, A, hidden, C, 1.0f, h, 0, w->gate_w, 0, 0.0f, gate, 0);
  kiln_gemm(0, 1, 1, A, hidden, C, 1.0f, h, 0, w->up_w, 0, 0.0f, up, 0);
  kiln_unary(U_SILU, gate, gate, nh);
  for (size_t i = 0; i < nh; i++) gate[i] = gate[i] * up[i];
  kiln_gemm(0, 1, 1, A, C, hidden, 1.0f, gate, 0, w->down_w, 0, 0.0f, y, 0);
  add_into(x, y, n);

  kiln_unlock();
  free(buf);
  return 0;
}

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

/* ---- the whole GPT step in one parallel job ----
 * Per token the step streams every weight once (16.8 MB for the T4 model) and does little else, so it runs at the
 * speed the cores read memory only if both stay on it: one job for the whole step, the threads splitting each
 * product's columns and meeting at barriers, instead of a wake-up per kernel and JavaScript between them. Each
 * piece runs the same kernel on the same inputs as the composed path (columns, heads and 16-aligned element ranges
 * are computed the same way wherever a split falls), so the logits and the cache are bitwise the composed ones. */

typedef struct {
  const kiln_gpt_model *m;
  const int32_t *rows, *starts;
  int A;
  float *x;      /* (A, C) the residual stream, embedded before the job */
  float *qkv;    /* (A, 3C) */
  float *q;      /* (A, C) queries, gathered from qkv */
  float *att;    /* (A, C) attention output */
  float *y;      /* (A, C) a sub-layer's output */
  float *mlp;    /* (A, 4C) */
  float *h;      /* (threads, A, C) each thread's normed input */
  float *stats;  /* (threads, 2, A) each thread's mean and rstd */
  float *logits; /* (A, V), or (n_out, V) */
  const int32_t *head_rows; /* (n_out) entries whose logits are wanted, ascending; NULL: all */
  int n_out;
  _Atomic int failed;
} gpt_step_job;

/* Columns [*j0, *j1) of N for thread tid of n: 16-aligned edges, the last thread to the end */
static void my_columns(int N, int tid, int n, int *j0, int *j1) {
  *j0 = (int)(((long)N * tid / n) & ~15L);
  *j1 = tid == n - 1 ? N : (int)(((long)N * (tid + 1) / n) & ~15L);
}

/* out[:, j0:j1] = bias (or untouched without one); returns the product's beta as start_with_bias does */
static float bias_columns(float *out, const float *bias, int A, int N, int j0, int j1) {
  if (!bias) return 0.0f;
  for (int a = 0; a < A; a++) memcpy(out + (size_t)a * N + j0, bias + j0, (size_t)(j1 - j0) * sizeof(float));
  return 1.0f;
}

/* Columns [j0, j1) of out (A, N) = x (A, K) @ op(W) + beta * out: from W's panels where they exist and give the same
 * sums (a batched step), else from W itself */
static void product_span(int transB, int A, int N, int K, const float *x, const float *W, const float *panels,
                         float beta, float *out, int j0, int j1) {
  if (panels && kiln_gemv_panels_applies(transB, A, K) &&
      kiln_gemv_span_panels(A, N, K, x, panels, beta, out, j0, j1) == 0) return;
  kiln_gemv_span(transB, A, N, K, x, W, beta, out, j0, j1);
}

/* Thread tid's part of one block; barriers between the pieces that read what other threads wrote. */
static void gpt_block_part(gpt_step_job *s, const kiln_gpt_block *w, float *keys, float *values, float *h,
                           float *mean, float *rstd, int tid, int n) {
  const kiln_gpt_model *m = s->m;
  const int A = s->A, C = m->C, HS = C / m->NH, P = m->P;
  int j0, j1;
  kiln_layernorm_serial(s->x, w->ln1_w, w->ln1_b, (size_t)A, (size_t)C, m->eps, h, mean, rstd);
  my_columns(3 * C, tid, n, &j0, &j1);
  float beta = bias_columns(s->qkv, w->attn_b, A, 3 * C, j0, j1);
  product_span(0, A, 3 * C, C, h, w->attn_w, w->attn_p, beta, s->qkv, j0, j1);
  for (int a = 0; a < A; a++) { /* this thread's columns of [q | k | v] to the queries and the cache */
    const float *src = s->qkv + (size_t)a * 3 * C;
    const size_t at = ((size_t)s->rows[a] * P + (size_t)s->starts[a]) * C;
    for (int j = j0; j < j1; j++) {
      if (j < C) s->q[(size_t)a * C + j] = src[j];
      else if (j < 2 * C) keys[at + j - C] = src[j];
      else values[at + j - 2 * C] = src[j];
    }
  }
  kiln_barrier(n);
  if (kiln_attention_decode_part(s->q, keys, values, s->rows, s->starts, A, m->NH, m->NH, HS, P,
                                 (float)(1.0 / sqrt((double)HS)), s->att, tid, n)) s->failed = 1;
  kiln_barrier(n);
  my_columns(C, tid, n, &j0, &j1);
  beta = bias_columns(s->y, w->proj_b, A, C, j0, j1);
  product_span(0, A, C, C, s->att, w->proj_w, w->proj_p, beta, s->y, j0, j1);
  for (int a = 0; a < A; a++) for (int j = j0; j < j1; j++) s->x[(size_t)a * C + j] += s->y[(size_t)a * C + j];
  kiln_barrier(n);
  kiln_layernorm_serial(s->x, w->ln2_w, w->ln2_b, (size_t)A, (size_t)C, m->eps, h, mean, rstd);
  my_columns(4 * C, tid, n, &j0, &j1);
  beta = bias_columns(s->mlp, w->fc_b, A, 4 * C, j0, j1);
  product_span(0, A, 4 * C, C, h, w->fc_w, w->fc_p, beta, s->mlp, j0, j1);
  kiln_barrier(n);
  int e0, e1; /* GELU over all of (A, 4C) in 16-aligned ranges: the elements the composed call vectorizes */
  my_columns(4 * C * A, tid, n, &e0, &e1);
  kiln_unary_span(U_GELU_TANH, s->mlp, s->mlp, (size_t)e0, (size_t)e1);
  kiln_barrier(n);
  my_columns(C, tid, n, &j0, &j1);
  beta = bias_columns(s->y, w->fc2_b, A, C, j0, j1);
  product_span(0, A, C, 4 * C, s->mlp, w->fc2_w, w->fc2_p, beta, s->y, j0, j1);
  for (int a = 0; a < A; a++) for (int j = j0; j < j1; j++) s->x[(size_t)a * C + j] += s->y[(size_t)a * C + j];
  kiln_barrier(n);
}

static void gpt_step_thread(void *p, int tid, int n) {
  gpt_step_job *s = p;
  const kiln_gpt_model *m = s->m;
  const int A = s->A, C = m->C;
  float *h = s->h + (size_t)tid * A * C, *mean = s->stats + (size_t)tid * 2 * A, *rstd = mean + A;
  for (int l = 0; l < m->L; l++) gpt_block_part(s, &m->blocks[l], m->keys[l], m->values[l], h, mean, rstd, tid, n);
  kiln_layernorm_serial(s->x, m->lnf_w, m->lnf_b, (size_t)A, (size_t)C, m->eps, h, mean, rstd);
  int M = A; /* rows of h the head multiplies: the wanted entries, gathered to the front (ascending, so in place) */
  if (s->head_rows) {
    M = s->n_out;
    for (int i = 0; i < M; i++)
      if (s->head_rows[i] != i) memcpy(h + (size_t)i * C, h + (size_t)s->head_rows[i] * C, (size_t)C * sizeof(float));
  }
  if (M == 0) return;
  int j0, j1;
  my_columns(m->V, tid, n, &j0, &j1);
  product_span(1, M, m->V, C, h, m->head, m->head_p, 0.0f, s->logits, j0, j1);
}

int kiln_gpt_decode_applies(const kiln_gpt_model *m, int A) {
  const long C = m->C;
  return A >= 1 && A <= KILN_GEMV_MAX_M && m->L >= 0 && C >= 1 && m->NH >= 1 && C % m->NH == 0 && m->V >= 1 &&
         C * C > 512 && m->V * C > 512; /* the smallest products kiln_gemm streams instead of packing */
}

int kiln_gpt_decode(const kiln_gpt_model *m, const int32_t *tokens, const int32_t *rows, const int32_t *starts, int A,
                    const int32_t *head_rows, int n_out, float *logits) {
  if (!kiln_gpt_decode_applies(m, A)) return -1;
  if (head_rows) {
    if (n_out < 0 || n_out > A) return -1;
    for (int i = 0; i < n_out; i++)
      if (head_rows[i] >= A || (i ? head_rows[i] <= head_rows[i - 1] : head_rows[i] < 0)) return -1;
  }
  const size_t C = (size_t)m->C, n = (size_t)A * C;
  const int T = kiln_threads();
  /* x, qkv, q, att, y, mlp: (A, 11 C); h: (T, A, C); stats: (T, 2, A) */
  float *buf = malloc(sizeof(float) * (n * 11 + (size_t)T * (n + 2 * (size_t)A)));
  if (!buf) return -2;
  gpt_step_job s = { .m = m, .rows = rows, .starts = starts, .A = A, .x = buf, .logits = logits, .head_rows = head_rows,
                     .n_out = n_out };
  s.qkv = s.x + n; s.q = s.qkv + 3 * n; s.att = s.q + n; s.y = s.att + n; s.mlp = s.y + n;
  s.h = s.mlp + 4 * n; s.stats = s.h + (size_t)T * n;
  for (int a = 0; a < A; a++) { /* x = wte[token] + wpe[position], as embedding(...).add(embedding(...)) */
    const float *te = m->wte + (size_t)tokens[a] * C, *pe = m->wpe + (size_t)starts[a] * C;
    for (size_t c = 0; c < C; c++) s.x[(size_t)a * C + c] = te[c] + pe[c];
  }
  kiln_lock();
  kiln_parallel_linger(gpt_step_thread, &s, T, 50000); /* ~1 ms: the next token's step finds the workers awake */
  kiln_unlock();
  free(buf);
  return s.failed ? -2 : 0;
}

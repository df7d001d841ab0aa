/* Kiln native kernels: one flat C API over float32 buffers, shared by the N-API glue (binding.c).
 * Every kernel takes outputs and inputs as raw pointers plus dimensions; none allocates per element. */
#ifndef KILN_H
#define KILN_H

#include <stddef.h>
#include <stdint.h>

/* ---- CPU dispatch (cpu.c) ---- */
/* SIMD128 is WebAssembly's 128-bit SIMD: the only vector ISA of the wasm build (src/backend/wasm/). */
enum { KILN_ISA_SCALAR = 0, KILN_ISA_NEON = 1, KILN_ISA_AVX2 = 2, KILN_ISA_AVX512 = 3, KILN_ISA_SIMD128 = 4 };
#define KILN_ISA_COUNT 5
int kiln_isa(void);                 /* the ISA in use */
int kiln_isa_best(void);            /* the best ISA this CPU supports */
int kiln_set_isa(int isa);          /* returns 0, or -1 when the CPU lacks it */
const char *kiln_isa_name(int isa);
int kiln_bf16_supported(void);      /* 1 when the CPU has AVX512_BF16 (vdpbf16ps) */
int kiln_bf16(void);                /* 1 when bf16 GEMMs use vdpbf16ps (supported, AVX-512 in use, not turned off) */
int kiln_set_bf16(int on);          /* turns the vdpbf16ps path on or off; -1 when on is asked and unsupported */

/* ---- thread pool (pool.c) ---- */
typedef void (*kiln_task_fn)(void *arg, int tid, int nthreads);
int kiln_threads(void);             /* threads used by parallel kernels (pool size, caller included) */
int kiln_pool_size(void);
void kiln_set_threads(int n);       /* 1 .. pool size */
/* Runs fn(arg, tid, n) on n threads (the caller is tid 0) and returns when all are done. */
void kiln_parallel(kiln_task_fn fn, void *arg, int n);
/* kiln_parallel, after which the workers spin `spins` rounds (instead of ~75 us) before they sleep */
void kiln_parallel_linger(kiln_task_fn fn, void *arg, int n, int spins);
/* A process-wide recursive lock: the pool and the GEMM buffers serve one caller at a time, so JavaScript threads
 * (worker_threads) calling kernels at once are serialised instead of corrupting each other. */
void kiln_lock(void);
void kiln_unlock(void);
/* Barrier among the n threads of the current kiln_parallel call. */
void kiln_barrier(int n);
#if defined(__wasm__)
/* The wasm build's pool (pool.c): the host starts `n - 1` workers (Web Workers or worker_threads on the same shared
 * memory), each of which sets its own stack and then calls kiln_worker_main(tid), which never returns. Kernels use
 * the workers that have checked in, so the pool works single-threaded until (or unless) they arrive. */
void kiln_pool_configure(int n, int caller_may_block); /* caller_may_block: 0 on a browser's main thread */
void kiln_worker_main(int tid);
int kiln_workers_ready(void);      /* workers 1 .. n have checked in */
#endif
/* Runs body over [0, count) split in fixed chunks of `chunk` items; chunk c goes to thread c % n. */
typedef void (*kiln_range_fn)(void *arg, size_t begin, size_t end);
void kiln_parallel_for(size_t count, size_t chunk, size_t min_parallel, kiln_range_fn fn, void *arg);

/* ---- gemm (gemm.c) ---- */
void kiln_gemm(int transA, int transB, int batch, int M, int N, int K, float alpha,
               const float *A, long strideA, const float *B, long strideB, float beta, float *C, long strideC);
void kiln_gemm_tune(int mc, int kc, int nc);
/* The same with op(A) and op(B) rounded to bfloat16 (nearest even) and float32 accumulation: vdpbf16ps where
 * kiln_bf16() says so, else rounded float32 panels on the float32 micro-kernel. Same arguments as kiln_gemm. */
void kiln_gemm_bf16(int transA, int transB, int batch, int M, int N, int K, float alpha,
                    const float *A, long strideA, const float *B, long strideB, float beta, float *C, long strideC);
float kiln_bf16_round(float x); /* x rounded to the nearest bfloat16 (ties to even), as a float */
/* One GEMM (batch 1, contiguous) on the calling thread, which is pool thread `tid`; never starts threads. */
void kiln_gemm_serial(int tid, int transA, int transB, int M, int N, int K, float alpha, const float *A,
                      const float *B, float beta, float *C);

/* ---- memory policy (memory.c) ---- */
/* Keeps up to `bound` bytes of freed memory mapped for reuse (0: leave the C library's policy); returns the bound
 * in force (0 where the C library cannot be tuned). */
size_t kiln_memory_init(size_t bound);
void kiln_memory_release(void);  /* gives the cached free memory back to the system */
void kiln_memory_advise_huge(void *p, size_t bytes);  /* asks for huge pages for a fresh, untouched buffer */

/* ---- small-M GEMM without packing (gemv.c), used by kiln_gemm for decoding-sized products ---- */
#define KILN_GEMV_MAX_M 16
/* dst (kc, P): dst[k * P + r] = rows[r][k] for r < R, zero for R <= r < P (the GEMM's panel packing, gemm.c) */
void kiln_pack_rows_t(const float *const *rows, int R, int kc, int P, float *dst);
int kiln_gemv_applies(int batch, int M, int K);
/* Columns [j0, j1) of C (M, N) = A (M, K) @ op(B) + beta * C on the calling thread, as kiln_gemm computes them for a
 * decoding-sized product (M <= KILN_GEMV_MAX_M, batch 1, A not transposed, alpha 1, N * K > 512). */
void kiln_gemv_span(int transB, int M, int N, int K, const float *A, const float *B, float beta, float *C, int j0,
                    int j1);
void kiln_gemv_locked(int transA, int transB, int M, int N, int K, float alpha, const float *A, const float *B,
                      float beta, float *C, float *scratch, int serial);
/* Weights packed for batched decoding: op(B) (K, N) as (ceil(N / 16), K, 16) panels, zero past N (B is (K, N), or
 * (N, K) with transB). kiln_panels_size gives the floats dst needs. */
size_t kiln_panels_size(int N, int K);
void kiln_pack_panels(int transB, int N, int K, const float *B, float *dst);
/* Whether kiln_gemv_span_panels computes (M, N, K) products of this op(B) bitwise as kiln_gemv_span does. */
int kiln_gemv_panels_applies(int transB, int M, int K);
/* kiln_gemv_span with B as panels; j0 a multiple of 16. 0, or -1 when it does not apply (nothing written). */
int kiln_gemv_span_panels(int M, int N, int K, const float *A, const float *panels, float beta, float *C, int j0,
                          int j1);

/* ---- element-wise, reductions, layout (elementwise.c, layout.c) ---- */
enum {
  U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_ABS, U_SIGN, U_SQUARE, U_RECIPROCAL, U_TANH, U_SIGMOID, U_RELU,
  U_GELU, U_GELU_TANH, U_SILU, U_SIN, U_COS, U_COUNT
};
enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE, B_COUNT };
enum { R_SUM, R_MAX, R_MIN };
#define KILN_MAX_RANK 16

void kiln_fill(float *out, size_t n, float value);
void kiln_copy(const float *src, float *dst, size_t n);
void kiln_unary(int op, const float *x, float *out, size_t n);
/* kiln_unary's result for elements [b, e) on the calling thread; any 16-aligned split gives the same values */
void kiln_unary_span(int op, const float *x, float *out, size_t b, size_t e);
void kiln_unary_backward(int op, const float *x, const float *y, const float *dy, float *dx, size_t n);
void kiln_clamp(const float *x, float lo, float hi, float *out, size_t n);
void kiln_binary(int op, const float *a, const int *aShape, const float *b, const int *bShape,
                 float *out, const int *outShape, int rank);
/* cond is float32 (cond_i32 = 0) or int32 (cond_i32 = 1) */
void kiln_where(const void *cond, int cond_i32, const int *condShape, const float *a, const int *aShape,
                const float *b, const int *bShape, float *out, const int *outShape, int rank);
void kiln_expand(const float *x, const int *xShape, float *out, const int *outShape, int rank);
void kiln_reduce(int op, const float *x, size_t outer, size_t dim, size_t inner, float *out);
void kiln_argmax(const float *x, size_t outer, size_t dim, size_t inner, int32_t *out);

void kiln_permute(const float *x, const int *shape, const int *perm, int rank, float *out);
void kiln_slice_copy(const float *src, size_t outer, size_t srcDim, size_t inner, size_t start, size_t len, float *dst);
void kiln_slice_assign(const float *src, size_t outer, size_t dstDim, size_t inner, size_t start, size_t len, float *dst);
void kiln_index_select(const float *x, size_t outer, size_t dim, size_t inner, const int32_t *idx, size_t k, float *out);
void kiln_index_add(const float *dout, size_t outer, size_t dim, size_t inner, const int32_t *idx, size_t k, float *dx);
void kiln_gather(const float *x, size_t outer, size_t dim, size_t inner, const int32_t *idx, size_t k, float *out);
void kiln_scatter_add(const float *dout, size_t outer, size_t dim, size_t inner, const int32_t *idx, size_t k, float *dx);

/* ---- fused nn kernels (nn.c, attention.c) ---- */
void kiln_softmax(const float *x, size_t rows, size_t cols, int log, float *out);
void kiln_softmax_backward(const float *y, const float *dy, size_t rows, size_t cols, int log, float *dx);
void kiln_layernorm(const float *x, const float *weight, const float *bias, size_t rows, size_t C, float eps,
                    float *out, float *mean, float *rstd);
/* kiln_layernorm on the calling thread only (inside a kiln_parallel job) */
void kiln_layernorm_serial(const float *x, const float *weight, const float *bias, size_t rows, size_t C, float eps,
                           float *out, float *mean, float *rstd);
void kiln_layernorm_backward(const float *dy, const float *x, const float *weight, const float *mean,
                             const float *rstd, size_t rows, size_t C, float *dx, float *dweight, float *dbias);
void kiln_rmsnorm(const float *x, const float *weight, size_t rows, size_t C, float eps, float *out, float *rstd);
void kiln_rmsnorm_backward(const float *dy, const float *x, const float *weight, const float *rstd, size_t rows,
                           size_t C, float *dx, float *dweight);
/* returns 0, or -1 when HS is odd or above 1024 */
int kiln_rope(const float *x, size_t B, size_t T, size_t NH, size_t HS, double theta, const int32_t *starts, int inverse,
              float *out);
/* returns -1 on success, else the row whose target is out of range */
long kiln_cross_entropy(const float *logits, const int32_t *targets, size_t N, size_t V, int ignoreIndex,
                        float labelSmoothing, float *losses, float *lse);
void kiln_cross_entropy_backward(const float *logits, const int32_t *targets, const float *lse, const float *dlosses,
                                 size_t N, size_t V, int ignoreIndex, float labelSmoothing, float *dlogits);
void kiln_attention(const float *q, const float *k, const float *v, int B, int Tq, int Tk, int NH, int HS,
                    int causal, float scale, float *out, float *lse, long ld);
void kiln_attention_backward(const float *dout, const float *q, const float *k, const float *v, const float *out,
                             const float *lse, int B, int Tq, int Tk, int NH, int HS, int causal, float scale,
                             float *dq, float *dk, float *dv, long ld);
/* ---- decoding (decode_step.c) ---- */
/* A GPT-2 block's parameters; Conv1D weights are stored (in, out); any bias or norm parameter may be NULL. */
typedef struct {
  const float *ln1_w, *ln1_b;   /* (C) each */
  const float *attn_w, *attn_b; /* (C, 3C), (3C) */
  const float *proj_w, *proj_b; /* (C, C), (C) */
  const float *ln2_w, *ln2_b;   /* (C) each */
  const float *fc_w, *fc_b;     /* (C, 4C), (4C) */
  const float *fc2_w, *fc2_b;   /* (4C, C), (C) */
  /* optional: attn_w, proj_w, fc_w, fc2_w as kiln_pack_panels made them, for batched steps (kiln_gpt_decode) */
  const float *attn_p, *proj_p, *fc_p, *fc2_p;
} kiln_gpt_block;
/* A Llama decoder layer's parameters; projections stored (out, in) as torch.nn.Linear; a norm weight may be NULL. */
typedef struct {
  const float *in_norm, *post_norm;          /* (C) each */
  const float *q_w, *k_w, *v_w, *o_w;        /* (C, C), (KW, C), (KW, C), (C, C) */
  const float *gate_w, *up_w, *down_w;       /* (hidden, C), (hidden, C), (C, hidden) */
} kiln_llama_block;
/* x (A, C) in place; keys/values (cache rows, P, KW); rows, starts (A). 0, -1 bad heads, -2 out of memory. */
int kiln_llama_block_decode(const kiln_llama_block *w, float *x, float *keys, float *values, const int32_t *rows,
                            const int32_t *starts, int A, int C, int NH, int KVH, int hidden, int P, float eps,
                            double theta);
/* x (A, C) in place; keys/values (cache rows, P, C); rows, starts (A). 0, -1 bad heads, -2 out of memory. */
int kiln_gpt_block_decode(const kiln_gpt_block *w, float *x, float *keys, float *values, const int32_t *rows,
                          const int32_t *starts, int A, int C, int NH, int P, float eps);

/* A whole GPT-2 model for a decoding step: embeddings, L blocks, the final norm and the LM head. */
typedef struct {
  const float *wte, *wpe;            /* (V, C) token and (P, C) position embeddings */
  const kiln_gpt_block *blocks;      /* (L) */
  float *const *keys, *const *values; /* (L) caches, each (cache rows, P, C) */
  const float *lnf_w, *lnf_b;        /* (C) each, either may be NULL */
  const float *head;                 /* (V, C): logits = ln_f(x) @ head^T */
  int L, C, NH, P, V;
  float eps;
  const float *head_p;               /* optional: head (transposed) as kiln_pack_panels made it */
} kiln_gpt_model;
/* Whether kiln_gpt_decode takes A sequences of this model (else decode block by block): every product decoding-
 * sized, so that the step computes what the composed kernels compute. */
int kiln_gpt_decode_applies(const kiln_gpt_model *m, int A);
/* One new token for each of A entries: tokens (A) at positions starts (A) of cache rows rows (A); logits (A, V), or
 * with head_rows (n_out ascending entry indices) only those entries' logits, (n_out, V). Bitwise the composed path
 * (embedding, kiln_gpt_block_decode per block, layer norm, head GEMM), in one parallel job whose threads stay on the
 * step. Entries may continue the same row at consecutive positions (a prompt): the step writes every entry's key and
 * value before any attention reads them. 0, -1 not applicable, -2 out of memory. */
int kiln_gpt_decode(const kiln_gpt_model *m, const int32_t *tokens, const int32_t *rows, const int32_t *starts, int A,
                    const int32_t *head_rows, int n_out, float *logits);
/* The part of kiln_attention_decode_batch that thread tid of n computes (inside a kiln_parallel job). 0, or -2 out
 * of memory. */
int kiln_attention_decode_part(const float *q, const float *keys, const float *values, const int32_t *rows,
                               const int32_t *starts, int A, int NH, int KVH, int HS, int P, float scale, float *out,
                               int tid, int n);

/* One draw from a row of logits (V): scaled by inv_temperature, softmax into p (V, scratch), top-k (0: off), then
 * the token where u (in [0, 1)) of the kept mass falls; when top-p (1: off) rejects it, the token where u2 falls
 * in the nucleus. Returns the id, -1 when no logit is above -inf, -2 out of memory. Mirrors src/models/sampling.ts
 * exactly. */
int kiln_sample(const float *logits, int V, double inv_temperature, int top_k, double top_p, double u, double u2, float *p);

/* The decoding step of A sequences in one call: q (A, NH * HS) one new query each, keys/values (cache rows, P,
 * KVH * HS) already holding its key and value; sequence a attends over the first starts[a] + 1 positions of cache
 * row rows[a], query head h reading key/value head h / (NH / KVH); out (A, NH * HS). Parallel over (sequence,
 * head); each gives bitwise kiln_attention's result for it alone (with the key/value heads repeated). */
void kiln_attention_decode_batch(const float *q, const float *keys, const float *values, const int32_t *rows,
                                 const int32_t *starts, int A, int NH, int KVH, int HS, int P, float scale, float *out);

void kiln_adamw(float *param, const float *grad, float *m, float *v, size_t n, double lr, double beta1, double beta2,
                double eps, double weightDecay, double bc1, double bc2);

/* ---- recurrent cells (rnn.c), gate order as in PyTorch ---- */
/* gates (B, 4H) pre-activations in, activations i, f, g, o out; c_prev, c, h (B, H) */
void kiln_lstm_cell(float *gates, const float *c_prev, size_t B, size_t H, float *c, float *h);
/* gates (B, 4H) activations; c_prev, c, dh (B, H); dc (B, H) in: dL/dc, out: dL/dc_prev; dgates (B, 4H) */
void kiln_lstm_cell_backward(const float *gates, const float *c_prev, const float *c, const float *dh, float *dc,
                             size_t B, size_t H, float *dgates);
/* gx (B, 3H) x part in, activations r, z, n out; gh (B, 3H) h part; h_prev, h (B, H) */
void kiln_gru_cell(float *gx, const float *gh, const float *h_prev, size_t B, size_t H, float *h);
/* gates, gh, dgx, dgh (B, 3H); h_prev, dh, dh_prev (B, H); dh_prev = dh * z (the GEMM part is the caller's) */
void kiln_gru_cell_backward(const float *gates, const float *gh, const float *h_prev, const float *dh, size_t B,
                            size_t H, float *dgx, float *dgh, float *dh_prev);
/* ---- vision: convolution (conv.c), pooling (pooling.c), batch norm (batchnorm.c) ---- */
/* Geometry of conv2d: x (N, C, H, W), weight (OC, C/G, KH, KW), out (N, OC, OH, OW); output (oh, ow) reads input row
 * oh*sH - pH + kh*dH and column ow*sW - pW + kw*dW, zero outside. Field order: the Int32Array binding.c receives. */
typedef struct { int N, C, H, W, OC, KH, KW, OH, OW, sH, sW, pH, pW, dH, dW, G; } kiln_conv2d_shape;
/* return 0, or -1 when scratch memory cannot be had */
int kiln_conv2d(const float *x, const float *weight, const float *bias, const kiln_conv2d_shape *s, float *out);
/* dx, dweight, dbias are written (not accumulated) where not NULL */
int kiln_conv2d_backward(const float *dy, const float *x, const float *weight, const kiln_conv2d_shape *s, float *dx,
                         float *dweight, float *dbias);
/* Pooling windows over P planes (H, W) -> (OH, OW), same reading rule as conv2d. */
typedef struct { int P, H, W, OH, OW, KH, KW, sH, sW, pH, pW, dH, dW; } kiln_pool2d_shape;
void kiln_max_pool2d(const float *x, const kiln_pool2d_shape *s, float *out, int32_t *indices);
void kiln_max_pool2d_backward(const float *dy, const int32_t *indices, const kiln_pool2d_shape *s, float *dx);
/* divisor 0: PyTorch's (the window clipped to the padded input with include_pad, else to the input) */
void kiln_avg_pool2d(const float *x, const kiln_pool2d_shape *s, int include_pad, float divisor, float *out);
void kiln_avg_pool2d_backward(const float *dy, const kiln_pool2d_shape *s, int include_pad, float divisor, float *dx);
void kiln_batchnorm_stats(const float *x, size_t N, size_t C, size_t HW, float *mean, float *variance);
void kiln_batchnorm(const float *x, const float *mean, const float *invstd, const float *weight, const float *bias,
                    size_t N, size_t C, size_t HW, float *out);
void kiln_batchnorm_backward(const float *dy, const float *x, const float *mean, const float *invstd,
                             const float *weight, size_t N, size_t C, size_t HW, int batch_stats, float *dx, float *dweight,
                             float *dbias);

#endif

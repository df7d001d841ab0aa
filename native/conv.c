/* 2-D convolution (NCHW) by im2col + GEMM, one image at a time: the image's patches are unrolled into a
 * (C/G * KH * KW, OH * OW) column matrix in a per-thread buffer that stays in L2, and the packed GEMM multiplies it
 * with the weight. Threads take fixed ranges of images (each runs the GEMM alone on its core); with fewer images than
 * threads, the images run one after another on a threaded GEMM. The weight gradient is summed per thread and the
 * partial sums are added in thread order, so a run repeats bitwise for a given thread count.
 * On AVX-512 and AVX2, stride-1 convolutions with long enough reductions take the direct kernels below (no column
 * matrix; see "direct convolution" and direct_ok); the rest, and other ISAs, take im2col + GEMM. */
#include "kiln.h"
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KILN_X86 1
#endif

#define MAX_T 256
/* the shortest reduction (input channels per group x kernel area) the direct kernels take */
#define DIRECT_MIN_K 64
/* the shortest the forward pass and weight gradient take, for 16 or more output channels per group */
#define DIRECT_SHORT_K 16

/* per-thread scratch: col (CgKK, OHW) and a partial weight gradient (OC, CgKK) plus bias gradient (OC) */
static float *colbuf[MAX_T], *dwbuf[MAX_T], *tbuf[MAX_T];
static size_t colbuf_n[MAX_T], dwbuf_n[MAX_T], tbuf_n[MAX_T];

static int ensure(float **buf, size_t *have, size_t need) {
  if (*have >= need) return 0;
  free(*buf);
  *buf = aligned_alloc(64, (need * sizeof(float) + 63) / 64 * 64);
  *have = *buf ? need : 0;
  return *buf ? 0 : -1;
}

/* Output columns ow whose input column ow * stride + off lies in [0, W): [*lo, *hi). */
static void valid_range(int off, int stride, int W, int OW, int *lo, int *hi) {
  int l = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int h = W - 1 - off < 0 ? 0 : (W - 1 - off) / stride + 1;
  if (h > OW) h = OW;
  if (l > h) l = h;
  *lo = l;
  *hi = h;
}

/* col (Cg*KH*KW, OH*OW) from x (Cg, H, W): row (c, kh, kw), column (oh, ow) = x[c, oh*sH - pH + kh*dH, ow*sW - pW + kw*dW]
 * or 0 outside the input. */
static void im2col(const kiln_conv2d_shape *s, const float *x, float *col) {
  const int Cg = s->C / s->G, OHW = s->OH * s->OW;
  for (int c = 0; c < Cg; c++)
    for (int kh = 0; kh < s->KH; kh++)
      for (int kw = 0; kw < s->KW; kw++) {
        float *row = col + (size_t)((c * s->KH + kh) * s->KW + kw) * OHW;
        const int offw = kw * s->dW - s->pW;
        int lo, hi;
        valid_range(offw, s->sW, s->W, s->OW, &lo, &hi);
        for (int oh = 0; oh < s->OH; oh++) {
          float *r = row + (size_t)oh * s->OW;
          const int ih = oh * s->sH - s->pH + kh * s->dH;
          if (ih < 0 || ih >= s->H) { memset(r, 0, sizeof(float) * s->OW); continue; }
          const float *xr = x + ((size_t)c * s->H + ih) * s->W + offw;
          for (int ow = 0; ow < lo; ow++) r[ow] = 0.0f;
          if (s->sW == 1) memcpy(r + lo, xr + lo, sizeof(float) * (hi - lo));
          else for (int ow = lo; ow < hi; ow++) r[ow] = xr[(size_t)ow * s->sW];
          for (int ow = hi; ow < s->OW; ow++) r[ow] = 0.0f;
        }
      }
}

/* dx (Cg, H, W) += the columns of dcol (Cg*KH*KW, OH*OW) scattered back to the pixels they came from. */
static void col2im(const kiln_conv2d_shape *s, const float *dcol, float *dx) {
  const int Cg = s->C / s->G, OHW = s->OH * s->OW;
  for (int c = 0; c < Cg; c++)
    for (int kh = 0; kh < s->KH; kh++)
      for (int kw = 0; kw < s->KW; kw++) {
        const float *row = dcol + (size_t)((c * s->KH + kh) * s->KW + kw) * OHW;
        const int offw = kw * s->dW - s->pW;
        int lo, hi;
        valid_range(offw, s->sW, s->W, s->OW, &lo, &hi);
        for (int oh = 0; oh < s->OH; oh++) {
          const int ih = oh * s->sH - s->pH + kh * s->dH;
          if (ih < 0 || ih >= s->H) continue;
          const float *r = row + (size_t)oh * s->OW;
          float *xr = dx + ((size_t)c * s->H + ih) * s->W + offw;
          if (s->sW == 1) for (int ow = lo; ow < hi; ow++) xr[ow] += r[ow];
          else for (int ow = lo; ow < hi; ow++) xr[(size_t)ow * s->sW] += r[ow];
        }
      }
}

/* A 1x1 kernel with stride 1 and no padding reads the image itself as its column matrix. */
static int is_pointwise(const kiln_conv2d_shape *s) {
  return s->KH == 1 && s->KW == 1 && s->sH == 1 && s->sW == 1 && s->pH == 0 && s->pW == 0 && s->OH == s->H && s->OW == s->W;
}

typedef struct {
  const kiln_conv2d_shape *s;
  const float *x, *w, *bias, *dy;
  float *out, *dx, *dw, *db;
  int threaded_gemm; /* 1: images run in turn on the caller, each GEMM threaded */
  int fail;
} conv_job;

static void gemm_on(const conv_job *j, int tid, int transA, int transB, int M, int N, int K, const float *A,
                    const float *B, float beta, float *C) {
  if (j->threaded_gemm) kiln_gemm(transA, transB, 1, M, N, K, 1.0f, A, 0, B, 0, beta, C, 0);
  else kiln_gemm_serial(tid, transA, transB, M, N, K, 1.0f, A, B, beta, C);
}

/* Output channels per group from which the forward GEMM runs transposed: out^T (OHW, OCg) = col^T @ w^T puts the
 * long pixel axis on the GEMM's rows, where the micro-tiles fit it better than the channel axis (T5's 32 and 64
 * channels waste 9-24% of a 14-row tile; 196 and 784 pixels are whole multiples of 14), at the cost of one small
 * transpose per image. */
#define TRANSPOSED_MIN_OC 16

static void forward_images(conv_job *j, int tid, int n0, int n1) {
  const kiln_conv2d_shape *s = j->s;
  const int G = s->G, Cg = s->C / G, OCg = s->OC / G, KK = Cg * s->KH * s->KW, HW = s->H * s->W, OHW = s->OH * s->OW;
  const int transposed = OCg >= TRANSPOSED_MIN_OC;
  float *col = colbuf[tid], *tmp = tbuf[tid];
  for (int n = n0; n < n1; n++)
    for (int g = 0; g < G; g++) {
      const float *x = j->x + ((size_t)n * s->C + (size_t)g * Cg) * HW;   /* (Cg, H, W) */
      const float *w = j->w + (size_t)g * OCg * KK;                       /* (OCg, KK) */
      float *out = j->out + ((size_t)n * s->OC + (size_t)g * OCg) * OHW;  /* (OCg, OHW) */
      const float *B = x;
      if (!is_pointwise(s)) { im2col(s, x, col); B = col; }
      if (transposed) {
        /* tmp (OHW, OCg) = col^T @ w^T; col stored (KK, OHW), w stored (OCg, KK) */
        gemm_on(j, tid, 1, 1, OHW, OCg, KK, B, w, 0.0f, tmp);
        for (int p0 = 0; p0 < OHW; p0 += 64) {
          int p1 = p0 + 64 < OHW ? p0 + 64 : OHW;
          for (int oc = 0; oc < OCg; oc++) {
            float b = j->bias ? j->bias[g * OCg + oc] : 0.0f;
            float *o = out + (size_t)oc * OHW;
            for (int p = p0; p < p1; p++) o[p] = tmp[(size_t)p * OCg + oc] + b;
          }
        }
        continue;
      }
      float beta = 0.0f;
      if (j->bias) {
        for (int oc = 0; oc < OCg; oc++) {
          float b = j->bias[g * OCg + oc];
          for (int i = 0; i < OHW; i++) out[(size_t)oc * OHW + i] = b;
        }
        beta = 1.0f;
      }
      gemm_on(j, tid, 0, 0, OCg, OHW, KK, w, B, beta, out);
    }
}

static void forward_task(void *p, int tid, int T) {
  conv_job *j = p;
  int N = j->s->N;
  forward_images(j, tid, (int)((long)N * tid / T), (int)((long)N * (tid + 1) / T));
}

static int thread_count(const kiln_conv2d_shape *s, int *threaded_gemm) {
  int T = kiln_threads();
  if (T > MAX_T) T = MAX_T;
  double flops = 2.0 * s->N * s->OC * s->OH * s->OW * (s->C / s->G) * s->KH * s->KW;
  if (flops < 2e6) T = 1;
  *threaded_gemm = 0;
  if (T > s->N) { *threaded_gemm = 1; T = 1; }
  return T;
}

/* the passes direct_ok() is asked about */
enum { DIRECT_FORWARD, DIRECT_INPUT_GRAD, DIRECT_WEIGHT_GRAD };

/* ---------------- direct convolution (AVX-512 and AVX2, stride 1, dilation 1) ----------------
 * im2col + GEMM spends as long on unrolling columns, packing both operands per image and transposing the result as
 * on the products at T5's shapes (141 GFLOP/s on 2 cores). Here the weight is packed once per call into 32-channel
 * panels, each image is copied once into a zero-padded buffer, and a 14 x 32 register tile (14 output pixels of a
 * row, 32 output channels) reads its pixels straight from the padded rows: the tile's A operand for k = (c, kh, kw)
 * is 14 consecutive floats of padded row (c, oh + kh) starting at column ow + kw, broadcast one by one as in the GEMM
 * micro-kernel. The input gradient of a stride-1 convolution is the same computation on dy padded by K - 1 - pad
 * with the weight flipped and its channel axes swapped, so one kernel serves both. Each output is summed by one
 * thread in a fixed order, so results do not depend on the thread count. AVX2 runs the same scheme with 16-channel
 * panels and a 6 x 16 tile (T5's conv2 on AVX2: forward 11.7 -> 7.1 ms, input gradient 9.8 -> 7.3, weight gradient
 * 9.8 -> 8.0 against im2col + GEMM). */
#ifdef KILN_X86
#define DR 14 /* the most output pixels per tile (the broadcast rows): 14 on AVX-512, 6 on AVX2 */
#define DN 32 /* the most output channels per weight panel: two vectors, 32 on AVX-512, 16 on AVX2 */
/* the instruction set's panel width: output channels per packed weight panel */
static int direct_dn(void) { return kiln_isa() == KILN_ISA_AVX512 ? 32 : 16; }

typedef struct {
  const float *src;     /* (N, G * Cin, Hs, Ws) images (x, or dy for the input gradient) */
  const float *wp;      /* (G, panels, Cin * KH * KW, dn) packed weight, channels past Cout zero */
  const float *bias;    /* (G * Cout) or NULL */
  float *dst;           /* (N, G * Cout, OH, OW) */
  int N, G, Cin, Hs, Ws, Cout, KH, KW, OH, OW, pt, pl; /* pt, pl: zero rows/columns above and left of the image */
  int Hp, Wp, panels;   /* padded image (Cin, Hp, Wp) = (Cin, OH + KH - 1, OW + KW - 1) */
  int dn;               /* channels per panel: 32 (AVX-512) or 16 (AVX2) */
} direct_job;

static float *padbuf[MAX_T];
static size_t padbuf_n[MAX_T];
static float *wpack;
static size_t wpack_n;

/* pad (Cin, Hp, Wp) = image (Cin, Hs, Ws) moved down pt rows and right pl columns, zeros elsewhere (pt, pl may be
 * negative: the image is cropped) */
static void pad_image(const direct_job *j, const float *img, float *pad) {
  for (int c = 0; c < j->Cin; c++)
    for (int r = 0; r < j->Hp; r++) {
      float *d = pad + ((size_t)c * j->Hp + r) * j->Wp;
      const int ih = r - j->pt;
      if (ih < 0 || ih >= j->Hs) { memset(d, 0, sizeof(float) * j->Wp); continue; }
      const float *srow = img + ((size_t)c * j->Hs + ih) * j->Ws;
      int lo = j->pl > 0 ? j->pl : 0, hi = j->pl + j->Ws < j->Wp ? j->pl + j->Ws : j->Wp;
      if (hi < lo) hi = lo;
      memset(d, 0, sizeof(float) * lo);
      memcpy(d + lo, srow + (lo - j->pl), sizeof(float) * (hi - lo));
      memset(d + hi, 0, sizeof(float) * (j->Wp - hi));
    }
}

/* tile (DR, DN) = sum over k = (c, kh, kw) of x[c][kh][kw + i] * w[k][0 .. 32) for pixels i < R;
 * x: the tile's first pixel in padded row kh = 0 of channel 0 (rows rs floats apart, channels cs apart);
 * w: (Cin * KH * KW, 32) panel */
static inline __attribute__((always_inline, target("avx512f,avx2,fma"))) void
direct_tile(const int R, int Cin, int KH, int KW, long cs, long rs, const float *x, const float *w, float *tile) {
  __m512 c0[DR], c1[DR];
#pragma GCC unroll 14
  for (int i = 0; i < R; i++) { c0[i] = _mm512_setzero_ps(); c1[i] = _mm512_setzero_ps(); }
  for (int c = 0; c < Cin; c++)
    for (int kh = 0; kh < KH; kh++) {
      const float *xr = x + c * cs + kh * rs;
      for (int kw = 0; kw < KW; kw++, w += DN) {
        __m512 b0 = _mm512_load_ps(w), b1 = _mm512_load_ps(w + 16);
#pragma GCC unroll 14
        for (int i = 0; i < R; i++) {
          __m512 a = _mm512_set1_ps(xr[kw + i]);
          c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
          c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
        }
      }
    }
#pragma GCC unroll 14
  for (int i = 0; i < R; i++) { _mm512_store_ps(tile + i * DN, c0[i]); _mm512_store_ps(tile + i * DN + 16, c1[i]); }
}

/* direct_tile with R a constant in each case, so the accumulators stay in registers. Without predictive commoning:
 * GCC otherwise sees that x[kw + 1 + i] is the next kw's x[kw + i] and carries 13 floats from one kw to the next
 * through the stack, instead of broadcasting them from the row (the tile ran at 70% of the GEMM's speed). */
__attribute__((target("avx512f,avx2,fma"), optimize("no-predictive-commoning"))) static void
direct_tile_r(int R, int Cin, int KH, int KW, long cs, long rs, const float *x, const float *w, float *tile) {
  switch (R) {
#define TILE_CASE(r) case r: direct_tile(r, Cin, KH, KW, cs, rs, x, w, tile); break;
    TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6) TILE_CASE(7)
    TILE_CASE(8) TILE_CASE(9) TILE_CASE(10) TILE_CASE(11) TILE_CASE(12) TILE_CASE(13) TILE_CASE(14)
#undef TILE_CASE
  }
}

/* direct_tile on AVX2: up to 6 pixels x 16 channels (12 accumulators, 2 weight vectors and a broadcast fill 15 of
 * the 16 ymm registers); w: (Cin * KH * KW, 16) panel, tile rows 16 floats apart */
static inline __attribute__((always_inline, target("avx2,fma"))) void
direct_tile_avx2(const int R, int Cin, int KH, int KW, long cs, long rs, const float *x, const float *w, float *tile) {
  __m256 c0[6], c1[6];
#pragma GCC unroll 6
  for (int i = 0; i < R; i++) { c0[i] = _mm256_setzero_ps(); c1[i] = _mm256_setzero_ps(); }
  for (int c = 0; c < Cin; c++)
    for (int kh = 0; kh < KH; kh++) {
      const float *xr = x + c * cs + kh * rs;
      for (int kw = 0; kw < KW; kw++, w += 16) {
        __m256 b0 = _mm256_load_ps(w), b1 = _mm256_load_ps(w + 8);
#pragma GCC unroll 6
        for (int i = 0; i < R; i++) {
          __m256 a = _mm256_broadcast_ss(xr + kw + i);
          c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
          c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
        }
      }
    }
#pragma GCC unroll 6
  for (int i = 0; i < R; i++) { _mm256_store_ps(tile + i * 16, c0[i]); _mm256_store_ps(tile + i * 16 + 8, c1[i]); }
}

__attribute__((target("avx2,fma"), optimize("no-predictive-commoning"))) static void
direct_tile_r_avx2(int R, int Cin, int KH, int KW, long cs, long rs, const float *x, const float *w, float *tile) {
  switch (R) {
#define TILE_CASE(r) case r: direct_tile_avx2(r, Cin, KH, KW, cs, rs, x, w, tile); break;
    TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
#undef TILE_CASE
  }
}

/* Output rows [r0, r1) of the flattened (N, G, OH) row index, with the instruction set's tile: avx512 is a constant
 * at each call, so each copy indexes its tile with fixed sizes (a runtime panel width cost T5's conv1 a fifth). */
static inline __attribute__((always_inline)) void direct_rows_isa(const direct_job *j, int tid, long r0, long r1,
                                                                  const int avx512) {
  const int KK = j->Cin * j->KH * j->KW, dr = avx512 ? 14 : 6, dn = avx512 ? 32 : 16;
  const long cs = (long)j->Hp * j->Wp, plane = (long)j->OH * j->OW;
  float *pad = padbuf[tid];
  _Alignas(64) float tile[DR * DN]; /* (dr, dn): pixels, channels */
  long padded = -1;
  for (long r = r0; r < r1; r++) {
    const long img = r / j->OH; /* n * G + g */
    const int oh = (int)(r % j->OH), g = (int)(img % j->G);
    if (img != padded) {
      pad_image(j, j->src + (size_t)img * j->Cin * j->Hs * j->Ws, pad);
      padded = img;
    }
    for (int ow0 = 0; ow0 < j->OW; ow0 += dr) {
      const int R = j->OW - ow0 < dr ? j->OW - ow0 : dr;
      for (int p = 0; p < j->panels; p++) {
        const float *w = j->wp + ((size_t)g * j->panels + p) * KK * dn;
        const float *xt = pad + (size_t)oh * j->Wp + ow0;
        if (avx512) direct_tile_r(R, j->Cin, j->KH, j->KW, cs, j->Wp, xt, w, tile);
        else direct_tile_r_avx2(R, j->Cin, j->KH, j->KW, cs, j->Wp, xt, w, tile);
        const int oc1 = j->Cout - p * dn < dn ? j->Cout - p * dn : dn;
        for (int oc = 0; oc < oc1; oc++) {
          const int ch = g * j->Cout + p * dn + oc;
          const float b = j->bias ? j->bias[ch] : 0.0f;
          float *o = j->dst + (size_t)(img / j->G) * j->G * j->Cout * plane + (size_t)ch * plane + (size_t)oh * j->OW + ow0;
          for (int i = 0; i < R; i++) o[i] = tile[i * dn + oc] + b;
        }
      }
    }
  }
}

static void direct_rows(const direct_job *j, int tid, long r0, long r1) {
  if (j->dn == 32) direct_rows_isa(j, tid, r0, r1, 1);
  else direct_rows_isa(j, tid, r0, r1, 0);
}

static void direct_task(void *p, int tid, int T) {
  const direct_job *j = p;
  const long rows = (long)j->N * j->G * j->OH;
  direct_rows(j, tid, rows * tid / T, rows * (tid + 1) / T);
}

static int direct_run(direct_job *j) {
  int T = kiln_threads();
  if (T > MAX_T) T = MAX_T;
  const long rows = (long)j->N * j->G * j->OH;
  if (T > rows) T = (int)rows;
  j->Hp = j->OH + j->KH - 1;
  j->Wp = j->OW + j->KW - 1;
  for (int t = 0; t < T; t++)
    if (ensure(&padbuf[t], &padbuf_n[t], (size_t)j->Cin * j->Hp * j->Wp)) return -1;
  if (T <= 1) direct_rows(j, 0, 0, rows);
  else kiln_parallel(direct_task, j, T);
  return 0;
}

/* The direct kernels serve stride 1, dilation 1 on AVX-512 and AVX2, for a reduction long enough to amortise a
 * tile's transposed store; a short one (T5's first layer: one input channel, 25 products per output) still pays in
 * the forward pass and the weight gradient when the tile's channels are mostly used, but not in the input gradient,
 * whose tile runs over input channels. */
static int direct_ok(const kiln_conv2d_shape *s, int pass) {
  if ((kiln_isa() != KILN_ISA_AVX512 && kiln_isa() != KILN_ISA_AVX2) || s->sH != 1 || s->sW != 1 || s->dH != 1 || s->dW != 1) return 0;
  const int K = (s->C / s->G) * s->KH * s->KW, OCg = s->OC / s->G;
  if (K >= DIRECT_MIN_K) return 1;
  return pass != DIRECT_INPUT_GRAD && K >= DIRECT_SHORT_K && OCg >= 16;
}

/* wpack (G, panels, Cg * KH * KW, dn) from weight (G * OCg, Cg, KH, KW): panel p holds output channels
 * [dn p, dn p + dn) of each group for k = (c, kh, kw). */
static int pack_forward_weight(const kiln_conv2d_shape *s, const float *w, int panels, int dn) {
  const int Cg = s->C / s->G, OCg = s->OC / s->G, KK = Cg * s->KH * s->KW;
  if (ensure(&wpack, &wpack_n, (size_t)s->G * panels * KK * dn)) return -1;
  for (int g = 0; g < s->G; g++)
    for (int p = 0; p < panels; p++) {
      float *d = wpack + ((size_t)g * panels + p) * KK * dn;
      for (int k = 0; k < KK; k++)
        for (int n = 0; n < dn; n++) {
          const int oc = p * dn + n;
          d[(size_t)k * dn + n] = oc < OCg ? w[((size_t)g * OCg + oc) * KK + k] : 0.0f;
        }
    }
  return 0;
}

/* wpack (G, panels, OCg * KH * KW, dn) for the input gradient: panel p holds input channels [dn p, dn p + dn) of
 * each group for k = (oc, kh, kw), the weight flipped: w[g * OCg + oc][c][KH - 1 - kh][KW - 1 - kw]. */
static int pack_input_grad_weight(const kiln_conv2d_shape *s, const float *w, int panels, int dn) {
  const int Cg = s->C / s->G, OCg = s->OC / s->G, KHW = s->KH * s->KW, KK = OCg * KHW;
  if (ensure(&wpack, &wpack_n, (size_t)s->G * panels * KK * dn)) return -1;
  for (int g = 0; g < s->G; g++)
    for (int p = 0; p < panels; p++) {
      float *d = wpack + ((size_t)g * panels + p) * KK * dn;
      for (int oc = 0; oc < OCg; oc++)
        for (int t = 0; t < KHW; t++)
          for (int n = 0; n < dn; n++) {
            const int c = p * dn + n;
            d[((size_t)oc * KHW + t) * dn + n] =
              c < Cg ? w[(((size_t)g * OCg + oc) * Cg + c) * KHW + (KHW - 1 - t)] : 0.0f;
          }
    }
  return 0;
}

static int direct_forward(const float *x, const float *w, const float *bias, const kiln_conv2d_shape *s, float *out) {
  const int dn = direct_dn(), panels = (s->OC / s->G + dn - 1) / dn;
  if (pack_forward_weight(s, w, panels, dn)) return -1;
  direct_job j = { .src = x, .wp = wpack, .bias = bias, .dst = out, .N = s->N, .G = s->G, .Cin = s->C / s->G,
                   .Hs = s->H, .Ws = s->W, .Cout = s->OC / s->G, .KH = s->KH, .KW = s->KW, .OH = s->OH, .OW = s->OW,
                   .pt = s->pH, .pl = s->pW, .panels = panels, .dn = dn };
  return direct_run(&j);
}

static int direct_input_grad(const float *dy, const float *w, const kiln_conv2d_shape *s, float *dx) {
  const int dn = direct_dn(), panels = (s->C / s->G + dn - 1) / dn;
  if (pack_input_grad_weight(s, w, panels, dn)) return -1;
  direct_job j = { .src = dy, .wp = wpack, .bias = NULL, .dst = dx, .N = s->N, .G = s->G, .Cin = s->OC / s->G,
                   .Hs = s->OH, .Ws = s->OW, .Cout = s->C / s->G, .KH = s->KH, .KW = s->KW, .OH = s->H, .OW = s->W,
                   .pt = s->KH - 1 - s->pH, .pl = s->KW - 1 - s->pW, .panels = panels, .dn = dn };
  return direct_run(&j);
}
/* ---------------- direct weight gradient ----------------
 * dw[oc][c][kh][kw] = sum over images and output pixels (oh, ow) of x[c][oh + kh - pH][ow + kw - pW] * dy[oc][oh][ow].
 * Per image, dy is transposed to pixel-major rows of channels (OHW, OCp) and x padded as for the forward pass; then
 * for each (c, kh) a register tile of up to 6 kernel columns x 64 output channels (12 x 32 when a group has at
 * most 32 output channels) runs over the pixels: the tile's A operand is consecutive floats of padded row
 * (c, oh + kh) from column ow, its B operand a row of dy^T. Each
 * thread sums its images into its own (G, Cg, KH, KW, OCp) buffer; the buffers are added in thread order. */
#define WR 12 /* the most kernel columns per tile (the broadcast rows): 6 with 4 vectors, 12 with 2 */
#define WN 64 /* the most output channels per tile: four vectors */

typedef struct {
  const kiln_conv2d_shape *s;
  const float *x, *dy;
  int Cg, OCg, OCp, Hp, Wp; /* OCp: OCg rounded up to 32 (up to 32 channels) or 64; padded image (Cg, Hp, Wp) */
} wgrad_job;

static float *dytbuf[MAX_T];
static size_t dytbuf_n[MAX_T];

/* acc (R, V * 16) += sum over pixels of x[oh][ow + i] * dyt[(oh, ow)][0 .. V * 16); x: padded row kh of channel c
 * at column 0 (rows rs floats apart), dyt: (OH * OW, ldd); acc rows WN floats apart */
static inline __attribute__((always_inline, target("avx512f,avx2,fma"))) void
wgrad_tile(const int R, const int V, int OH, int OW, long rs, const float *x, const float *dyt, long ldd, float *acc) {
  __m512 c[WR][4], b[4];
#pragma GCC unroll 12
  for (int i = 0; i < R; i++)
    for (int v = 0; v < V; v++) c[i][v] = _mm512_load_ps(acc + i * WN + v * 16);
  for (int oh = 0; oh < OH; oh++) {
    const float *xr = x + oh * rs;
    for (int ow = 0; ow < OW; ow++, dyt += ldd) {
      for (int v = 0; v < V; v++) b[v] = _mm512_load_ps(dyt + v * 16);
#pragma GCC unroll 12
      for (int i = 0; i < R; i++) {
        __m512 a = _mm512_set1_ps(xr[ow + i]);
        for (int v = 0; v < V; v++) c[i][v] = _mm512_fmadd_ps(a, b[v], c[i][v]);
      }
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < R; i++)
    for (int v = 0; v < V; v++) _mm512_store_ps(acc + i * WN + v * 16, c[i][v]);
}

/* wgrad_tile with R and V constants in each case: V = 4 takes up to 6 columns, V = 2 up to 12 */
__attribute__((target("avx512f,avx2,fma"), optimize("no-predictive-commoning"))) static void
wgrad_tile_r(int R, int V, int OH, int OW, long rs, const float *x, const float *dyt, long ldd, float *acc) {
  switch (V * 16 + R) {
#define WTILE_CASE(v, r) case v * 16 + r: wgrad_tile(r, v, OH, OW, rs, x, dyt, ldd, acc); break;
    WTILE_CASE(4, 1) WTILE_CASE(4, 2) WTILE_CASE(4, 3) WTILE_CASE(4, 4) WTILE_CASE(4, 5) WTILE_CASE(4, 6)
    WTILE_CASE(2, 1) WTILE_CASE(2, 2) WTILE_CASE(2, 3) WTILE_CASE(2, 4) WTILE_CASE(2, 5) WTILE_CASE(2, 6)
    WTILE_CASE(2, 7) WTILE_CASE(2, 8) WTILE_CASE(2, 9) WTILE_CASE(2, 10) WTILE_CASE(2, 11) WTILE_CASE(2, 12)
#undef WTILE_CASE
  }
}

/* wgrad_tile on AVX2: up to 6 kernel columns x 16 output channels (12 accumulators, 2 dy vectors and a broadcast) */
static inline __attribute__((always_inline, target("avx2,fma"))) void
wgrad_tile_avx2(const int R, int OH, int OW, long rs, const float *x, const float *dyt, long ldd, float *acc) {
  __m256 c0[6], c1[6];
#pragma GCC unroll 6
  for (int i = 0; i < R; i++) { c0[i] = _mm256_load_ps(acc + i * WN); c1[i] = _mm256_load_ps(acc + i * WN + 8); }
  for (int oh = 0; oh < OH; oh++) {
    const float *xr = x + oh * rs;
    for (int ow = 0; ow < OW; ow++, dyt += ldd) {
      __m256 b0 = _mm256_load_ps(dyt), b1 = _mm256_load_ps(dyt + 8);
#pragma GCC unroll 6
      for (int i = 0; i < R; i++) {
        __m256 a = _mm256_broadcast_ss(xr + ow + i);
        c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
        c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
      }
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < R; i++) { _mm256_store_ps(acc + i * WN, c0[i]); _mm256_store_ps(acc + i * WN + 8, c1[i]); }
}

__attribute__((target("avx2,fma"), optimize("no-predictive-commoning"))) static void
wgrad_tile_r_avx2(int R, int OH, int OW, long rs, const float *x, const float *dyt, long ldd, float *acc) {
  switch (R) {
#define WTILE_CASE(r) case r: wgrad_tile_avx2(r, OH, OW, rs, x, dyt, ldd, acc); break;
    WTILE_CASE(1) WTILE_CASE(2) WTILE_CASE(3) WTILE_CASE(4) WTILE_CASE(5) WTILE_CASE(6)
#undef WTILE_CASE
  }
}

/* part (G, Cg, KH, KW, OCp) += the weight gradient of images [n0, n1) */
static void wgrad_images(const wgrad_job *j, int tid, int n0, int n1, float *part) {
  const kiln_conv2d_shape *s = j->s;
  const int OHW = s->OH * s->OW;
  float *pad = padbuf[tid], *dyt = dytbuf[tid];
  _Alignas(64) float acc[WR * WN];
  /* the tile, cols x width: AVX-512 6 x 64, or 12 x 32 (V = 2 vectors) for up to 32 channels a group; AVX2 6 x 16 */
  const int avx512 = kiln_isa() == KILN_ISA_AVX512, V = j->OCp == 32 ? 2 : 4;
  const int width = avx512 ? V * 16 : 16, cols = avx512 && V == 2 ? 12 : 6;
  direct_job pj = { .Cin = j->Cg, .Hs = s->H, .Ws = s->W, .pt = s->pH, .pl = s->pW, .Hp = j->Hp, .Wp = j->Wp };
  for (int n = n0; n < n1; n++)
    for (int g = 0; g < s->G; g++) {
      pad_image(&pj, j->x + ((size_t)n * s->C + (size_t)g * j->Cg) * s->H * s->W, pad);
      const float *dy = j->dy + ((size_t)n * s->OC + (size_t)g * j->OCg) * OHW; /* (OCg, OHW) */
      for (int p = 0; p < OHW; p++) {
        for (int oc = 0; oc < j->OCg; oc++) dyt[(size_t)p * j->OCp + oc] = dy[(size_t)oc * OHW + p];
        for (int oc = j->OCg; oc < j->OCp; oc++) dyt[(size_t)p * j->OCp + oc] = 0.0f;
      }
      for (int c = 0; c < j->Cg; c++)
        for (int kh = 0; kh < s->KH; kh++)
          for (int kw0 = 0; kw0 < s->KW; kw0 += cols) {
            const int R = s->KW - kw0 < cols ? s->KW - kw0 : cols;
            for (int ob = 0; ob < j->OCp; ob += width) {
              float *dst = part + ((((size_t)g * j->Cg + c) * s->KH + kh) * s->KW + kw0) * j->OCp + ob;
              for (int i = 0; i < R; i++) memcpy(acc + i * WN, dst + (size_t)i * j->OCp, sizeof(float) * width);
              const float *xt = pad + ((size_t)c * j->Hp + kh) * j->Wp + kw0;
              if (avx512) wgrad_tile_r(R, V, s->OH, s->OW, j->Wp, xt, dyt + ob, j->OCp, acc);
              else wgrad_tile_r_avx2(R, s->OH, s->OW, j->Wp, xt, dyt + ob, j->OCp, acc);
              for (int i = 0; i < R; i++) memcpy(dst + (size_t)i * j->OCp, acc + i * WN, sizeof(float) * width);
            }
          }
    }
}

static void wgrad_task(void *p, int tid, int T) {
  const wgrad_job *j = p;
  const kiln_conv2d_shape *s = j->s;
  const size_t pn = (size_t)s->G * j->Cg * s->KH * s->KW * j->OCp;
  const int n0 = (int)((long)s->N * tid / T), n1 = (int)((long)s->N * (tid + 1) / T);
  float *part = dwbuf[tid], *db = part + pn; /* db: (OC) */
  memset(part, 0, sizeof(float) * (pn + s->OC));
  wgrad_images(j, tid, n0, n1, part);
  const int OHW = s->OH * s->OW;
  for (int n = n0; n < n1; n++)
    for (int oc = 0; oc < s->OC; oc++) {
      const float *d = j->dy + ((size_t)n * s->OC + oc) * OHW;
      float sum = 0.0f;
      for (int i = 0; i < OHW; i++) sum += d[i];
      db[oc] += sum;
    }
}

/* dw (OC, Cg, KH, KW) and db (OC), either may be NULL: the threads' partial sums added in thread order */
static int direct_weight_grad(const float *dy, const float *x, const kiln_conv2d_shape *s, float *dw, float *db) {
  wgrad_job j = { .s = s, .x = x, .dy = dy, .Cg = s->C / s->G, .OCg = s->OC / s->G,
                  .Hp = s->OH + s->KH - 1, .Wp = s->OW + s->KW - 1 };
  /* dy^T rows: a whole number of tiles (AVX2: 16 channels; AVX-512: 32 for small groups, else 64) */
  j.OCp = kiln_isa() != KILN_ISA_AVX512 ? (j.OCg + 15) / 16 * 16 : j.OCg <= 32 ? 32 : (j.OCg + WN - 1) / WN * WN;
  int T = kiln_threads();
  if (T > MAX_T) T = MAX_T;
  if (T > s->N) T = s->N;
  const int KHW = s->KH * s->KW;
  const size_t pn = (size_t)s->G * j.Cg * KHW * j.OCp;
  for (int t = 0; t < T; t++)
    if (ensure(&dwbuf[t], &dwbuf_n[t], pn + s->OC) || ensure(&padbuf[t], &padbuf_n[t], (size_t)j.Cg * j.Hp * j.Wp) ||
        ensure(&dytbuf[t], &dytbuf_n[t], (size_t)s->OH * s->OW * j.OCp))
      return -1;
  if (T <= 1) wgrad_task(&j, 0, 1);
  else kiln_parallel(wgrad_task, &j, T);
  if (dw)
    for (int g = 0; g < s->G; g++)
      for (int oc = 0; oc < j.OCg; oc++)
        for (int c = 0; c < j.Cg; c++)
          for (int t = 0; t < KHW; t++) {
            const size_t at = (((size_t)g * j.Cg + c) * KHW + t) * j.OCp + oc;
            float sum = dwbuf[0][at];
            for (int u = 1; u < T; u++) sum += dwbuf[u][at];
            dw[(((size_t)g * j.OCg + oc) * j.Cg + c) * KHW + t] = sum;
          }
  if (db)
    for (int oc = 0; oc < s->OC; oc++) {
      float sum = dwbuf[0][pn + oc];
      for (int u = 1; u < T; u++) sum += dwbuf[u][pn + oc];
      db[oc] = sum;
    }
  return 0;
}
#else
static int direct_ok(const kiln_conv2d_shape *s, int pass) { (void)s; (void)pass; return 0; }
static int direct_forward(const float *x, const float *w, const float *bias, const kiln_conv2d_shape *s, float *out) {
  (void)x; (void)w; (void)bias; (void)s; (void)out; return -1;
}
static int direct_input_grad(const float *dy, const float *w, const kiln_conv2d_shape *s, float *dx) {
  (void)dy; (void)w; (void)s; (void)dx; return -1;
}
static int direct_weight_grad(const float *dy, const float *x, const kiln_conv2d_shape *s, float *dw, float *db) {
  (void)dy; (void)x; (void)s; (void)dw; (void)db; return -1;
}
#endif

int kiln_conv2d(const float *x, const float *w, const float *bias, const kiln_conv2d_shape *s, float *out) {
  int threaded;
  int T = thread_count(s, &threaded);
  size_t coln = (size_t)(s->C / s->G) * s->KH * s->KW * s->OH * s->OW;
  size_t tn = (size_t)(s->OC / s->G) * s->OH * s->OW;
  for (int t = 0; t < T; t++) if (ensure(&colbuf[t], &colbuf_n[t], coln) || ensure(&tbuf[t], &tbuf_n[t], tn)) return -1;
  if (direct_ok(s, DIRECT_FORWARD)) {
    kiln_lock();
    int rc = direct_forward(x, w, bias, s, out);
    kiln_unlock();
    return rc;
  }
  conv_job j = { .s = s, .x = x, .w = w, .bias = bias, .out = out, .threaded_gemm = threaded };
  kiln_lock();
  if (T <= 1) forward_images(&j, 0, 0, s->N);
  else kiln_parallel(forward_task, &j, T);
  kiln_unlock();
  return 0;
}

/* Images [n0, n1): dx written per image; the weight and bias gradients of these images summed into dw, db. */
static void backward_images(conv_job *j, int tid, int n0, int n1, float *dw, float *db) {
  const kiln_conv2d_shape *s = j->s;
  const int G = s->G, Cg = s->C / G, OCg = s->OC / G, KK = Cg * s->KH * s->KW, HW = s->H * s->W, OHW = s->OH * s->OW;
  const int pointwise = is_pointwise(s);
  float *col = colbuf[tid];
  for (int n = n0; n < n1; n++)
    for (int g = 0; g < G; g++) {
      const float *x = j->x + ((size_t)n * s->C + (size_t)g * Cg) * HW;    /* (Cg, H, W) */
      const float *w = j->w + (size_t)g * OCg * KK;                        /* (OCg, KK) */
      const float *dy = j->dy + ((size_t)n * s->OC + (size_t)g * OCg) * OHW; /* (OCg, OHW) */
      if (db)
        for (int oc = 0; oc < OCg; oc++) {
          float sum = 0.0f;
          for (int i = 0; i < OHW; i++) sum += dy[(size_t)oc * OHW + i];
          db[g * OCg + oc] += sum;
        }
      if (dw) {
        const float *B = x;
        if (!pointwise) { im2col(s, x, col); B = col; }
        if (OCg >= TRANSPOSED_MIN_OC) {
          /* dw_g^T (KK, OCg) += col (KK, OHW) @ dy^T, dy stored (OCg, OHW): the long KK axis on the tile rows */
          gemm_on(j, tid, 0, 1, KK, OCg, OHW, B, dy, n == n0 ? 0.0f : 1.0f, dw + (size_t)g * OCg * KK);
        } else {
          /* dw_g (OCg, KK) += dy (OCg, OHW) @ col^T, col stored (KK, OHW) */
          gemm_on(j, tid, 0, 1, OCg, KK, OHW, dy, B, n == n0 ? 0.0f : 1.0f, dw + (size_t)g * OCg * KK);
        }
      }
      if (j->dx) {
        float *dx = j->dx + ((size_t)n * s->C + (size_t)g * Cg) * HW; /* (Cg, H, W) */
        if (pointwise) {
          gemm_on(j, tid, 1, 0, KK, OHW, OCg, w, dy, 0.0f, dx);
        } else {
          /* dcol (KK, OHW) = w^T @ dy, then scattered back */
          gemm_on(j, tid, 1, 0, KK, OHW, OCg, w, dy, 0.0f, col);
          memset(dx, 0, sizeof(float) * (size_t)Cg * HW);
          col2im(s, col, dx);
        }
      }
    }
}

static void backward_task(void *p, int tid, int T) {
  conv_job *j = p;
  int N = j->s->N;
  int n0 = (int)((long)N * tid / T), n1 = (int)((long)N * (tid + 1) / T);
  size_t wn = (size_t)j->s->OC * (j->s->C / j->s->G) * j->s->KH * j->s->KW;
  const int transposed = j->s->OC / j->s->G >= TRANSPOSED_MIN_OC;
  /* thread 0 sums into dw itself, unless the partial sums are transposed ones (then every thread has its own) */
  float *dw = j->dw ? (tid == 0 && !transposed ? j->dw : dwbuf[tid]) : NULL;
  float *db = j->db ? (tid == 0 ? j->db : dwbuf[tid] + wn) : NULL;
  if (db) memset(db, 0, sizeof(float) * j->s->OC);
  if (dw && n0 == n1) memset(dw, 0, sizeof(float) * wn);
  backward_images(j, tid, n0, n1, dw, db);
}

int kiln_conv2d_backward(const float *dy, const float *x, const float *w, const kiln_conv2d_shape *s, float *dx,
                         float *dw, float *db) {
  int threaded;
  int T = thread_count(s, &threaded);
  size_t coln = (size_t)(s->C / s->G) * s->KH * s->KW * s->OH * s->OW;
  size_t wn = (size_t)s->OC * (s->C / s->G) * s->KH * s->KW;
  for (int t = 0; t < T; t++) {
    if (ensure(&colbuf[t], &colbuf_n[t], coln)) return -1;
    if (ensure(&dwbuf[t], &dwbuf_n[t], wn + s->OC)) return -1;
  }
  conv_job j = { .s = s, .x = x, .w = w, .dy = dy, .dx = dx, .dw = dw, .db = db, .threaded_gemm = threaded };
  kiln_lock();
  if (dx && direct_ok(s, DIRECT_INPUT_GRAD)) {
    if (direct_input_grad(dy, w, s, dx)) { kiln_unlock(); return -1; }
    j.dx = NULL;
  }
  if ((dw || db) && direct_ok(s, DIRECT_WEIGHT_GRAD)) {
    int rc = direct_weight_grad(dy, x, s, dw, db);
    if (rc || !j.dx) { kiln_unlock(); return rc; }
    j.dw = j.db = NULL; /* what is left: the input gradient, by im2col */
    dw = db = NULL;
  }
  if (!j.dx && !j.dw && !j.db) { kiln_unlock(); return 0; }
  if (T <= 1) backward_task(&j, 0, 1);
  else kiln_parallel(backward_task, &j, T);
  /* partial sums in thread order; transposed ones, (KK, OCg) per group, turned back to (OCg, KK) on the way */
  const int G = s->G, OCg = s->OC / G, KK = (s->C / G) * s->KH * s->KW;
  if (dw && OCg >= TRANSPOSED_MIN_OC) {
    for (int g = 0; g < G; g++)
      for (int oc = 0; oc < OCg; oc++)
        for (int k = 0; k < KK; k++) {
          size_t at = (size_t)g * OCg * KK + (size_t)k * OCg + oc;
          float sum = dwbuf[0][at];
          for (int t = 1; t < T; t++) sum += dwbuf[t][at];
          dw[(size_t)g * OCg * KK + (size_t)oc * KK + k] = sum;
        }
  } else if (dw) {
    for (int t = 1; t < T; t++) for (size_t i = 0; i < wn; i++) dw[i] += dwbuf[t][i];
  }
  for (int t = 1; t < T; t++) if (db) for (int i = 0; i < s->OC; i++) db[i] += dwbuf[t][wn + i];
  kiln_unlock();
  return 0;
}

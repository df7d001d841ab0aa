/* 2-D convolution (NCHW) by im2col + GEMM, one image at a time: the image's patches are unrolled into a
 * (C/G * KH * KW, OH * OW) column matrix in a per-thread buffer that stays in L2, and the packed GEMM multiplies it
 * with the weight. Threads take fixed ranges of images (each runs the GEMM alone on its core); with fewer images than
 * threads, the images run one after another on a threaded GEMM. The weight gradient is summed per thread and the
 * partial sums are added in thread order, so a run repeats bitwise for a given thread count. */
#include "kiln.h"
#include <stdlib.h>
#include <string.h>

#define MAX_T 256

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

int kiln_conv2d(const float *x, const float *w, const float *bias, const kiln_conv2d_shape *s, float *out) {
  int threaded;
  int T = thread_count(s, &threaded);
  size_t coln = (size_t)(s->C / s->G) * s->KH * s->KW * s->OH * s->OW;
  size_t tn = (size_t)(s->OC / s->G) * s->OH * s->OW;
  for (int t = 0; t < T; t++) if (ensure(&colbuf[t], &colbuf_n[t], coln) || ensure(&tbuf[t], &tbuf_n[t], tn)) return -1;
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

/* The sampler's pass over one row of logits (temperature, top-k, top-p, the draw), mirroring the reference in
 * src/models/sampling.ts step for step (the same float and double arithmetic in the same order), so both pick
 * the same token from the same logits and uniform draw. Top-k and top-p become one probability threshold found by
 * a radix selection on the bits of the (non-negative) probabilities: a histogram of the top 12 bits, then 12
 * more within the chosen bucket, then the last 8; a bucket of at most 128 values is sorted instead. */
#include "kiln.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SMALL_BUCKET 128

typedef struct {
  uint32_t *bits;     /* (V) scratch: the bit patterns of the values in the current bucket */
  double weight[4096]; /* histogram: counts (top-k) or probability mass (top-p) */
  double above;       /* weight of the buckets above the chosen one */
} selection;

static inline uint32_t bits_of(float v) { uint32_t b; memcpy(&b, &v, 4); return b; }
static inline float float_of(uint32_t b) { float v; memcpy(&v, &b, 4); return v; }

/* The highest bucket in weight[0, mask] where the weight from the top reaches target; -1 if none. */
static int choose_bucket(selection *s, int mask, double target) {
  double above = s->above;
  for (int b = mask; b >= 0; b--) {
    double w = s->weight[b];
    if (w == 0) continue;
    if (above + w >= target) { s->above = above; return b; }
    above += w;
  }
  s->above = above;
  return -1;
}

static int cmp_float(const void *a, const void *b) {
  float x = float_of(*(const uint32_t *)a), y = float_of(*(const uint32_t *)b);
  return x < y ? -1 : x > y;
}

/* The first m values sorted, largest first, until the weight from the top reaches target. */
static float by_sorting(selection *s, int m, double target, int by_count) {
  qsort(s->bits, (size_t)m, sizeof(uint32_t), cmp_float);
  double above = s->above;
  for (int i = m - 1; i >= 0; i--) {
    float v = float_of(s->bits[i]);
    above += by_count ? 1.0 : (double)v;
    if (above >= target) return v;
  }
  return float_of(s->bits[0]);
}

static int level(selection *s, int m, int shift, int mask, double target, int by_count) {
  memset(s->weight, 0, sizeof(double) * (size_t)(mask + 1));
  for (int i = 0; i < m; i++) s->weight[(s->bits[i] >> shift) & (uint32_t)mask] += by_count ? 1.0 : (double)float_of(s->bits[i]);
  return choose_bucket(s, mask, target);
}

static int keep(selection *s, int m, int shift, int mask, int b) {
  int k = 0;
  for (int i = 0; i < m; i++) if ((int)((s->bits[i] >> shift) & (uint32_t)mask) == b) s->bits[k++] = s->bits[i];
  return k;
}

/* The largest t such that the values >= t among those >= floor weigh at least target; floor if none. */
static float threshold(selection *s, const float *p, int n, float floor_, double target, int by_count) {
  s->above = 0;
  memset(s->weight, 0, sizeof(double) * 2048);
  for (int i = 0; i < n; i++) if (p[i] >= floor_) s->weight[bits_of(p[i]) >> 20] += by_count ? 1.0 : (double)p[i];
  int b1 = choose_bucket(s, 2047, target);
  if (b1 < 0) return floor_;
  int m = 0;
  for (int i = 0; i < n; i++) if ((int)(bits_of(p[i]) >> 20) == b1 && p[i] >= floor_) s->bits[m++] = bits_of(p[i]);
  if (m <= SMALL_BUCKET) return by_sorting(s, m, target, by_count);
  int b2 = level(s, m, 8, 4095, target, by_count);
  if (b2 < 0) return floor_;
  m = keep(s, m, 8, 4095, b2);
  int b3 = level(s, m, 0, 255, target, by_count);
  if (b3 < 0) return floor_;
  return float_of(((uint32_t)b1 << 20) | ((uint32_t)b2 << 8) | (uint32_t)b3);
}

/* Four running sums over i mod 4, added pairwise at the end: four independent chains instead of one (the same
 * order as sumFrom in sampling.ts) */
static double sum_from(const float *p, int n, float t) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    if (p[i] >= t) s0 += p[i];
    if (p[i + 1] >= t) s1 += p[i + 1];
    if (p[i + 2] >= t) s2 += p[i + 2];
    if (p[i + 3] >= t) s3 += p[i + 3];
  }
  for (; i < n; i++) if (p[i] >= t) s0 += p[i];
  return (s0 + s1) + (s2 + s3);
}

/* Where the running sum of the values >= t passes r; the last index with mass when rounding leaves a sliver. */
static int draw(const float *p, int n, float t, double r) {
  int last = -1;
  for (int i = 0; i < n; i++) {
    float v = p[i];
    if (v < t || v == 0) continue;
    last = i;
    r -= v;
    if (r < 0) return i;
  }
  return last;
}

int kiln_sample(const float *logits, int V, double inv_temperature, int top_k, double top_p, double u, float *p) {
  int finite = 0;
  for (int i = 0; i < V; i++) {
    float v = (float)((double)logits[i] * inv_temperature);
    p[i] = v;
    if (v > -INFINITY) finite = 1;
  }
  if (!finite) return -1;
  kiln_softmax(p, 1, (size_t)V, 0, p);
  selection *s = malloc(sizeof(selection));
  if (!s) return -2;
  s->bits = malloc(sizeof(uint32_t) * (size_t)V);
  if (!s->bits) { free(s); return -2; }
  float t = 0.0f;
  if (top_k > 0 && top_k < V) t = threshold(s, p, V, 0.0f, (double)top_k, 1);
  if (top_p < 1) {
    float tp = threshold(s, p, V, t, top_p * sum_from(p, V, t), 0);
    if (tp > t) t = tp;
  }
  int id = draw(p, V, t, u * sum_from(p, V, t));
  free(s->bits);
  free(s);
  return id;
}

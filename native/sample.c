/* The sampler's pass over one row of logits (temperature, top-k, top-p, the draw), mirroring the reference in
 * src/models/sampling.ts step for step (the same float and double arithmetic in the same order), so both pick
 * the same token from the same logits and uniform draws.
 *
 * Top-p by rejection: draw from every kept token, then accept the draw when the mass of the tokens more likely
 * than it is below top_p of the total, which is exactly when it belongs to the nucleus (ties at the boundary
 * stay). An accepted draw is distributed as a draw from the nucleus; the nucleus holds at least top_p of the
 * mass, so at least that share of draws is accepted after three cheap vector passes. A rejected one draws again
 * from the nucleus itself with the second uniform, its threshold found as top-k's is: a radix selection on the
 * bits of the (non-negative) probabilities, a histogram of the top 12 bits, then 12 more within the chosen bucket,
 * then the last 8; a bucket of at most 128 values is sorted instead. No sort of the vocabulary either way. */
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

/* The draw walks blocks of DRAW_BLOCK values by their sums, then one block value by value. */
#define DRAW_BLOCK 64

/* Block sums are float: eight running sums over i mod 8 (the compiler keeps them in vector registers; a double
 * sum of a float select does not vectorize), added pairwise, the order sampling.ts uses. Over a block of 64 that
 * costs at most a few float roundings; blocks add up in double. */
static inline float lanes_total(const float *a) { return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])); }

/* The sum of the values >= t (strict: > t) in the block p[b0, end) (end - b0 <= DRAW_BLOCK, b0 a multiple of 8);
 * strict is a constant at every call, so each use compiles to its own branch-free loop. */
static inline __attribute__((always_inline)) float block_sum(const float *p, int b0, int end, float t, int strict) {
  float a[8] = { 0 };
  int i = b0;
  for (; i + 8 <= end; i += 8)
    for (int j = 0; j < 8; j++) { const float x = p[i + j]; a[j] += (strict ? x > t : x >= t) ? x : 0.0f; }
  for (; i < end; i++) a[i & 7] += (strict ? p[i] > t : p[i] >= t) ? p[i] : 0.0f;
  return lanes_total(a);
}

static inline int block_end(int b0, int n) { return n - b0 < DRAW_BLOCK ? n : b0 + DRAW_BLOCK; }

/* The sum of the values >= t of each block into sums (ceil(n / DRAW_BLOCK)); returns their total, in order. */
static double block_sums(const float *p, int n, float t, double *sums) {
  double total = 0;
  for (int b0 = 0, k = 0; b0 < n; b0 += DRAW_BLOCK, k++) total += sums[k] = block_sum(p, b0, block_end(b0, n), t, 0);
  return total;
}

/* The sum of the values above v: block by block, the blocks added in order. */
static double sum_above(const float *p, int n, float v) {
  double total = 0;
  for (int b0 = 0; b0 < n; b0 += DRAW_BLOCK) total += block_sum(p, b0, block_end(b0, n), v, 1);
  return total;
}

/* Where the running sum of the values >= t (in index order) passes r: whole blocks by their sums, then the
 * block where it falls value by value; when rounding leaves a sliver, the last index with mass; -1 if none. */
static int draw(const float *p, int n, float t, const double *sums, double r) {
  for (int b0 = 0, k = 0; b0 < n; b0 += DRAW_BLOCK, k++) {
    if (!(r < sums[k])) { r -= sums[k]; continue; }
    const int end = block_end(b0, n);
    for (int i = b0; i < end; i++) {
      const float v = p[i];
      if (!(v >= t) || v == 0) continue;
      r -= v;
      if (r < 0) return i;
    }
  }
  for (int i = n - 1; i >= 0; i--) if (p[i] >= t && p[i] != 0) return i;
  return -1;
}

static selection *new_selection(int V) {
  selection *s = malloc(sizeof(selection));
  if (s && !(s->bits = malloc(sizeof(uint32_t) * (size_t)V))) { free(s); s = NULL; }
  return s;
}

static void free_selection(selection *s) {
  if (s) free(s->bits);
  free(s);
}

/* After the softmax into p: the top-k threshold, the draw with u and, when top-p rejects it, the draw from the
 * nucleus with u2. sums is scratch of ceil(V / DRAW_BLOCK). */
static int draw_kept(float *p, int V, int top_k, double top_p, double u, double u2, double *sums) {
  selection *s = NULL;
  float t = 0.0f;
  if (top_k > 0 && top_k < V) {
    if (!(s = new_selection(V))) return -2;
    t = threshold(s, p, V, 0.0f, (double)top_k, 1);
  }
  const double z = block_sums(p, V, t, sums);
  int id = draw(p, V, t, sums, u * z);
  if (top_p < 1 && id >= 0 && !(sum_above(p, V, p[id]) < top_p * z)) {
    if (!s && !(s = new_selection(V))) return -2;
    const float tp = threshold(s, p, V, t, top_p * z, 0);
    if (tp > t) t = tp;
    id = draw(p, V, t, sums, u2 * block_sums(p, V, t, sums));
  }
  free_selection(s);
  return id;
}

int kiln_sample(const float *logits, int V, double inv_temperature, int top_k, double top_p, double u, double u2, float *p) {
  int finite = 0;
  for (int i = 0; i < V; i++) {
    float v = (float)((double)logits[i] * inv_temperature);
    p[i] = v;
    if (v > -INFINITY) finite = 1;
  }
  if (!finite) return -1;
  kiln_softmax(p, 1, (size_t)V, 0, p);
  const int blocks = (V + DRAW_BLOCK - 1) / DRAW_BLOCK;
  double on_stack[1024]; /* vocabularies up to 65536 */
  double *sums = blocks <= 1024 ? on_stack : malloc(sizeof(double) * (size_t)blocks);
  if (!sums) return -2;
  const int id = draw_kept(p, V, top_k, top_p, u, u2, sums);
  if (sums != on_stack) free(sums);
  return id;
}

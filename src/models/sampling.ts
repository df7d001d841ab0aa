// The one sampler: picks the next token from a row of logits with repetition penalty, temperature, top-k, top-p,
// then a seeded draw (or arg-max when greedy), in the order of Hugging Face's logits processors and warpers.
// Top-p is a rejection test on one draw from every kept token (accepted when the tokens more likely than it weigh
// less than top-p of the mass: exactly the nucleus), with a second draw from the nucleus itself when it fails; the
// top-k and nucleus thresholds come from a radix selection in linear time. Never a sort of the vocabulary.

import { argmaxRow, sampleFused, softmax_ } from '../tensor/ops/nn-ops.js';
import type { Generator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';

/** How the next token is chosen. Every field is optional; the defaults give greedy decoding. */
export interface SamplingOptions {
  /** Softmax temperature; 0 (the default) is greedy (arg-max). */
  temperature?: number;
  /** Keep only the k most likely tokens before drawing; 0 or absent keeps all. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (nucleus sampling); 1 keeps all. */
  topP?: number;
  /**
   * CTRL-style penalty (as Hugging Face's RepetitionPenaltyLogitsProcessor) on every token already in the
   * prompt or the output: a positive logit is divided by it, a negative one multiplied. 1 (default) is off.
   */
  repetitionPenalty?: number;
}

/** Checks sampling options; throws one sentence naming the option at fault. */
export function checkSamplingOptions(o: SamplingOptions): void {
  const bad = (name: string, want: string, got: unknown): never => {
    throw new Error(`generate: ${name} must be ${want}, got ${JSON.stringify(got)}`);
  };
  if (o.temperature !== undefined && !(Number.isFinite(o.temperature) && o.temperature >= 0)) bad('temperature', 'a number >= 0', o.temperature);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) bad('topK', 'an integer >= 0', o.topK);
  if (o.topP !== undefined && !(Number.isFinite(o.topP) && o.topP > 0 && o.topP <= 1)) bad('topP', 'a number in (0, 1]', o.topP);
  if (o.repetitionPenalty !== undefined && !(Number.isFinite(o.repetitionPenalty) && o.repetitionPenalty > 0)) {
    bad('repetitionPenalty', 'a number > 0', o.repetitionPenalty);
  }
}

/**
 * A reusable sampler: scratch buffers are kept between calls so decoding allocates little per token.
 * `new Sampler(vocabSize, { temperature: 0.8, topK: 40 }, new kiln.Generator(1)).pick(logits)`
 */
export class Sampler {
  private readonly scaled: Float32Array;
  private readonly scaledTensor: Tensor; // a view of `scaled`, made once
  private readonly select: Selection;
  private readonly blockSums: Float64Array;
  private seenMark: Uint8Array;

  constructor(readonly vocabSize: number, readonly options: SamplingOptions, private readonly generator: Generator) {
    checkSamplingOptions(options);
    this.scaled = new Float32Array(vocabSize);
    this.scaledTensor = new Tensor(this.scaled, [vocabSize]);
    this.select = new Selection(vocabSize);
    this.blockSums = new Float64Array(Math.ceil(vocabSize / DRAW_BLOCK));
    this.seenMark = new Uint8Array(vocabSize);
  }

  /** Marks tokens as already seen (for the repetition penalty). */
  observe(ids: Iterable<number>): void {
    for (const id of ids) if (id >= 0 && id < this.vocabSize) this.seenMark[id] = 1;
  }

  /** Forgets the tokens seen so far. */
  reset(): void { this.seenMark.fill(0); }

  /**
   * The next token for one row of logits (length >= vocabSize; only the first vocabSize are read). The row is
   * modified in place by the repetition penalty.
   */
  pick(logits: ArrayLike<number> & { [i: number]: number }): number {
    const V = this.vocabSize;
    const { temperature = 0, topK = 0, topP = 1, repetitionPenalty = 1 } = this.options;
    if (repetitionPenalty !== 1) {
      const seen = this.seenMark;
      for (let i = 0; i < V; i++) {
        if (seen[i]) logits[i] = logits[i] > 0 ? logits[i] / repetitionPenalty : logits[i] * repetitionPenalty;
      }
    }
    if (temperature === 0) return (logits instanceof Float32Array ? argmaxRow(logits, V) : null) ?? argmax(logits, V);
    const p = this.scaled;
    // Two uniforms per token, taken first, so the kernel and the passes below consume the stream alike: u for the
    // draw from every kept token, u2 for the draw from the nucleus when top-p rejects the first.
    const u = this.generator.uniform();
    const u2 = this.generator.uniform();
    if (logits instanceof Float32Array && logits.length >= V) {
      const fused = sampleFused(logits, V, 1 / temperature, topK, topP, u, u2, p);
      if (fused !== null) return fused >= 0 ? fused : argmax(logits, V);
    }
    if (!scaleInto(p, logits, 1 / temperature)) return argmax(logits, V);
    softmax_(this.scaledTensor); // vectorised on the native backend, in place
    const id = this.drawKept(p, topK, topP, u, u2);
    return id >= 0 ? id : argmax(logits, V);
  }

  /**
   * After the softmax into p: tokens at or above the top-k threshold stay (ties at the boundary all stay, so the
   * draw never depends on the order of equal values); the draw with u; and when top-p rejects it, the draw with u2
   * from the nucleus, found as a threshold too (as native/sample.c).
   */
  private drawKept(p: Float32Array, topK: number, topP: number, u: number, u2: number): number {
    const sums = this.blockSums;
    let threshold = 0;
    if (topK > 0 && topK < p.length) threshold = this.select.threshold(p, 0, topK, true);
    const z = blockSums(p, threshold, sums);
    let id = draw(p, threshold, sums, u * z);
    if (topP < 1 && id >= 0 && !(sumAbove(p, p[id]) < topP * z)) {
      threshold = Math.max(threshold, this.select.threshold(p, threshold, topP * z, false));
      id = draw(p, threshold, sums, u2 * blockSums(p, threshold, sums));
    }
    return id;
  }
}

// The passes over the vocabulary, each a small loop of its own.

/** x = logits * inv over x's length; false when no value is above -Infinity. */
function scaleInto(x: Float32Array, logits: ArrayLike<number>, inv: number): boolean {
  let finite = false;
  for (let i = 0; i < x.length; i++) {
    const v = logits[i] * inv;
    x[i] = v;
    if (v > -Infinity) finite = true;
  }
  return finite;
}

/** The draw walks blocks of DRAW_BLOCK values by their sums, then one block value by value. */
const DRAW_BLOCK = 64;
const f32 = Math.fround;

/**
 * The float32 sum of the values >= t (or > t when above) in the block p[b0, end): eight float running sums over
 * i mod 8, added pairwise; the arithmetic of block_from and block_above in native/sample.c.
 */
function blockSum(p: Float32Array, b0: number, end: number, t: number, above: boolean): number {
  const a = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let i = b0; i < end; i++) {
    const x = p[i];
    if (above ? x > t : x >= t) a[i & 7] = f32(a[i & 7] + x);
  }
  return f32(f32(f32(a[0] + a[1]) + f32(a[2] + a[3])) + f32(f32(a[4] + a[5]) + f32(a[6] + a[7])));
}

/** The sum of the values >= t of each block into sums; returns their total, added in order in double. */
function blockSums(p: Float32Array, t: number, sums: Float64Array): number {
  let total = 0;
  for (let b0 = 0, k = 0; b0 < p.length; b0 += DRAW_BLOCK, k++) {
    sums[k] = blockSum(p, b0, Math.min(p.length, b0 + DRAW_BLOCK), t, false);
    total += sums[k];
  }
  return total;
}

/** The sum of the values above v: block by block, the blocks added in order in double. */
function sumAbove(p: Float32Array, v: number): number {
  let total = 0;
  for (let b0 = 0; b0 < p.length; b0 += DRAW_BLOCK) total += blockSum(p, b0, Math.min(p.length, b0 + DRAW_BLOCK), v, true);
  return total;
}

/**
 * The index where the running sum of the values >= t (in index order) passes r: whole blocks by their sums, then
 * the block where it falls value by value; when rounding leaves a sliver, the last index with mass; -1 if none.
 */
function draw(p: Float32Array, t: number, sums: Float64Array, r: number): number {
  const n = p.length;
  for (let b0 = 0, k = 0; b0 < n; b0 += DRAW_BLOCK, k++) {
    if (!(r < sums[k])) {
      r -= sums[k];
      continue;
    }
    const end = Math.min(n, b0 + DRAW_BLOCK);
    for (let i = b0; i < end; i++) {
      const v = p[i];
      if (!(v >= t) || v === 0) continue;
      r -= v;
      if (r < 0) return i;
    }
  }
  for (let i = n - 1; i >= 0; i--) if (p[i] >= t && p[i] !== 0) return i;
  return -1;
}

// Radix selection on the bits of non-negative float32 values, whose bit patterns sort as the values do: a
// histogram of the top 12 bits finds the bucket where the running count (or mass) from the top reaches the
// target, then the next 12 bits within that bucket, then the last 8; a small bucket is sorted instead. No sort of
// the vocabulary.

/** Buckets this small are sorted instead of split further. */
const SMALL_BUCKET = 128;

/** Finds top-k and top-p thresholds over probability rows of one length, with its scratch kept between calls. */
export class Selection {
  private readonly vals: Float32Array;
  private readonly bits: Uint32Array;
  private readonly weight = new Float64Array(4096);
  private above = 0;

  constructor(n: number) {
    this.vals = new Float32Array(n);
    this.bits = new Uint32Array(this.vals.buffer);
  }

  /**
   * The largest value t such that the values >= t among those >= floor weigh at least `target`: their count
   * (byCount, top-k) or their sum (top-p). Returns floor when even all of them fall short (rounding).
   */
  threshold(p: Float32Array, floor: number, target: number, byCount: boolean): number {
    this.above = 0;
    // Level 1 straight over p: the histogram of the top 12 bits of the values >= floor.
    const pbits = new Uint32Array(p.buffer, p.byteOffset, p.length);
    const weight = this.weight;
    weight.fill(0, 0, 2048);
    for (let i = 0; i < p.length; i++) {
      const v = p[i];
      if (v >= floor) weight[pbits[i] >>> 20] += byCount ? 1 : v;
    }
    const b1 = this.chooseBucket(2047, target);
    if (b1 < 0) return floor;
    let m = 0;
    const bits = this.bits;
    for (let i = 0; i < p.length; i++) if (pbits[i] >>> 20 === b1 && p[i] >= floor) bits[m++] = pbits[i];
    if (m <= SMALL_BUCKET) return this.bySorting(m, target, byCount);
    const b2 = this.level(m, 8, 4095, target, byCount);
    if (b2 < 0) return floor;
    m = this.keep(m, 8, 4095, b2);
    const b3 = this.level(m, 0, 255, target, byCount);
    if (b3 < 0) return floor;
    bits[0] = ((b1 << 20) | (b2 << 8) | b3) >>> 0;
    return this.vals[0];
  }

  /** The first m values sorted, largest first, until the weight from the top reaches target. */
  private bySorting(m: number, target: number, byCount: boolean): number {
    const v = this.vals.subarray(0, m).sort(); // ascending; m is small
    let above = this.above;
    for (let i = m - 1; i >= 0; i--) {
      above += byCount ? 1 : v[i];
      if (above >= target) return v[i];
    }
    return v[0];
  }

  /** The highest bucket in weight[0, mask] at which the weight from the top reaches target; -1 if none. */
  private chooseBucket(mask: number, target: number): number {
    const weight = this.weight;
    let above = this.above;
    for (let b = mask; b >= 0; b--) {
      const w = weight[b];
      if (w === 0) continue;
      if (above + w >= target) {
        this.above = above;
        return b;
      }
      above += w;
    }
    this.above = above;
    return -1;
  }

  /** Histogram of the first m values by (bits >>> shift) & mask, then the bucket where the weight reaches target. */
  private level(m: number, shift: number, mask: number, target: number, byCount: boolean): number {
    const { bits, vals, weight } = this;
    weight.fill(0, 0, mask + 1);
    if (byCount) for (let i = 0; i < m; i++) weight[(bits[i] >>> shift) & mask] += 1;
    else for (let i = 0; i < m; i++) weight[(bits[i] >>> shift) & mask] += vals[i];
    return this.chooseBucket(mask, target);
  }

  /** Keeps the first m values whose bucket is b (in place); returns how many. */
  private keep(m: number, shift: number, mask: number, b: number): number {
    const bits = this.bits;
    let k = 0;
    for (let i = 0; i < m; i++) if (((bits[i] >>> shift) & mask) === b) bits[k++] = bits[i];
    return k;
  }
}

/** Index of the largest of the first n values (first on ties). */
export function argmax(x: ArrayLike<number>, n = x.length): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < n; i++) {
    if (x[i] > bv) {
      bv = x[i];
      best = i;
    }
  }
  return best;
}

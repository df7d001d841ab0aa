// The one sampler: picks the next token from a row of logits with repetition penalty, temperature, top-k, top-p,
// then a seeded draw (or arg-max when greedy), in the order of Hugging Face's logits processors and warpers.
// Top-k and top-p thresholds come from a selection in expected linear time, never a sort of the vocabulary.

import type { Generator } from '../tensor/random.js';

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
 * A reusable sampler: scratch buffers are kept between calls so decoding allocates nothing per token.
 * `new Sampler(vocabSize, { temperature: 0.8, topK: 40 }, new kiln.Generator(1)).pick(logits)`
 */
export class Sampler {
  private probs: Float64Array;
  private scratch: Float64Array;
  private seenMark: Uint8Array;

  constructor(readonly vocabSize: number, readonly options: SamplingOptions, private readonly generator: Generator) {
    checkSamplingOptions(options);
    this.probs = new Float64Array(vocabSize);
    this.scratch = new Float64Array(vocabSize);
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
    if (temperature === 0) return argmax(logits, V);
    // Softmax of logits / temperature, in float64.
    let mx = -Infinity;
    for (let i = 0; i < V; i++) if (logits[i] > mx) mx = logits[i];
    if (!Number.isFinite(mx)) return argmax(logits, V);
    const p = this.probs;
    let all = 0;
    for (let i = 0; i < V; i++) all += p[i] = Math.exp((logits[i] - mx) / temperature);
    // Top-k and top-p as one probability threshold: tokens at or above it stay. Ties at the boundary all stay, so
    // the draw never depends on the order of equal values.
    let threshold = 0;
    let kept = all;
    if (topK > 0 && topK < V) {
      threshold = kthLargest(p, V, topK, this.scratch);
      kept = 0;
      for (let i = 0; i < V; i++) if (p[i] >= threshold) kept += p[i];
    }
    if (topP < 1) threshold = Math.max(threshold, massThreshold(p, V, threshold, topP * kept, this.scratch));
    let total = 0;
    for (let i = 0; i < V; i++) if (p[i] >= threshold) total += p[i];
    let r = this.generator.uniform() * total;
    let last = -1;
    for (let i = 0; i < V; i++) {
      if (p[i] < threshold || p[i] === 0) continue;
      last = i;
      r -= p[i];
      if (r < 0) return i;
    }
    // Rounding left a sliver: the last token with any mass.
    return last >= 0 ? last : argmax(logits, V);
  }
}

/** The k-th largest of p[0, n) (quickselect on a scratch copy, expected O(n)). */
export function kthLargest(p: Float64Array, n: number, k: number, scratch: Float64Array): number {
  scratch.set(p.subarray(0, n));
  let lo = 0;
  let hi = n; // the answer is in scratch[lo, hi), with k - 1 larger values left of lo
  let want = k;
  for (;;) {
    const pivot = scratch[lo + ((hi - lo) >> 1)];
    const [gt, eq] = partition3(scratch, lo, hi, pivot);
    if (want <= gt - lo) hi = gt;
    else if (want <= eq - lo) return pivot;
    else {
      want -= eq - lo;
      lo = eq;
    }
  }
}

/**
 * The nucleus threshold: the largest value t such that the values >= t among those >= floor reach `mass`
 * (the smallest set of most likely tokens whose probability reaches top-p). Selection by mass, expected O(n).
 */
export function massThreshold(p: Float64Array, n: number, floor: number, mass: number, scratch: Float64Array): number {
  let m = 0;
  for (let i = 0; i < n; i++) if (p[i] >= floor) scratch[m++] = p[i];
  let lo = 0;
  let hi = m;
  let above = 0; // mass of the values already known to be larger than everything in [lo, hi)
  while (hi > lo) {
    const pivot = scratch[lo + ((hi - lo) >> 1)];
    const [gt, eq] = partition3(scratch, lo, hi, pivot);
    let sumGt = 0;
    for (let i = lo; i < gt; i++) sumGt += scratch[i];
    if (above + sumGt >= mass) {
      hi = gt;
      continue;
    }
    const sumEq = pivot * (eq - gt);
    if (above + sumGt + sumEq >= mass) return pivot;
    above += sumGt + sumEq;
    lo = eq;
  }
  return floor; // rounding left the whole mass short of the target: keep every candidate
}

/** Three-way partition of a[lo, hi) around pivot, largest first: [lo, gt) > pivot, [gt, eq) == pivot, rest <. */
function partition3(a: Float64Array, lo: number, hi: number, pivot: number): [number, number] {
  let gt = lo;
  let i = lo;
  let lt = hi;
  while (i < lt) {
    const v = a[i];
    if (v > pivot) {
      a[i] = a[gt];
      a[gt++] = v;
      i++;
    } else if (v < pivot) {
      a[i] = a[--lt];
      a[lt] = v;
    } else i++;
  }
  return [gt, lt];
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

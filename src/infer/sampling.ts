// Picking the next token from a row of logits: repetition penalty, temperature, top-k, top-p, then a seeded
// draw (or arg-max when greedy). The same order as Hugging Face's logits processors and warpers.

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
 * `new Sampler(vocabSize, { temperature: 0.8, topK: 40 }, new kiln.Generator(1)).pick(logits, seen)`
 */
export class Sampler {
  private probs: Float64Array;
  private sorted: Float64Array;
  private seenMark: Uint8Array;

  constructor(readonly vocabSize: number, readonly options: SamplingOptions, private readonly generator: Generator) {
    checkSamplingOptions(options);
    this.probs = new Float64Array(vocabSize);
    this.sorted = new Float64Array(vocabSize);
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
    for (let i = 0; i < V; i++) p[i] = Math.exp((logits[i] - mx) / temperature);
    // Top-k and top-p as one probability threshold, found on a sorted copy (a typed-array sort, no comparator):
    // tokens at or above it stay. Ties at the boundary all stay, so the draw never depends on sort order.
    let threshold = 0;
    if ((topK > 0 && topK < V) || topP < 1) {
      const sorted = this.sorted;
      sorted.set(p);
      sorted.sort(); // ascending
      const n = topK > 0 && topK < V ? topK : V;
      threshold = sorted[V - n];
      if (topP < 1) {
        let total = 0;
        for (let i = V - n; i < V; i++) total += sorted[i];
        // The smallest set of most likely tokens whose mass reaches topP (at least one token).
        let acc = 0;
        for (let i = V - 1; i >= V - n; i--) {
          acc += sorted[i];
          if (acc >= topP * total) {
            threshold = Math.max(threshold, sorted[i]);
            break;
          }
        }
      }
    }
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

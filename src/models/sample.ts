// Picking the next token from one row of logits: greedy (temperature 0) or sampling with temperature and top-k,
// drawing from a seeded Generator. The full sampler (top-p, penalties) lives in src/infer/.

import type { FloatArray } from '../backend/index.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';

export interface SampleOptions {
  /** Divides the logits; 0 picks the most likely token (greedy). Default 1. */
  temperature?: number;
  /** Keeps only the k most likely tokens (0 or undefined keeps all). */
  topK?: number;
  /** Random stream for sampling (default: the global generator). */
  generator?: Generator;
}

/** The chosen token id for one row of logits (V). */
export function sampleToken(logits: FloatArray, options: SampleOptions = {}): number {
  const { temperature = 1, topK = 0, generator = defaultGenerator } = options;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new Error(`sample: temperature must be a finite number >= 0, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0) throw new Error(`sample: topK must be a non-negative integer, got ${topK}`);
  const V = logits.length;
  if (temperature === 0 || topK === 1) return argmax(logits);
  let threshold = -Infinity;
  if (topK > 0 && topK < V) threshold = Float64Array.from(logits).sort()[V - topK];
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
  const p = new Float64Array(V);
  let total = 0;
  for (let i = 0; i < V; i++) {
    if (logits[i] >= threshold) {
      p[i] = Math.exp((logits[i] - max) / temperature);
      total += p[i];
    }
  }
  let r = generator.uniform() * total;
  let last = 0;
  for (let i = 0; i < V; i++) {
    if (p[i] === 0) continue;
    last = i;
    r -= p[i];
    if (r < 0) return i;
  }
  return last;
}

/** Index of the largest value (first on ties). */
export function argmax(x: FloatArray): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

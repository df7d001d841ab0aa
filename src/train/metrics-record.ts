// What a metrics line holds, and the accuracy count the loop and evaluation add to it. No files here: the
// metrics log (metrics.ts) writes the lines in Node; the browser build hands them to callbacks.

import type { Tensor } from '../tensor/index.js';

/** One metrics line: step, epoch, loss, val_loss, lr, grad_norm, tokens_per_s, ... */
export type MetricsRecord = Record<string, unknown>;

/** Correct predictions and total: the argmax over the last dimension of `output` against integer `target`. */
export function countCorrect(output: Tensor, target: Tensor): { correct: number; total: number } {
  const C = output.shape[output.ndim - 1];
  const N = output.size / C;
  if (target.size !== N) {
    throw new Error(`accuracy: the output has ${N} rows of ${C} classes but the target has ${target.size} labels`);
  }
  const o = output.storage;
  const t = target.storage;
  let correct = 0;
  for (let i = 0; i < N; i++) {
    let best = 0;
    let bv = o[i * C];
    for (let c = 1; c < C; c++) {
      const v = o[i * C + c];
      if (v > bv) { bv = v; best = c; }
    }
    if (best === t[i]) correct++;
  }
  return { correct, total: N };
}

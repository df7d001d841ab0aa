// The Trainer's view of a batch: the loss on it (the built-in cross-entropy or MSE on [input, target] or
// { input, target } batches, or the caller's loss function), and how many samples and tokens it holds.

import { crossEntropy, Tensor } from '../tensor/index.js';
import { mseLoss } from '../nn/functional.js';
import type { TrainableModel, TrainerOptions } from './options.js';

/** Runs the configured loss on a batch: { loss, output?, target? }. */
export function computeLoss<B>(options: TrainerOptions<B>, model: TrainableModel, batch: B): { loss: Tensor; output?: Tensor; target?: Tensor } {
  const loss = options.loss ?? 'crossEntropy';
  if (typeof loss === 'function') {
    const r = loss(model, batch);
    if (r instanceof Tensor) return { loss: r };
    if (!r || !(r.loss instanceof Tensor)) throw new Error('Trainer: the loss function must return a Tensor or { loss: Tensor, ... }');
    return r;
  }
  const [input, target] = splitBatch(batch);
  const m = model as unknown as { forward?: (x: Tensor) => unknown };
  if (typeof m.forward !== 'function') throw new Error('Trainer: the model has no forward(x); pass loss as a function (model, batch) => Tensor');
  const output = m.forward(input);
  if (!(output instanceof Tensor)) {
    throw new Error("Trainer: the built-in losses need forward(input) to return a Tensor; pass loss as a function (model, batch) => Tensor");
  }
  const l = loss === 'mse' ? mseLoss(output, target) : crossEntropy(output, target);
  return { loss: l, output, target };
}

/** Samples in a batch: samplesPerBatch, else the first dimension of its first tensor, else 1. */
export function samplesIn<B>(options: TrainerOptions<B>, batch: B): number {
  if (options.samplesPerBatch) return options.samplesPerBatch(batch);
  const first = Array.isArray(batch) ? batch[0] : batch instanceof Tensor ? batch
    : batch && typeof batch === 'object' ? Object.values(batch)[0] : undefined;
  return first instanceof Tensor && first.ndim > 0 ? first.shape[0] : 1;
}

/** Tokens in a batch (tokensPerBatch; 0 without it). */
export function tokensIn<B>(options: TrainerOptions<B>, batch: B): number {
  const t = options.tokensPerBatch;
  return t === undefined ? 0 : typeof t === 'number' ? t : t(batch);
}

function splitBatch(batch: unknown): [Tensor, Tensor] {
  if (Array.isArray(batch) && batch.length >= 2 && batch[0] instanceof Tensor && batch[1] instanceof Tensor) return [batch[0], batch[1]];
  if (batch && typeof batch === 'object') {
    const b = batch as Record<string, unknown>;
    const input = b.input ?? b.x;
    const target = b.target ?? b.y;
    if (input instanceof Tensor && target instanceof Tensor) return [input, target];
  }
  throw new Error('Trainer: a batch for the built-in losses must be [input, target] or { input, target } tensors; ' +
    'pass loss as a function (model, batch) => Tensor for other batches');
}

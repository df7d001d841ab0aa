// Batch normalisation over dim 1 of (N, C), (N, C, L) or (N, C, H, W), as torch.nn.functional.batch_norm: in training
// the batch's statistics normalise and the running statistics move toward them (momentum, unbiased variance); in
// evaluation the running statistics normalise. Fused kernels for the statistics, the normalisation and its gradient.

import { backend, type FloatArray } from '../../backend/index.js';
import { defineOp, record } from '../autograd.js';
import { fmt } from '../shape.js';
import { allocFloat, allocFloatUninit } from '../storage.js';
import { Tensor } from '../tensor.js';
import { requireFloat } from './elementwise.js';

/** Options of batchNorm: running statistics to use or update, training mode, momentum and eps. */
export interface BatchNormOptions {
  /** Per-channel scale (C), or null for 1. */
  weight?: Tensor | null;
  /** Per-channel shift (C), or null for 0. */
  bias?: Tensor | null;
  /** Normalise by the batch's statistics and update the running ones (default false, as PyTorch's functional form). */
  training?: boolean;
  /** Weight of the new batch in the running statistics (default 0.1). */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
}

function checkChannelVector(t: Tensor | null | undefined, name: string, C: number, dtype: string): void {
  if (!t) return;
  if (t.ndim !== 1 || t.shape[0] !== C) throw new Error(`batchNorm: ${name} must have shape [${C}], got ${fmt(t.shape)}`);
  if (t.dtype !== dtype) throw new Error(`batchNorm: ${name} is ${t.dtype} but the input is ${dtype}`);
}

/**
 * Batch normalisation over channel dim 1. runningMean and runningVar (C) are read in evaluation and updated in place
 * in training (either may be null in training).
 * `batchNorm(x, rm, rv, { weight, bias, training: true })` with x (8, 16, 5, 5) and rm, rv (16).
 */
export const batchNorm = defineOp('batchNorm', (x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null,
  options: BatchNormOptions = {}): Tensor => {
  requireFloat(x, 'batchNorm');
  if (x.ndim < 2) throw new Error(`batchNorm: input must have at least 2 dims (N, C, ...), got shape ${fmt(x.shape)}`);
  const { weight = null, bias = null, training = false, momentum = 0.1, eps = 1e-5 } = options;
  const N = x.shape[0];
  const C = x.shape[1];
  const HW = x.size / Math.max(1, N * C);
  checkChannelVector(weight, 'weight', C, x.dtype);
  checkChannelVector(bias, 'bias', C, x.dtype);
  checkChannelVector(runningMean, 'runningMean', C, x.dtype);
  checkChannelVector(runningVar, 'runningVar', C, x.dtype);
  if (!(eps > 0)) throw new Error(`batchNorm: eps must be positive, got ${eps}`);
  if (!(momentum >= 0 && momentum <= 1)) throw new Error(`batchNorm: momentum must be in [0, 1], got ${momentum}`);
  const count = N * HW;
  const mean = allocFloat(x.dtype, C);
  const invstd = allocFloat(x.dtype, C);
  if (training) {
    if (count <= 1) throw new Error(`batchNorm: training needs more than 1 value per channel, got input shape ${fmt(x.shape)}`);
    const variance = allocFloat(x.dtype, C);
    backend().batchNormStats(x.storage as FloatArray, N, C, HW, mean, variance);
    for (let c = 0; c < C; c++) invstd[c] = 1 / Math.sqrt(variance[c] + eps);
    // PyTorch keeps the unbiased variance in the running estimate.
    if (runningMean) {
      const rm = runningMean.storage as FloatArray;
      for (let c = 0; c < C; c++) rm[c] = (1 - momentum) * rm[c] + momentum * mean[c];
    }
    if (runningVar) {
      const rv = runningVar.storage as FloatArray;
      for (let c = 0; c < C; c++) rv[c] = (1 - momentum) * rv[c] + momentum * variance[c] * (count / (count - 1));
    }
  } else {
    if (!runningMean || !runningVar) throw new Error('batchNorm: evaluation (training false) needs runningMean and runningVar');
    mean.set(runningMean.storage as FloatArray);
    const rv = runningVar.storage as FloatArray;
    for (let c = 0; c < C; c++) invstd[c] = 1 / Math.sqrt(rv[c] + eps);
  }
  const w = weight ? weight.storage as FloatArray : null;
  const out = allocFloatUninit(x.dtype, x.size);
  backend().batchNorm(x.storage as FloatArray, mean, invstd, w, bias ? bias.storage as FloatArray : null, N, C, HW, out);
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return record('batchNorm', new Tensor(out, x.shape), inputs, (g) => {
    const dx = x.requiresGrad ? allocFloatUninit(x.dtype, x.size) : null;
    const dw = weight?.requiresGrad ? allocFloatUninit(x.dtype, C) : null;
    const db = bias?.requiresGrad ? allocFloatUninit(x.dtype, C) : null;
    backend().batchNormBackward(g.storage as FloatArray, x.storage as FloatArray, mean, invstd, w, N, C, HW, training, dx, dw, db);
    const grads: (Tensor | null)[] = [dx && new Tensor(dx, x.shape)];
    if (weight) grads.push(dw && new Tensor(dw, weight.shape));
    if (bias) grads.push(db && new Tensor(db, bias.shape));
    return grads;
  });
});

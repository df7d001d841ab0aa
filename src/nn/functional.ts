// nn.functional: losses and activations as plain functions. Fused ones come from the tensor layer; the rest
// are composed from differentiable ops, so their gradients need no code of their own.

import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { fmt } from '../tensor/shape.js';
import { rmsNorm as fusedRmsNorm } from '../tensor/ops/rms-norm.js';

export { crossEntropy, softmax, logSoftmax, layerNorm, embedding, dropout, linear, attention, gelu, relu, silu,
  sigmoid, tanh, type CrossEntropyOptions } from '../tensor/index.js';

/** How a loss reduces its per-element values: 'mean' (default), 'sum', or 'none' (one per element). */
export type Reduction = 'mean' | 'sum' | 'none';

function reduce(loss: Tensor, reduction: Reduction, op: string): Tensor {
  if (reduction === 'mean') return loss.mean();
  if (reduction === 'sum') return loss.sum();
  if (reduction === 'none') return loss;
  throw new Error(`${op}: reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
}

function sameShape(a: Tensor, b: Tensor, op: string): void {
  if (a.ndim !== b.ndim || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${op}: input shape ${fmt(a.shape)} and target shape ${fmt(b.shape)} must be equal`);
  }
}

/** Mean squared error. */
export function mseLoss(input: Tensor, target: Tensor, options: { reduction?: Reduction } = {}): Tensor {
  sameShape(input, target, 'mseLoss');
  const d = input.sub(target);
  return reduce(d.mul(d), options.reduction ?? 'mean', 'mseLoss');
}

/** Mean absolute error. */
export function l1Loss(input: Tensor, target: Tensor, options: { reduction?: Reduction } = {}): Tensor {
  sameShape(input, target, 'l1Loss');
  return reduce(input.sub(target).abs(), options.reduction ?? 'mean', 'l1Loss');
}

/** Negative log-likelihood from log-probabilities (N, C) and int32 class indices (N). */
export function nllLoss(logProbs: Tensor, target: Tensor,
  options: { ignoreIndex?: number; reduction?: Reduction } = {}): Tensor {
  const { ignoreIndex = -100, reduction = 'mean' } = options;
  if (logProbs.ndim !== 2) throw new Error(`nllLoss: expected log-probabilities of shape (N, C), got ${fmt(logProbs.shape)}`);
  if (target.dtype !== 'int32' || target.ndim !== 1 || target.shape[0] !== logProbs.shape[0]) {
    throw new Error(`nllLoss: target must be int32 of shape [${logProbs.shape[0]}], got ${target.dtype} ${fmt(target.shape)}`);
  }
  const keep = target.ne(ignoreIndex);
  const safe = T.where(keep, target, 0);
  const picked = logProbs.gather(1, safe.unsqueeze(1)).squeeze(1);
  const mask = keep.to(logProbs.dtype);
  const losses = picked.neg().mul(mask);
  if (reduction === 'none') return losses;
  if (reduction === 'sum') return losses.sum();
  if (reduction === 'mean') return losses.sum().div(mask.sum());
  throw new Error(`nllLoss: reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
}

/** Binary cross-entropy on logits, computed stably as max(x, 0) - x * y + log(1 + exp(-|x|)). */
export function binaryCrossEntropyWithLogits(input: Tensor, target: Tensor,
  options: { reduction?: Reduction; posWeight?: Tensor } = {}): Tensor {
  sameShape(input, target, 'binaryCrossEntropyWithLogits');
  const softplusNeg = input.abs().neg().exp().add(1).log(); // log(1 + exp(-|x|))
  let loss: Tensor;
  if (options.posWeight) {
    // (1 - y) x + (1 + (w - 1) y) (log(1 + exp(-|x|)) + max(-x, 0))
    const w = T.add(T.mul(options.posWeight.sub(1), target), 1);
    loss = T.mul(T.sub(1, target), input).add(w.mul(softplusNeg.add(input.neg().relu())));
  } else {
    loss = input.relu().sub(input.mul(target)).add(softplusNeg);
  }
  return reduce(loss, options.reduction ?? 'mean', 'binaryCrossEntropyWithLogits');
}

/** Root-mean-square normalisation over the last dim: x / sqrt(mean(x^2) + eps) * weight (the fused op). */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps: number): Tensor {
  return fusedRmsNorm(x, weight, eps);
}

// The optimizers' fused update as one tensor op: AdamW (or Adam with L2 decay) in place on a parameter and its two
// moment buffers, checked here and run on the backend's adamw kernel. The only way src/optim reaches a kernel.

import { backend, type FloatArray } from '../../backend/index.js';
import { fmt } from '../shape.js';
import { markWeightsChanged } from '../storage.js';
import type { Tensor } from '../tensor.js';
import { requireFloat } from './elementwise.js';

/** Hyper-parameters of one fused Adam/AdamW update (adamwUpdate_). */
export interface AdamwUpdateOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** The 1-based step count of this parameter (for the bias corrections 1 - beta^step). */
  step: number;
  /**
   * true (AdamW, the default): decay the weight directly by lr * weightDecay. false (Adam): add
   * weightDecay * param to the gradient instead (L2 regularisation); the gradient tensor is left unchanged.
   */
  decoupled?: boolean;
}

/**
 * One AdamW step in place, PyTorch semantics: param, expAvg and expAvgSq are updated; grad is read only.
 * Not differentiable (it runs outside the tape, as an optimizer step does).
 *
 * @example
 * ```ts
 * const p = kiln.tensor([1, 2]), g = kiln.tensor([0.1, -0.1]);
 * const m = kiln.zerosLike(p), v = kiln.zerosLike(p);
 * kiln.adamwUpdate_(p, g, m, v, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 });
 * ```
 */
export function adamwUpdate_(param: Tensor, grad: Tensor, expAvg: Tensor, expAvgSq: Tensor,
  options: AdamwUpdateOptions): void {
  const { lr, beta1, beta2, eps, weightDecay, step, decoupled = true } = options;
  requireFloat(param, 'adamwUpdate_');
  for (const [t, name] of [[grad, 'grad'], [expAvg, 'expAvg'], [expAvgSq, 'expAvgSq']] as const) {
    if (t.size !== param.size) {
      throw new Error(`adamwUpdate_: ${name} has shape ${fmt(t.shape)}, expected the parameter's shape ${fmt(param.shape)}`);
    }
    if (t.dtype !== param.dtype) throw new Error(`adamwUpdate_: ${name} is ${t.dtype} but the parameter is ${param.dtype}`);
  }
  for (const [v, name] of [[lr, 'lr'], [eps, 'eps'], [weightDecay, 'weightDecay']] as const) {
    if (!Number.isFinite(v)) throw new Error(`adamwUpdate_: ${name} must be a finite number, got ${String(v)}`);
  }
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) {
    throw new Error(`adamwUpdate_: beta1 and beta2 must be in [0, 1), got ${String(beta1)} and ${String(beta2)}`);
  }
  if (!(eps >= 0)) throw new Error(`adamwUpdate_: eps must be non-negative, got ${String(eps)}`);
  if (!(Number.isSafeInteger(step) && step >= 1)) throw new Error(`adamwUpdate_: step must be an integer >= 1, got ${String(step)}`);

  let g = grad.storage as FloatArray;
  let wd = weightDecay;
  if (!decoupled && wd !== 0) {
    // Adam's L2 decay: g + wd * p into a copy, then the update with no decoupled decay.
    const w = param.storage as FloatArray;
    const d = g.slice();
    for (let i = 0; i < d.length; i++) d[i] += wd * w[i];
    g = d;
    wd = 0;
  }
  backend().adamw(param.storage as FloatArray, g, expAvg.storage as FloatArray, expAvgSq.storage as FloatArray,
    lr, beta1, beta2, eps, wd, 1 - beta1 ** step, 1 - beta2 ** step);
  markWeightsChanged();
}

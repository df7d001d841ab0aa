// RMSNorm (Zhang and Sennrich, 2019), as Llama normalises: x / sqrt(mean(x^2) + eps) * weight over the last axis,
// with no mean subtracted and no bias. Fused forward and backward on the backend; rmsNormReference is the same
// thing composed from primitive ops, which the tests hold the fused op against.

import { backend, type FloatArray } from '../../backend/index.js';
import { defineOp, record } from '../autograd.js';
import { fmt } from '../shape.js';
import { allocFloat, allocFloatUninit } from '../storage.js';
import { Tensor } from '../tensor.js';
import { requireFloat } from './elementwise.js';

/** RMSNorm of x over its last axis; weight has the last axis's size, or is null. */
export const rmsNorm = defineOp('rmsNorm', (x: Tensor, weight: Tensor | null = null, eps = 1e-6): Tensor => {
  requireFloat(x, 'rmsNorm');
  if (x.ndim === 0) throw new Error('rmsNorm: x must have at least one axis');
  const C = x.shape[x.ndim - 1];
  if (weight && (weight.ndim !== 1 || weight.size !== C)) throw new Error(`rmsNorm: weight has shape ${fmt(weight.shape)}, expected (${C})`);
  if (weight && weight.dtype !== x.dtype) throw new Error(`rmsNorm: weight is ${weight.dtype} but the input is ${x.dtype}`);
  if (!(typeof eps === 'number' && eps >= 0)) throw new Error(`rmsNorm: eps must be a non-negative number, got ${String(eps)}`);
  const rows = C === 0 ? 0 : x.size / C;
  const out = allocFloatUninit(x.dtype, x.size); // (rows, C)
  const rstd = allocFloat(x.dtype, rows); // (rows)
  const w = weight ? (weight.storage as FloatArray) : null;
  backend().rmsNorm(x.storage as FloatArray, w, rows, C, eps, out, rstd);
  return record('rmsNorm', new Tensor(out, x.shape), weight ? [x, weight] : [x], (g) => {
    const dx = allocFloatUninit(x.dtype, x.size); // (rows, C)
    const dw = weight?.requiresGrad ? allocFloat(x.dtype, C) : null; // (C)
    backend().rmsNormBackward(g.storage as FloatArray, x.storage as FloatArray, w, rstd, rows, C, dx, dw);
    const dxT = new Tensor(dx, x.shape);
    return weight ? [dxT, dw ? new Tensor(dw, weight.shape) : null] : [dxT];
  });
});

/** The composite the fused op is tested against: x * rsqrt(mean(x^2, -1) + eps) * weight. */
export function rmsNormReference(x: Tensor, weight: Tensor | null = null, eps = 1e-6): Tensor {
  const y = x.mul(x.square().mean(-1, true).add(eps).rsqrt());
  return weight ? y.mul(weight) : y;
}

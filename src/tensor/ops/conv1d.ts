// The op behind Hugging Face GPT-2's "Conv1D" layer: y = x @ W + b with the weight stored (in, out), so GPT-2
// state dicts move to and from Hugging Face unchanged. One GEMM with the bias fused, no transposed copies.

import { backend, type FloatArray } from '../../backend/index.js';
import { defineOp, record } from '../autograd.js';
import { gemmAt, gemmPrecision } from '../autocast.js';
import { fmt } from '../shape.js';
import { allocFloatUninit, fillRows } from '../storage.js';
import { Tensor } from '../tensor.js';

/**
 * y = x @ W + b with W stored (in, out) (the transpose of `linear`'s layout); x is (..., in).
 * `conv1d(x, w, b)` with x (B, T, 32), w (32, 96), b (96) gives (B, T, 96).
 */
export const conv1d = defineOp('conv1d', (x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor => {
  if (x.dtype === 'int32') throw new Error('conv1d: the input must be a floating-point tensor, got int32');
  if (weight.ndim !== 2) throw new Error(`conv1d: weight must be 2-D (in, out), got ${fmt(weight.shape)}`);
  const [inF, outF] = weight.shape;
  if (x.ndim === 0 || x.shape[x.ndim - 1] !== inF) {
    throw new Error(`conv1d: input of shape ${fmt(x.shape)} does not match weight ${fmt(weight.shape)} (expected last dimension ${inF})`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== outF)) {
    throw new Error(`conv1d: bias must have shape [${outF}], got ${fmt(bias.shape)}`);
  }
  if (x.dtype !== weight.dtype) throw new Error(`conv1d: dtype mismatch, input ${x.dtype} and weight ${weight.dtype}`);
  const rows = x.size / inF;
  const out = allocFloatUninit(x.dtype, rows * outF); // (rows, out), every element written below
  let beta = 0;
  if (bias) {
    // C starts as the broadcast bias and the product accumulates into it (beta = 1).
    fillRows(out, bias.storage as FloatArray, rows);
    beta = 1;
  }
  const xs = x.storage as FloatArray;
  const ws = weight.storage as FloatArray;
  const prec = gemmPrecision(xs);
  gemmAt(prec, false, false, 1, rows, outF, inF, 1, xs, 0, ws, 0, beta, out, 0);
  const y = new Tensor(out, [...x.shape.slice(0, -1), outF]);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record('conv1d', y, inputs, (g) => {
    const gs = g.storage as FloatArray; // (rows, out)
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (x.requiresGrad) {
      // dx (rows, in) = g @ W^T; W is stored (in, out) = (N, K): transB.
      const d = allocFloatUninit(x.dtype, x.size);
      gemmAt(prec, false, true, 1, rows, inF, outF, 1, gs, 0, ws, 0, 0, d, 0);
      dx = new Tensor(d, x.shape);
    }
    if (weight.requiresGrad) {
      // dW (in, out) = x^T @ g; x is stored (rows, in) = (K, M): transA.
      const d = allocFloatUninit(x.dtype, inF * outF);
      gemmAt(prec, true, false, 1, inF, outF, rows, 1, xs, 0, gs, 0, 0, d, 0);
      dw = new Tensor(d, weight.shape);
    }
    if (bias?.requiresGrad) {
      // db (out) = the column sums of g (rows, out)
      const d = allocFloatUninit(x.dtype, outF);
      backend().reduce('sum', gs, 1, rows, outF, d);
      db = new Tensor(d, bias.shape);
    }
    return bias ? [dx, dw, db] : [dx, dw];
  });
});

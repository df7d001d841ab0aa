// Matrix products on the backend's batched GEMM. Transposes are GEMM flags, never copies: `linear` computes
// x @ W^T + b and its gradients with no transposed tensor ever materialised.

import { backend, type FloatArray } from '../../backend/index.js';
import { defineOp, record } from '../autograd.js';
import { gemmAt, gemmPrecision, type Precision } from '../autocast.js';
import { broadcastShapes, fmt, sizeOf } from '../shape.js';
import { allocFloatUninit, fillRows } from '../storage.js';
import { Tensor } from '../tensor.js';
import { requireFloat, sumTo } from './elementwise.js';

/**
 * Batched product of a (..., M, K) or its transpose with b (..., K, N) or its transpose; batch dims broadcast.
 * Both inputs have rank >= 2.
 */
function gemmBatched(a: Tensor, b: Tensor, transA: boolean, transB: boolean, op: string, prec: Precision): Tensor {
  requireFloat(a, op);
  requireFloat(b, op);
  if (a.dtype !== b.dtype) throw new Error(`${op}: dtype mismatch, ${a.dtype} and ${b.dtype}`);
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [M, K] = transA ? [ac, ar] : [ar, ac];
  const [K2, N] = transB ? [bc, br] : [br, bc];
  if (K !== K2) {
    throw new Error(`${op}: shapes ${fmt(a.shape)}${transA ? 'ᵀ' : ''} and ${fmt(b.shape)}${transB ? 'ᵀ' : ''} ` +
      `cannot be multiplied (inner dimensions ${K} and ${K2} differ)`);
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const batchShape = broadcastShapes(aBatch, bBatch, op);
  const batch = sizeOf(batchShape);
  const A = materialise(a, batchShape);
  const B = materialise(b, batchShape);
  const out = allocFloatUninit(a.dtype, batch * M * N); // beta = 0: the GEMM writes every element
  gemmAt(prec, transA, transB, batch, M, N, K, 1, A.data, A.stride ? M * K : 0, B.data, B.stride ? K * N : 0,
    0, out, M * N);
  return new Tensor(out, [...batchShape, M, N]);
}

/** The operand's storage with one matrix per output batch, or one shared matrix (stride 0). */
function materialise(t: Tensor, batchShape: number[]): { data: FloatArray; stride: boolean } {
  const own = t.shape.slice(0, -2);
  if (sizeOf(own) === 1) return { data: t.storage as FloatArray, stride: false };
  const padded = [...new Array<number>(batchShape.length - own.length).fill(1), ...own];
  if (padded.every((d, i) => d === batchShape[i])) return { data: t.storage as FloatArray, stride: true };
  return { data: t.expand([...batchShape, ...t.shape.slice(-2)]).storage as FloatArray, stride: true };
}

/** mm with transpose flags: op(a) @ op(b), differentiable, batch dims broadcast. */
export const mmT = defineOp('mmT', (a: Tensor, b: Tensor, transA = false, transB = false): Tensor => {
  const prec = gemmPrecision(a.storage as FloatArray);
  const out = gemmBatched(a, b, transA, transB, 'matmul', prec);
  return record('mmT', out, [a, b], (g) => [
    // d op(a) = g @ op(b)^T; stored layout decides the flags.
    a.requiresGrad ? sumTo(transA ? gemmBatched(b, g, transB, true, 'matmul', prec) : gemmBatched(g, b, false, !transB, 'matmul', prec), a.shape) : null,
    b.requiresGrad ? sumTo(transB ? gemmBatched(g, a, true, transA, 'matmul', prec) : gemmBatched(a, g, !transA, false, 'matmul', prec), b.shape) : null,
  ]);
});

/**
 * Matrix product with NumPy semantics: 1-D operands are promoted and the added axis removed; batch dims broadcast.
 * `kiln.randn([2, 3]).matmul(kiln.randn([3, 4]))` has shape [2, 4].
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) throw new Error(`matmul: both operands need at least one dimension, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  if (a.ndim === 1 && b.ndim === 1) return mmT(a.reshape([1, -1]), b.reshape([-1, 1])).reshape([]);
  if (a.ndim === 1) return mmT(a.unsqueeze(0), b).squeeze(-2);
  if (b.ndim === 1) return mmT(a, b.unsqueeze(1)).squeeze(-1);
  if (b.ndim === 2 && a.ndim > 2) {
    // Fold a's batch dims into M: one large GEMM instead of many small ones.
    const lead = a.shape.slice(0, -1);
    return mmT(a.reshape([-1, a.shape[a.ndim - 1]]), b).reshape([...lead, b.shape[1]]);
  }
  return mmT(a, b);
}

/**
 * y = x @ W^T + b, with W stored (out, in) as PyTorch's Linear does. x is (..., in).
 */
export const linear = defineOp('linear', (x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor => {
  requireFloat(x, 'linear');
  if (weight.ndim !== 2) throw new Error(`linear: weight must be 2-D (out, in), got ${fmt(weight.shape)}`);
  const [outF, inF] = weight.shape;
  if (x.ndim === 0 || x.shape[x.ndim - 1] !== inF) {
    throw new Error(`linear: input of shape ${fmt(x.shape)} does not match weight ${fmt(weight.shape)} (expected last dimension ${inF})`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== outF)) {
    throw new Error(`linear: bias must have shape [${outF}], got ${fmt(bias.shape)}`);
  }
  if (x.dtype !== weight.dtype) throw new Error(`linear: dtype mismatch, input ${x.dtype} and weight ${weight.dtype}`);
  const rows = x.size / inF;
  const out = allocFloatUninit(x.dtype, rows * outF);
  let beta = 0;
  if (bias) {
    // Start C as the broadcast bias, then accumulate the product into it (beta = 1): no extra pass.
    fillRows(out, bias.storage as FloatArray, rows);
    beta = 1;
  }
  const prec = gemmPrecision(x.storage as FloatArray);
  gemmAt(prec, false, true, 1, rows, outF, inF, 1, x.storage as FloatArray, 0, weight.storage as FloatArray, 0, beta, out, 0);
  const y = new Tensor(out, [...x.shape.slice(0, -1), outF]);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record('linear', y, inputs, (g) => {
    const gs = g.storage as FloatArray;
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    let db: Tensor | null = null;
    if (x.requiresGrad) {
      const d = allocFloatUninit(x.dtype, x.size);
      gemmAt(prec, false, false, 1, rows, inF, outF, 1, gs, 0, weight.storage as FloatArray, 0, 0, d, 0);
      dx = new Tensor(d, x.shape);
    }
    if (weight.requiresGrad) {
      const d = allocFloatUninit(x.dtype, outF * inF);
      gemmAt(prec, true, false, 1, outF, inF, rows, 1, gs, 0, x.storage as FloatArray, 0, 0, d, 0);
      dw = new Tensor(d, weight.shape);
    }
    if (bias?.requiresGrad) db = g.reshape([rows, outF]).sum(0);
    return bias ? [dx, dw, db] : [dx, dw];
  });
});

// Mixed precision: kiln.autocast runs a block with float32 GEMMs in bfloat16 (inputs rounded to bf16, products
// accumulated in float32). Weights, gradients and optimizer state stay float32; an op records the precision of its
// forward and its backward GEMMs use the same, as PyTorch's autocast does.

import { backend, type FloatArray } from '../backend/index.js';
import { roundBf16 } from '../backend/js/bf16.js';

/** GEMM precision: 'float32' (exact float32) or 'bf16' (bfloat16 inputs, float32 accumulation). */
export type Precision = 'float32' | 'bf16';

let current: Precision = 'float32';

/** Checks a precision name from outside ('float32', 'fp32', 'bf16', 'bfloat16') and returns its canonical form. */
export function parsePrecision(name: string, what = 'precision'): Precision {
  const n = String(name).trim().toLowerCase();
  if (n === 'float32' || n === 'fp32') return 'float32';
  if (n === 'bf16' || n === 'bfloat16') return 'bf16';
  throw new Error(`${what} must be 'float32' or 'bf16', got '${name}'`);
}

/**
 * Runs fn with matrix products (linear, matmul, conv1d; forward and backward) in the given precision, then restores
 * the previous one. Only float32 tensors are affected; float64 stays exact.
 * `const loss = kiln.autocast('bf16', () => model.loss(x, y)); loss.backward();`
 */
export function autocast<T>(precision: Precision | 'bfloat16' | 'fp32', fn: () => T): T {
  const next = parsePrecision(precision);
  const prev = current;
  current = next;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/** The precision matrix products use now (see autocast). */
export function autocastPrecision(): Precision { return current; }

/** The precision a GEMM on buffers of this kind runs in now: bf16 applies to float32 only. */
export function gemmPrecision(x: FloatArray): Precision {
  return current === 'bf16' && x instanceof Float32Array ? 'bf16' : 'float32';
}

/** backend().gemm in the given precision; for bf16 on a backend without gemmBf16, rounded copies of the inputs. */
export function gemmAt(prec: Precision, transA: boolean, transB: boolean, batch: number, M: number, N: number, K: number,
  alpha: number, A: FloatArray, strideA: number, B: FloatArray, strideB: number, beta: number, C: FloatArray,
  strideC: number): void {
  const be = backend();
  if (prec === 'float32' || !(A instanceof Float32Array && B instanceof Float32Array && C instanceof Float32Array)) {
    be.gemm(transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC);
  } else if (be.gemmBf16) {
    be.gemmBf16(transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC);
  } else {
    const ra = new Float32Array(A.length);
    const rb = new Float32Array(B.length);
    roundBf16(A, ra);
    roundBf16(B, rb);
    be.gemm(transA, transB, batch, M, N, K, alpha, ra, strideA, rb, strideB, beta, C, strideC);
  }
}

// Reference batched GEMM, C = alpha * op(A) @ op(B) + beta * C. Loop orders keep the innermost loop
// contiguous for each transpose case, and K/N are blocked so the B panel stays in cache.

import type { FloatArray } from '../backend.js';

const KB = 128; // rows of B per block
const NB = 1024; // columns of B per block

export function gemm(transA: boolean, transB: boolean, batch: number, M: number, N: number, K: number, alpha: number,
  A: FloatArray, strideA: number, B: FloatArray, strideB: number, beta: number, C: FloatArray, strideC: number): void {
  // When B is transposed, copy it to (K, N) once per batch so every case runs the same cache-friendly loop.
  const bt = transB ? (A instanceof Float64Array ? new Float64Array(K * N) : new Float32Array(K * N)) : null;
  for (let b = 0; b < batch; b++) {
    const ao = b * strideA;
    const co = b * strideC;
    scaleC(C, co, M * N, beta);
    if (M === 0 || N === 0 || K === 0 || alpha === 0) continue;
    let Bm: FloatArray = B;
    let bo = b * strideB;
    if (bt) {
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) bt[k * N + n] = B[bo + n * K + k];
      Bm = bt;
      bo = 0;
    }
    for (let k0 = 0; k0 < K; k0 += KB) {
      const k1 = Math.min(K, k0 + KB);
      for (let n0 = 0; n0 < N; n0 += NB) {
        const n1 = Math.min(N, n0 + NB);
        for (let i = 0; i < M; i++) {
          const crow = co + i * N;
          for (let k = k0; k < k1; k++) {
            const a = alpha * (transA ? A[ao + k * M + i] : A[ao + i * K + k]);
            if (a === 0) continue;
            const brow = bo + k * N;
            for (let n = n0; n < n1; n++) C[crow + n] += a * Bm[brow + n];
          }
        }
      }
    }
  }
}

function scaleC(C: FloatArray, off: number, len: number, beta: number): void {
  if (beta === 1) return;
  if (beta === 0) C.fill(0, off, off + len);
  else for (let i = off; i < off + len; i++) C[i] *= beta;
}

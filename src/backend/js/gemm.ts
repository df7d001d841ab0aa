// Reference batched GEMM, C = alpha * op(A) @ op(B) + beta * C. Every transpose case runs one loop nest whose
// innermost loop is contiguous: B is copied to (K, N) when transposed, A is read through its own layout.
// Four rows of C are updated per pass over a row of B (fewer loads of B), and K/N are blocked for the cache.

import type { FloatArray } from '../backend.js';

const KB = 256; // rows of B per block
const NB = 512; // columns of B per block

export function gemm(transA: boolean, transB: boolean, batch: number, M: number, N: number, K: number, alpha: number,
  A: FloatArray, strideA: number, B: FloatArray, strideB: number, beta: number, C: FloatArray, strideC: number): void {
  const make = (n: number): FloatArray => (A instanceof Float64Array ? new Float64Array(n) : new Float32Array(n));
  const bt = transB ? make(K * N) : null;
  for (let b = 0; b < batch; b++) {
    const ao = b * strideA;
    const co = b * strideC;
    scaleC(C, co, M * N, beta);
    if (M === 0 || N === 0 || K === 0 || alpha === 0) continue;
    let Bm: FloatArray = B;
    let bo = b * strideB;
    if (bt) {
      // B_b is (N, K): copy it to (K, N) once per batch.
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) bt[k * N + n] = B[bo + n * K + k];
      Bm = bt;
      bo = 0;
    }
    // A element (i, k) lives at ao + i * ra + k * ca.
    const ra = transA ? 1 : K;
    const ca = transA ? M : 1;
    for (let k0 = 0; k0 < K; k0 += KB) {
      const k1 = Math.min(K, k0 + KB);
      for (let n0 = 0; n0 < N; n0 += NB) {
        const n1 = Math.min(N, n0 + NB);
        let i = 0;
        for (; i + 4 <= M; i += 4) {
          const c0 = co + i * N;
          const c1 = c0 + N;
          const c2 = c1 + N;
          const c3 = c2 + N;
          for (let k = k0; k < k1; k++) {
            const ak = ao + k * ca + i * ra;
            const a0 = alpha * A[ak];
            const a1 = alpha * A[ak + ra];
            const a2 = alpha * A[ak + 2 * ra];
            const a3 = alpha * A[ak + 3 * ra];
            const br = bo + k * N;
            for (let n = n0; n < n1; n++) {
              const bv = Bm[br + n];
              C[c0 + n] += a0 * bv;
              C[c1 + n] += a1 * bv;
              C[c2 + n] += a2 * bv;
              C[c3 + n] += a3 * bv;
            }
          }
        }
        for (; i < M; i++) {
          const cr = co + i * N;
          for (let k = k0; k < k1; k++) {
            const a = alpha * A[ao + k * ca + i * ra];
            const br = bo + k * N;
            for (let n = n0; n < n1; n++) C[cr + n] += a * Bm[br + n];
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

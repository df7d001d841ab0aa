// bfloat16 semantics in plain TypeScript: rounding float32 values to bf16 (nearest, ties to even) and the reference
// bf16 GEMM (inputs rounded, float32 products accumulated by the reference gemm).

import { gemm } from './gemm.js';

/** dst[i] = src[i] rounded to the nearest bfloat16 (ties to even), kept as a float32; NaN stays NaN. dst may be src. */
export function roundBf16(src: Float32Array, dst: Float32Array): void {
  const s = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const d = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < s.length; i++) {
    const u = s[i];
    if ((u & 0x7fffffff) > 0x7f800000) d[i] = (u | 0x00400000) & 0xffff0000;
    else d[i] = (u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000;
  }
}

/** The elements op(A) and op(B) read, rounded: a copy of the first `len` values. */
function rounded(x: Float32Array, len: number): Float32Array {
  const out = new Float32Array(len);
  roundBf16(x.subarray(0, len), out);
  return out;
}

/** Reference bf16 GEMM: the backend contract's gemmBf16 (see backend.ts). */
export function gemmBf16(transA: boolean, transB: boolean, batch: number, M: number, N: number, K: number, alpha: number,
  A: Float32Array, strideA: number, B: Float32Array, strideB: number, beta: number, C: Float32Array, strideC: number): void {
  const lenA = batch > 0 ? (batch - 1) * strideA + M * K : 0;
  const lenB = batch > 0 ? (batch - 1) * strideB + K * N : 0;
  gemm(transA, transB, batch, M, N, K, alpha, rounded(A, Math.min(lenA, A.length)), strideA,
    rounded(B, Math.min(lenB, B.length)), strideB, beta, C, strideC);
}

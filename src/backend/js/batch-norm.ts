// Reference batch normalisation over x (N, C, HW): per-channel statistics, the affine normalisation and its gradient.

import type { FloatArray } from '../backend.js';

export function batchNormStats(x: FloatArray, N: number, C: number, HW: number, mean: FloatArray, variance: FloatArray): void {
  const count = N * HW;
  for (let c = 0; c < C; c++) {
    let sum = 0;
    for (let n = 0; n < N; n++) for (let i = (n * C + c) * HW, e = i + HW; i < e; i++) sum += x[i];
    const m = count > 0 ? sum / count : 0;
    let sq = 0; // two passes: the sum of squared deviations, without cancellation
    for (let n = 0; n < N; n++) for (let i = (n * C + c) * HW, e = i + HW; i < e; i++) sq += (x[i] - m) * (x[i] - m);
    mean[c] = m;
    variance[c] = count > 0 ? sq / count : 0;
  }
}

export function batchNorm(x: FloatArray, mean: FloatArray, invstd: FloatArray, weight: FloatArray | null, bias: FloatArray | null,
  N: number, C: number, HW: number, out: FloatArray): void {
  for (let c = 0; c < C; c++) {
    const scale = invstd[c] * (weight ? weight[c] : 1);
    const shift = (bias ? bias[c] : 0) - mean[c] * scale;
    for (let n = 0; n < N; n++) for (let i = (n * C + c) * HW, e = i + HW; i < e; i++) out[i] = x[i] * scale + shift;
  }
}

export function batchNormBackward(dy: FloatArray, x: FloatArray, mean: FloatArray, invstd: FloatArray, weight: FloatArray | null,
  N: number, C: number, HW: number, batchStats: boolean, dx: FloatArray | null, dweight: FloatArray | null,
  dbias: FloatArray | null): void {
  const count = N * HW;
  for (let c = 0; c < C; c++) {
    const m = mean[c];
    const r = invstd[c];
    let sdy = 0;
    let sdyx = 0; // sum(dy * xhat)
    for (let n = 0; n < N; n++) {
      for (let i = (n * C + c) * HW, e = i + HW; i < e; i++) { sdy += dy[i]; sdyx += dy[i] * (x[i] - m) * r; }
    }
    if (dweight) dweight[c] = sdyx;
    if (dbias) dbias[c] = sdy;
    if (!dx) continue;
    const k = r * (weight ? weight[c] : 1);
    const a = batchStats && count > 0 ? sdy / count : 0;
    const b = batchStats && count > 0 ? sdyx / count : 0;
    for (let n = 0; n < N; n++) {
      for (let i = (n * C + c) * HW, e = i + HW; i < e; i++) dx[i] = k * (dy[i] - a - (x[i] - m) * r * b);
    }
  }
}

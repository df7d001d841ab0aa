// Reference kernels of the Llama-style decoder: RMSNorm forward and backward, and rotary position embeddings
// (Hugging Face's rotate_half convention). The native backend runs the same arithmetic in native/decoder.c.

import type { FloatArray } from '../backend.js';

/** out (rows, C) = x / sqrt(mean(x^2) + eps) * weight; rstd (rows) is kept for backward. */
export function rmsNorm(x: FloatArray, weight: FloatArray | null, rows: number, C: number, eps: number,
  out: FloatArray, rstd: FloatArray): void {
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[o + c] * x[o + c];
    const s = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) out[o + c] = x[o + c] * s * (weight ? weight[c] : 1);
    rstd[r] = s;
  }
}

/** dx (rows, C) is written; dweight (C) is accumulated into (+=) when not null. */
export function rmsNormBackward(dy: FloatArray, x: FloatArray, weight: FloatArray | null, rstd: FloatArray,
  rows: number, C: number, dx: FloatArray, dweight: FloatArray | null): void {
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    const s = rstd[r];
    // g = dy * w; dx = s * g - x * s^3 * mean(g * x)
    let dot = 0;
    for (let c = 0; c < C; c++) dot += dy[o + c] * (weight ? weight[c] : 1) * x[o + c];
    const k = s * s * s * dot / C;
    for (let c = 0; c < C; c++) {
      dx[o + c] = s * dy[o + c] * (weight ? weight[c] : 1) - x[o + c] * k;
      if (dweight) dweight[c] += dy[o + c] * x[o + c] * s;
    }
  }
}

/**
 * Rotary embedding of x (B, T, NH, HS) into out (may alias x): channel i < HS/2 pairs with i + HS/2 and turns by
 * pos * theta^(-2i/HS), pos = starts[b] + t. inverse turns the other way, which is the backward pass.
 */
export function rope(x: FloatArray, B: number, T: number, NH: number, HS: number, theta: number, starts: Int32Array,
  inverse: boolean, out: FloatArray): void {
  const half = HS / 2;
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const pos = starts[b] + t;
      for (let i = 0; i < half; i++) {
        const a = pos * Math.pow(theta, (-2 * i) / HS);
        cos[i] = Math.cos(a);
        sin[i] = inverse ? -Math.sin(a) : Math.sin(a);
      }
      for (let h = 0; h < NH; h++) {
        const o = ((b * T + t) * NH + h) * HS;
        for (let i = 0; i < half; i++) {
          const x1 = x[o + i];
          const x2 = x[o + i + half];
          out[o + i] = x1 * cos[i] - x2 * sin[i];
          out[o + i + half] = x2 * cos[i] + x1 * sin[i];
        }
      }
    }
  }
}

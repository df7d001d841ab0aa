// Reference 2-D max and average pooling over planes (P, H, W), forward and backward, as PyTorch computes them.

import type { FloatArray, Pool2dShape } from '../backend.js';

export function maxPool2d(x: FloatArray, s: Pool2dShape, out: FloatArray, indices: Int32Array): void {
  const { P, H, W, OH, OW, KH, KW, strideH, strideW, padH, padW, dilationH, dilationW } = s;
  for (let p = 0; p < P; p++) {
    const x0 = p * H * W;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        let best = -Infinity;
        let at = -1;
        for (let kh = 0; kh < KH; kh++) {
          const h = oh * strideH - padH + kh * dilationH;
          if (h < 0 || h >= H) continue;
          for (let kw = 0; kw < KW; kw++) {
            const w = ow * strideW - padW + kw * dilationW;
            if (w < 0 || w >= W) continue;
            const v = x[x0 + h * W + w];
            if (at < 0 || v > best || Number.isNaN(v)) { best = v; at = h * W + w; }
          }
        }
        const o = (p * OH + oh) * OW + ow;
        out[o] = best;
        indices[o] = at;
      }
    }
  }
}

export function maxPool2dBackward(dy: FloatArray, indices: Int32Array, s: Pool2dShape, dx: FloatArray): void {
  const { P, H, W, OH, OW } = s;
  dx.fill(0);
  for (let p = 0; p < P; p++) {
    for (let o = 0; o < OH * OW; o++) {
      const i = indices[p * OH * OW + o];
      if (i >= 0) dx[p * H * W + i] += dy[p * OH * OW + o];
    }
  }
}

/** Rows [h0, h1) and columns [w0, w1) of window (oh, ow) within the input, and PyTorch's divisor for it. */
function avgWindow(s: Pool2dShape, oh: number, ow: number, countIncludePad: boolean, divisorOverride: number): [number, number, number, number, number] {
  let h0 = oh * s.strideH - s.padH;
  let w0 = ow * s.strideW - s.padW;
  let h1 = Math.min(h0 + s.KH, s.H + s.padH);
  let w1 = Math.min(w0 + s.KW, s.W + s.padW);
  const padded = (h1 - h0) * (w1 - w0);
  h0 = Math.max(h0, 0);
  w0 = Math.max(w0, 0);
  h1 = Math.min(h1, s.H);
  w1 = Math.min(w1, s.W);
  const div = divisorOverride !== 0 ? divisorOverride : countIncludePad ? padded : (h1 - h0) * (w1 - w0);
  return [h0, h1, w0, w1, div];
}

export function avgPool2d(x: FloatArray, s: Pool2dShape, countIncludePad: boolean, divisorOverride: number, out: FloatArray): void {
  const { P, H, W, OH, OW } = s;
  for (let p = 0; p < P; p++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const [h0, h1, w0, w1, div] = avgWindow(s, oh, ow, countIncludePad, divisorOverride);
        let sum = 0;
        for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) sum += x[(p * H + h) * W + w];
        out[(p * OH + oh) * OW + ow] = sum / div;
      }
    }
  }
}

export function avgPool2dBackward(dy: FloatArray, s: Pool2dShape, countIncludePad: boolean, divisorOverride: number, dx: FloatArray): void {
  const { P, H, W, OH, OW } = s;
  dx.fill(0);
  for (let p = 0; p < P; p++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const [h0, h1, w0, w1, div] = avgWindow(s, oh, ow, countIncludePad, divisorOverride);
        const g = dy[(p * OH + oh) * OW + ow] / div;
        for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) dx[(p * H + h) * W + w] += g;
      }
    }
  }
}

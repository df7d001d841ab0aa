// Reference 2-D convolution (NCHW) forward and backward as direct loops: the plainest statement of the op, which the
// native im2col + GEMM kernels are tested against. The innermost loop runs over output columns, contiguous in memory.

import type { Conv2dShape, FloatArray } from '../backend.js';

/** Output columns ow whose input column ow * stride - pad + k * dilation lies in [0, W): [lo, hi). */
export function validRange(k: number, stride: number, pad: number, dilation: number, W: number, OW: number): [number, number] {
  const off = k * dilation - pad; // input column = ow * stride + off
  const lo = Math.max(0, Math.ceil(-off / stride));
  const hi = Math.min(OW, Math.floor((W - 1 - off) / stride) + 1);
  return [lo, Math.max(lo, hi)];
}

export function conv2d(x: FloatArray, weight: FloatArray, bias: FloatArray | null, s: Conv2dShape, out: FloatArray): void {
  const { N, C, H, W, OC, KH, KW, OH, OW, strideH, strideW, padH, padW, dilationH, dilationW, groups } = s;
  const Cg = C / groups;
  const OCg = OC / groups;
  for (let n = 0; n < N; n++) {
    for (let oc = 0; oc < OC; oc++) {
      const o0 = (n * OC + oc) * OH * OW; // out[n, oc] (OH, OW)
      out.fill(bias ? bias[oc] : 0, o0, o0 + OH * OW);
      const g = Math.floor(oc / OCg);
      for (let ic = 0; ic < Cg; ic++) {
        const x0 = (n * C + g * Cg + ic) * H * W; // x[n, c] (H, W)
        for (let kh = 0; kh < KH; kh++) {
          const [ohLo, ohHi] = validRange(kh, strideH, padH, dilationH, H, OH);
          for (let kw = 0; kw < KW; kw++) {
            const wv = weight[((oc * Cg + ic) * KH + kh) * KW + kw];
            const [owLo, owHi] = validRange(kw, strideW, padW, dilationW, W, OW);
            for (let oh = ohLo; oh < ohHi; oh++) {
              const xr = x0 + (oh * strideH - padH + kh * dilationH) * W - padW + kw * dilationW;
              const or = o0 + oh * OW;
              for (let ow = owLo; ow < owHi; ow++) out[or + ow] += wv * x[xr + ow * strideW];
            }
          }
        }
      }
    }
  }
}

export function conv2dBackward(dy: FloatArray, x: FloatArray, weight: FloatArray, s: Conv2dShape, dx: FloatArray | null,
  dweight: FloatArray | null, dbias: FloatArray | null): void {
  const { N, C, H, W, OC, KH, KW, OH, OW, strideH, strideW, padH, padW, dilationH, dilationW, groups } = s;
  const Cg = C / groups;
  const OCg = OC / groups;
  dx?.fill(0);
  dweight?.fill(0);
  if (dbias) {
    dbias.fill(0);
    for (let n = 0; n < N; n++) {
      for (let oc = 0; oc < OC; oc++) {
        const o0 = (n * OC + oc) * OH * OW;
        let sum = 0;
        for (let i = 0; i < OH * OW; i++) sum += dy[o0 + i];
        dbias[oc] += sum;
      }
    }
  }
  if (!dx && !dweight) return;
  for (let n = 0; n < N; n++) {
    for (let oc = 0; oc < OC; oc++) {
      const o0 = (n * OC + oc) * OH * OW; // dy[n, oc] (OH, OW)
      const g = Math.floor(oc / OCg);
      for (let ic = 0; ic < Cg; ic++) {
        const x0 = (n * C + g * Cg + ic) * H * W;
        for (let kh = 0; kh < KH; kh++) {
          const [ohLo, ohHi] = validRange(kh, strideH, padH, dilationH, H, OH);
          for (let kw = 0; kw < KW; kw++) {
            const wi = ((oc * Cg + ic) * KH + kh) * KW + kw;
            const wv = weight[wi];
            const [owLo, owHi] = validRange(kw, strideW, padW, dilationW, W, OW);
            let dw = 0;
            for (let oh = ohLo; oh < ohHi; oh++) {
              const xr = x0 + (oh * strideH - padH + kh * dilationH) * W - padW + kw * dilationW;
              const or = o0 + oh * OW;
              for (let ow = owLo; ow < owHi; ow++) {
                const d = dy[or + ow];
                if (dx) dx[xr + ow * strideW] += wv * d;
                dw += d * x[xr + ow * strideW];
              }
            }
            if (dweight) dweight[wi] += dw;
          }
        }
      }
    }
  }
}

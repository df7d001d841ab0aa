// 2-D pooling over the last two dims of (N, C, H, W) or (C, H, W): max (with PyTorch's flat indices, which the
// backward scatters through), average, and adaptive average. Shapes and checks here; the backend does the loops.

import { backend, type FloatArray, type Pool2dShape } from '../../backend/index.js';
import { defineOp, record } from '../autograd.js';
import { fmt } from '../shape.js';
import { allocFloatUninit } from '../storage.js';
import { Tensor } from '../tensor.js';
import { pair, slidingOut, type Size2 } from './conv2d.js';
import { requireFloat } from './elementwise.js';
import { cat } from './shape-ops.js';

/** Options of maxPool2d: kernel size, stride (default the kernel), padding, dilation, ceil mode. */
export interface MaxPool2dOptions {
  /** Step between windows (default: the kernel size). */
  stride?: Size2;
  /** -Infinity added on each side (default 0), at most half the kernel. */
  padding?: Size2;
  /** Spacing between window taps (default 1). */
  dilation?: Size2;
  /** Round the output size up instead of down, keeping windows that start inside the input (default false). */
  ceilMode?: boolean;
}

/** Options of avgPool2d: kernel size, stride, padding, ceil mode, countIncludePad, divisorOverride. */
export interface AvgPool2dOptions {
  stride?: Size2;
  /** Zeros added on each side (default 0), at most half the kernel. */
  padding?: Size2;
  ceilMode?: boolean;
  /** Count padded zeros in the divisor (default true, as PyTorch). */
  countIncludePad?: boolean;
  /** Divide every window by this instead (default: none). */
  divisorOverride?: number;
}

/** PyTorch's pooling output size, with ceil mode's rule that the last window must start inside the input or left padding. */
function poolOut(size: number, k: number, stride: number, pad: number, dilation: number, ceil: boolean): number {
  const span = size + 2 * pad - dilation * (k - 1) - 1;
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  if (ceil && (out - 1) * stride >= size + pad) out--;
  return out;
}

/** Planes and window geometry of a pooling op, with every argument checked. */
function geometry(op: string, x: Tensor, kernelSize: Size2, o: MaxPool2dOptions): Pool2dShape {
  requireFloat(x, op);
  if (x.ndim !== 3 && x.ndim !== 4) throw new Error(`${op}: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape ${fmt(x.shape)}`);
  const [KH, KW] = pair(kernelSize, 'kernelSize', op, 1);
  const [strideH, strideW] = o.stride === undefined ? [KH, KW] : pair(o.stride, 'stride', op, 1);
  const [padH, padW] = pair(o.padding ?? 0, 'padding', op, 0);
  const [dilationH, dilationW] = pair(o.dilation ?? 1, 'dilation', op, 1);
  if (2 * padH > KH || 2 * padW > KW) {
    throw new Error(`${op}: padding ${fmt([padH, padW])} must be at most half the kernel size ${fmt([KH, KW])}`);
  }
  const H = x.shape[x.ndim - 2];
  const W = x.shape[x.ndim - 1];
  const ceil = o.ceilMode ?? false;
  const OH = poolOut(H, KH, strideH, padH, dilationH, ceil);
  const OW = poolOut(W, KW, strideW, padW, dilationW, ceil);
  if (OH < 1 || OW < 1) {
    throw new Error(`${op}: kernel ${fmt([KH, KW])} with dilation ${fmt([dilationH, dilationW])} is larger than the padded ` +
      `input ${fmt([H + 2 * padH, W + 2 * padW])}`);
  }
  const P = x.size / Math.max(1, H * W);
  return { P, H, W, OH, OW, KH, KW, strideH, strideW, padH, padW, dilationH, dilationW };
}

const outShape = (x: Tensor, s: Pool2dShape): number[] => [...x.shape.slice(0, -2), s.OH, s.OW];

/** Max pooling and the flat index (h * W + w within each plane) of every maximum; the output records the graph. */
function maxPool(x: Tensor, kernelSize: Size2, options: MaxPool2dOptions): [Tensor, Tensor] {
  const s = geometry('maxPool2d', x, kernelSize, options);
  const n = s.P * s.OH * s.OW;
  const out = allocFloatUninit(x.dtype, n); // (P, OH, OW)
  const idx = new Int32Array(n); // (P, OH, OW)
  backend().maxPool2d(x.storage as FloatArray, s, out, idx);
  const shape = outShape(x, s);
  const y = record('maxPool2d', new Tensor(out, shape), [x], (g) => {
    const dx = allocFloatUninit(x.dtype, x.size);
    backend().maxPool2dBackward(g.storage as FloatArray, idx, s, dx);
    return [new Tensor(dx, x.shape)];
  });
  return [y, new Tensor(idx, shape)];
}

/**
 * Max pooling over the last two dims, as torch.nn.functional.max_pool2d.
 * `maxPool2d(x, 2)` with x (64, 32, 28, 28) gives (64, 32, 14, 14).
 */
export const maxPool2d = defineOp('maxPool2d', (x: Tensor, kernelSize: Size2, options: MaxPool2dOptions = {}): Tensor =>
  maxPool(x, kernelSize, options)[0]);

/**
 * Max pooling that also returns the int32 flat index (h * W + w within each plane) of every maximum, as
 * max_pool2d(..., return_indices=True). `const [y, idx] = maxPool2dWithIndices(x, 2)`
 */
export function maxPool2dWithIndices(x: Tensor, kernelSize: Size2, options: MaxPool2dOptions = {}): [Tensor, Tensor] {
  return maxPool(x, kernelSize, options);
}

/**
 * Average pooling over the last two dims, as torch.nn.functional.avg_pool2d.
 * `avgPool2d(x, 2)` with x (8, 16, 10, 10) gives (8, 16, 5, 5).
 */
export const avgPool2d = defineOp('avgPool2d', (x: Tensor, kernelSize: Size2, options: AvgPool2dOptions = {}): Tensor => {
  const s = geometry('avgPool2d', x, kernelSize, options);
  const countIncludePad = options.countIncludePad ?? true;
  const div = options.divisorOverride ?? 0;
  if (options.divisorOverride !== undefined && !(Number.isFinite(div) && div !== 0)) {
    throw new Error(`avgPool2d: divisorOverride must be a non-zero number, got ${options.divisorOverride}`);
  }
  const out = allocFloatUninit(x.dtype, s.P * s.OH * s.OW); // (P, OH, OW)
  backend().avgPool2d(x.storage as FloatArray, s, countIncludePad, div, out);
  return record('avgPool2d', new Tensor(out, outShape(x, s)), [x], (g) => {
    const dx = allocFloatUninit(x.dtype, x.size);
    backend().avgPool2dBackward(g.storage as FloatArray, s, countIncludePad, div, dx);
    return [new Tensor(dx, x.shape)];
  });
});

/** Window [start, end) of output cell i of n over an axis of `size`, as PyTorch's adaptive pooling. */
function adaptiveWindow(i: number, n: number, size: number): [number, number] {
  return [Math.floor((i * size) / n), Math.ceil(((i + 1) * size) / n)];
}

/**
 * Average pooling to a fixed output size (an entry of null keeps that input size), as adaptive_avg_pool2d.
 * Even splits run as one avgPool2d; uneven ones average each window and concatenate (composed, so no own backward).
 * `adaptiveAvgPool2d(x, 1)` with x (8, 512, 7, 7) gives (8, 512, 1, 1).
 */
export const adaptiveAvgPool2d = defineOp('adaptiveAvgPool2d', (x: Tensor, outputSize: number | readonly [number | null, number | null]): Tensor => {
  const op = 'adaptiveAvgPool2d';
  requireFloat(x, op);
  if (x.ndim !== 3 && x.ndim !== 4) throw new Error(`${op}: input must be 3-D (C, H, W) or 4-D (N, C, H, W), got shape ${fmt(x.shape)}`);
  const H = x.shape[x.ndim - 2];
  const W = x.shape[x.ndim - 1];
  const req = typeof outputSize === 'number' ? [outputSize, outputSize] : outputSize;
  if (!Array.isArray(req) || req.length !== 2) throw new Error(`${op}: outputSize must be a number or a pair, got ${JSON.stringify(outputSize)}`);
  const OH = req[0] ?? H;
  const OW = req[1] ?? W;
  for (const v of [OH, OW]) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${op}: outputSize must hold positive integers, got ${JSON.stringify(outputSize)}`);
  }
  if (H < 1 || W < 1) throw new Error(`${op}: input ${fmt(x.shape)} has an empty spatial size`);
  if (H % OH === 0 && W % OW === 0) return avgPool2d(x, [H / OH, W / OW]);
  const hAxis = x.ndim - 2;
  const rows: Tensor[] = [];
  for (let i = 0; i < OH; i++) {
    const [h0, h1] = adaptiveWindow(i, OH, H);
    const band = x.narrow(hAxis, h0, h1 - h0);
    const cells: Tensor[] = [];
    for (let j = 0; j < OW; j++) {
      const [w0, w1] = adaptiveWindow(j, OW, W);
      cells.push(band.narrow(hAxis + 1, w0, w1 - w0).mean([hAxis, hAxis + 1], true));
    }
    rows.push(cat(cells, hAxis + 1));
  }
  return cat(rows, hAxis);
});

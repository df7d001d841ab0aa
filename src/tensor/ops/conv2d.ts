// 2-D convolution over NCHW images (PyTorch's conv2d): stride, padding (numbers or 'same'/'valid'), dilation, groups
// and bias. Shapes and argument checks here; the backend's conv2d / conv2dBackward kernels do the arithmetic.

import { backend, type Conv2dShape, type FloatArray } from '../../backend/index.js';
import { defineOp, record } from '../autograd.js';
import { fmt } from '../shape.js';
import { allocFloatUninit } from '../storage.js';
import { Tensor } from '../tensor.js';
import { requireFloat } from './elementwise.js';

/** One number for both axes, or [height, width]. */
export type Size2 = number | readonly [number, number];

/** Options of conv2d: stride, padding (numbers, 'same' or 'valid'), dilation and groups. */
export interface Conv2dOptions {
  /** Step between output pixels (default 1). */
  stride?: Size2;
  /** Zeros added on each side (default 0); 'same' keeps the input size (stride 1 only), 'valid' adds none. */
  padding?: Size2 | 'same' | 'valid';
  /** Spacing between kernel taps (default 1). */
  dilation?: Size2;
  /** Channel groups: input and output channels split into this many independent convolutions (default 1). */
  groups?: number;
}

/** [h, w] from a Size2, each checked to be an integer of at least min. */
export function pair(v: Size2, name: string, op: string, min: number): [number, number] {
  const p: readonly number[] = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || p.some((d) => !Number.isInteger(d) || d < min)) {
    throw new Error(`${op}: ${name} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(v)}`);
  }
  return [p[0], p[1]];
}

/** Output length of a sliding window: floor((size + 2 pad - dilation (k - 1) - 1) / stride) + 1. */
export function slidingOut(size: number, k: number, stride: number, pad: number, dilation: number): number {
  return Math.floor((size + 2 * pad - dilation * (k - 1) - 1) / stride) + 1;
}

/** The kernel geometry of conv2d(x, weight, options), with every argument checked. */
function geometry(x: Tensor, weight: Tensor, bias: Tensor | null | undefined, options: Conv2dOptions): Conv2dShape {
  const op = 'conv2d';
  requireFloat(x, op);
  if (x.ndim !== 4) throw new Error(`conv2d: input must be 4-D (N, C, H, W), got shape ${fmt(x.shape)}`);
  if (weight.ndim !== 4) throw new Error(`conv2d: weight must be 4-D (out channels, in channels / groups, KH, KW), got shape ${fmt(weight.shape)}`);
  if (weight.dtype !== x.dtype) throw new Error(`conv2d: dtype mismatch, input ${x.dtype} and weight ${weight.dtype}`);
  const groups = options.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new Error(`conv2d: groups must be a positive integer, got ${groups}`);
  const [N, C, H, W] = x.shape;
  const [OC, Cg, KH, KW] = weight.shape;
  if (C % groups !== 0) throw new Error(`conv2d: groups (${groups}) must divide the input channels (${C})`);
  if (OC % groups !== 0) throw new Error(`conv2d: groups (${groups}) must divide the output channels (${OC})`);
  if (Cg * groups !== C) {
    throw new Error(`conv2d: input has ${C} channels but weight ${fmt(weight.shape)} with groups ${groups} expects ${Cg * groups}`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== OC)) throw new Error(`conv2d: bias must have shape [${OC}], got ${fmt(bias.shape)}`);
  if (bias && bias.dtype !== x.dtype) throw new Error(`conv2d: dtype mismatch, input ${x.dtype} and bias ${bias.dtype}`);
  const [strideH, strideW] = pair(options.stride ?? 1, 'stride', op, 1);
  const [dilationH, dilationW] = pair(options.dilation ?? 1, 'dilation', op, 1);
  const padding = options.padding ?? 0;
  let padH: number;
  let padW: number;
  let OH: number;
  let OW: number;
  if (padding === 'same') {
    if (strideH !== 1 || strideW !== 1) throw new Error(`conv2d: padding 'same' needs stride 1, got stride ${fmt([strideH, strideW])}`);
    // Total padding dilation * (k - 1), the odd one extra at the bottom/right (as PyTorch): OH = H, OW = W.
    padH = Math.floor((dilationH * (KH - 1)) / 2);
    padW = Math.floor((dilationW * (KW - 1)) / 2);
    OH = H;
    OW = W;
  } else {
    [padH, padW] = padding === 'valid' ? [0, 0] : pair(padding, 'padding', op, 0);
    OH = slidingOut(H, KH, strideH, padH, dilationH);
    OW = slidingOut(W, KW, strideW, padW, dilationW);
  }
  if (OH < 1 || OW < 1) {
    throw new Error(`conv2d: kernel ${fmt([KH, KW])} with dilation ${fmt([dilationH, dilationW])} is larger than the padded ` +
      `input ${fmt([H + 2 * padH, W + 2 * padW])}`);
  }
  return { N, C, H, W, OC, KH, KW, OH, OW, strideH, strideW, padH, padW, dilationH, dilationW, groups };
}

/**
 * 2-D convolution of x (N, C, H, W) with weight (OC, C / groups, KH, KW) plus bias (OC), as torch.nn.functional.conv2d.
 * `conv2d(x, w, b, { padding: 2 })` with x (64, 1, 28, 28), w (32, 1, 5, 5) gives (64, 32, 28, 28).
 */
export const conv2d = defineOp('conv2d', (x: Tensor, weight: Tensor, bias?: Tensor | null, options: Conv2dOptions = {}): Tensor => {
  const s = geometry(x, weight, bias, options);
  const out = allocFloatUninit(x.dtype, s.N * s.OC * s.OH * s.OW); // (N, OC, OH, OW), every element written
  const xs = x.storage as FloatArray;
  const ws = weight.storage as FloatArray;
  backend().conv2d(xs, ws, bias ? bias.storage as FloatArray : null, s, out);
  const y = new Tensor(out, [s.N, s.OC, s.OH, s.OW]);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record('conv2d', y, inputs, (g) => {
    const dx = x.requiresGrad ? allocFloatUninit(x.dtype, x.size) : null;
    const dw = weight.requiresGrad ? allocFloatUninit(x.dtype, weight.size) : null;
    const db = bias?.requiresGrad ? allocFloatUninit(x.dtype, bias.size) : null;
    backend().conv2dBackward(g.storage as FloatArray, xs, ws, s, dx, dw, db);
    const grads = [dx && new Tensor(dx, x.shape), dw && new Tensor(dw, weight.shape)];
    if (bias) grads.push(db && new Tensor(db, bias.shape));
    return grads;
  });
});

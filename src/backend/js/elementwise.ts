// Reference element-wise kernels: unary maps and their derivatives, broadcasting binary maps, where, expand.
// Loops switch on the op once per row, never per element, and allocate nothing.

import type { AnyArray, BinaryOp, FloatArray, UnaryOp } from '../backend.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** erf to about 1e-13 absolute: Taylor series near zero, a continued fraction for erfc in the tails. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 80; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return sum * (2 / Math.sqrt(Math.PI));
  }
  if (ax > 6) return x > 0 ? 1 : -1;
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) evaluated bottom-up.
  let f = ax;
  for (let n = 60; n >= 1; n--) f = ax + (n / 2) / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x > 0 ? 1 - erfc : erfc - 1;
}

export function unary(op: UnaryOp, x: FloatArray, out: FloatArray): void {
  const n = x.length;
  switch (op) {
    case 'neg': for (let i = 0; i < n; i++) out[i] = -x[i]; break;
    case 'exp': for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]); break;
    case 'log': for (let i = 0; i < n; i++) out[i] = Math.log(x[i]); break;
    case 'sqrt': for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]); break;
    case 'rsqrt': for (let i = 0; i < n; i++) out[i] = 1 / Math.sqrt(x[i]); break;
    case 'abs': for (let i = 0; i < n; i++) out[i] = Math.abs(x[i]); break;
    case 'sign': for (let i = 0; i < n; i++) out[i] = Math.sign(x[i]); break;
    case 'square': for (let i = 0; i < n; i++) out[i] = x[i] * x[i]; break;
    case 'reciprocal': for (let i = 0; i < n; i++) out[i] = 1 / x[i]; break;
    case 'tanh': for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]); break;
    case 'sigmoid': for (let i = 0; i < n; i++) out[i] = sigmoid(x[i]); break;
    case 'relu': for (let i = 0; i < n; i++) out[i] = x[i] > 0 ? x[i] : 0; break;
    case 'gelu': for (let i = 0; i < n; i++) out[i] = 0.5 * x[i] * (1 + erf(x[i] * INV_SQRT_2)); break;
    case 'gelu_tanh':
      for (let i = 0; i < n; i++) {
        const v = x[i];
        out[i] = 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));
      }
      break;
    case 'silu': for (let i = 0; i < n; i++) out[i] = x[i] * sigmoid(x[i]); break;
    case 'sin': for (let i = 0; i < n; i++) out[i] = Math.sin(x[i]); break;
    case 'cos': for (let i = 0; i < n; i++) out[i] = Math.cos(x[i]); break;
    default: throw new Error(`unary: unknown op '${op as string}'`);
  }
}

function sigmoid(v: number): number {
  // Two branches so exp never overflows.
  if (v >= 0) return 1 / (1 + Math.exp(-v));
  const e = Math.exp(v);
  return e / (1 + e);
}

export function unaryBackward(op: UnaryOp, x: FloatArray, y: FloatArray, dy: FloatArray, dx: FloatArray): void {
  const n = x.length;
  switch (op) {
    case 'neg': for (let i = 0; i < n; i++) dx[i] = -dy[i]; break;
    case 'exp': for (let i = 0; i < n; i++) dx[i] = dy[i] * y[i]; break;
    case 'log': for (let i = 0; i < n; i++) dx[i] = dy[i] / x[i]; break;
    case 'sqrt': for (let i = 0; i < n; i++) dx[i] = dy[i] * 0.5 / y[i]; break;
    case 'rsqrt': for (let i = 0; i < n; i++) dx[i] = dy[i] * -0.5 * y[i] * y[i] * y[i]; break;
    case 'abs': for (let i = 0; i < n; i++) dx[i] = dy[i] * Math.sign(x[i]); break;
    case 'sign': for (let i = 0; i < n; i++) dx[i] = 0; break;
    case 'square': for (let i = 0; i < n; i++) dx[i] = dy[i] * 2 * x[i]; break;
    case 'reciprocal': for (let i = 0; i < n; i++) dx[i] = -dy[i] * y[i] * y[i]; break;
    case 'tanh': for (let i = 0; i < n; i++) dx[i] = dy[i] * (1 - y[i] * y[i]); break;
    case 'sigmoid': for (let i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1 - y[i]); break;
    case 'relu': for (let i = 0; i < n; i++) dx[i] = x[i] > 0 ? dy[i] : 0; break;
    case 'gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i];
        const cdf = 0.5 * (1 + erf(v * INV_SQRT_2));
        dx[i] = dy[i] * (cdf + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
      }
      break;
    case 'gelu_tanh':
      for (let i = 0; i < n; i++) {
        const v = x[i];
        const inner = SQRT_2_OVER_PI * (v + 0.044715 * v * v * v);
        const t = Math.tanh(inner);
        const dinner = SQRT_2_OVER_PI * (1 + 3 * 0.044715 * v * v);
        dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * dinner);
      }
      break;
    case 'silu':
      for (let i = 0; i < n; i++) {
        const s = sigmoid(x[i]);
        dx[i] = dy[i] * s * (1 + x[i] * (1 - s));
      }
      break;
    case 'sin': for (let i = 0; i < n; i++) dx[i] = dy[i] * Math.cos(x[i]); break;
    case 'cos': for (let i = 0; i < n; i++) dx[i] = -dy[i] * Math.sin(x[i]); break;
    default: throw new Error(`unaryBackward: unknown op '${op as string}'`);
  }
}

export function clamp(x: FloatArray, lo: number, hi: number, out: FloatArray): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    out[i] = v < lo ? lo : v > hi ? hi : v;
  }
}

/** One output row of a binary op: out[oo + j] = a[ao + j * as] op b[bo + j * bs]. */
function binaryRow(op: BinaryOp, a: AnyArray, ao: number, as: number, b: AnyArray, bo: number, bs: number,
  out: AnyArray, oo: number, n: number): void {
  switch (op) {
    case 'add': for (let j = 0; j < n; j++) out[oo + j] = a[ao + j * as] + b[bo + j * bs]; break;
    case 'sub': for (let j = 0; j < n; j++) out[oo + j] = a[ao + j * as] - b[bo + j * bs]; break;
    case 'mul': for (let j = 0; j < n; j++) out[oo + j] = a[ao + j * as] * b[bo + j * bs]; break;
    case 'div': for (let j = 0; j < n; j++) out[oo + j] = a[ao + j * as] / b[bo + j * bs]; break;
    case 'pow': for (let j = 0; j < n; j++) out[oo + j] = Math.pow(a[ao + j * as], b[bo + j * bs]); break;
    case 'max': for (let j = 0; j < n; j++) out[oo + j] = maxNaN(a[ao + j * as], b[bo + j * bs]); break;
    case 'min': for (let j = 0; j < n; j++) out[oo + j] = minNaN(a[ao + j * as], b[bo + j * bs]); break;
    case 'eq': for (let j = 0; j < n; j++) out[oo + j] = a[ao + j * as] === b[bo + j * bs] ? 1 : 0; break;
    case 'ne': for (let j = 0; j < n; j++) out[oo + j] = a[ao + j * as] !== b[bo + j * bs] ? 1 : 0; break;
    case 'lt': for (let j = 0; j < n; j++) out[oo + j] = a[ao + j * as] < b[bo + j * bs] ? 1 : 0; break;
    case 'le': for (let j = 0; j < n; j++) out[oo + j] = a[ao + j * as] <= b[bo + j * bs] ? 1 : 0; break;
    case 'gt': for (let j = 0; j < n; j++) out[oo + j] = a[ao + j * as] > b[bo + j * bs] ? 1 : 0; break;
    case 'ge': for (let j = 0; j < n; j++) out[oo + j] = a[ao + j * as] >= b[bo + j * bs] ? 1 : 0; break;
    default: throw new Error(`binary: unknown op '${op as string}'`);
  }
}

// NaN propagates, as in torch.maximum / torch.minimum.
function maxNaN(x: number, y: number): number { return x > y || x !== x ? x : y; }
function minNaN(x: number, y: number): number { return x < y || x !== x ? x : y; }

/** Strides of a broadcast operand in the output's index space: 0 along broadcast dims. */
function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const strides = new Array<number>(outShape.length).fill(0);
  let s = 1;
  for (let d = outShape.length - 1; d >= 0; d--) {
    strides[d] = shape[d] === 1 && outShape[d] !== 1 ? 0 : s;
    s *= shape[d];
  }
  return strides;
}

/**
 * Walks the output row by row (last axis innermost) for any number of broadcast operands,
 * calling row(offsets, lastStrides, outOffset, n). Allocation is per call, not per element.
 */
function forEachRow(shapes: readonly (readonly number[])[], outShape: readonly number[],
  row: (offs: number[], lastStrides: number[], oo: number, n: number) => void): void {
  const rank = outShape.length;
  const total = outShape.reduce((p, d) => p * d, 1);
  if (total === 0) return;
  if (rank === 0) { row(shapes.map(() => 0), shapes.map(() => 0), 0, 1); return; }
  const strides = shapes.map((s) => broadcastStrides(s, outShape));
  const n = outShape[rank - 1];
  const last = strides.map((s) => s[rank - 1]);
  const idx = new Array<number>(rank - 1).fill(0);
  const offs = shapes.map(() => 0);
  for (let oo = 0; oo < total; oo += n) {
    row(offs, last, oo, n);
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      for (let k = 0; k < offs.length; k++) offs[k] += strides[k][d];
      if (idx[d] < outShape[d]) break;
      for (let k = 0; k < offs.length; k++) offs[k] -= strides[k][d] * outShape[d];
      idx[d] = 0;
    }
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function binary(op: BinaryOp, a: AnyArray, aShape: readonly number[], b: AnyArray, bShape: readonly number[],
  out: AnyArray, outShape: readonly number[]): void {
  const total = out.length;
  if (sameShape(aShape, outShape) && sameShape(bShape, outShape)) return binaryRow(op, a, 0, 1, b, 0, 1, out, 0, total);
  if (b.length === 1 && sameShape(aShape, outShape)) return binaryRow(op, a, 0, 1, b, 0, 0, out, 0, total);
  if (a.length === 1 && sameShape(bShape, outShape)) return binaryRow(op, a, 0, 0, b, 0, 1, out, 0, total);
  forEachRow([aShape, bShape], outShape, (offs, ls, oo, n) => binaryRow(op, a, offs[0], ls[0], b, offs[1], ls[1], out, oo, n));
}

export function where(cond: AnyArray, condShape: readonly number[], a: AnyArray, aShape: readonly number[],
  b: AnyArray, bShape: readonly number[], out: AnyArray, outShape: readonly number[]): void {
  forEachRow([condShape, aShape, bShape], outShape, (offs, ls, oo, n) => {
    for (let j = 0; j < n; j++) {
      out[oo + j] = cond[offs[0] + j * ls[0]] !== 0 ? a[offs[1] + j * ls[1]] : b[offs[2] + j * ls[2]];
    }
  });
}

export function expand(x: AnyArray, xShape: readonly number[], out: AnyArray, outShape: readonly number[]): void {
  forEachRow([xShape], outShape, (offs, ls, oo, n) => {
    const xo = offs[0];
    const s = ls[0];
    for (let j = 0; j < n; j++) out[oo + j] = x[xo + j * s];
  });
}

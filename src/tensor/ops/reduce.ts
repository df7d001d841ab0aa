// Reductions over any set of axes (sum, mean, max, min, var, std, logsumexp) and arg-max/arg-min.
// Contiguous axes reduce in one kernel call; scattered axes reduce one after another.

import { backend, type ReduceOp } from '../../backend/index.js';
import { defineOp, record } from '../autograd.js';
import { around, normAxes, normAxis, sizeOf } from '../shape.js';
import { alloc } from '../storage.js';
import { Tensor } from '../tensor.js';
import { add, div, eq, exp, log, mul, neg, requireFloat, sqrt, sub } from './elementwise.js';

/** Raw reduction with keepDim semantics: the output keeps reduced axes as size 1. */
function reduceRaw(op: ReduceOp, x: Tensor, axes: number[]): Tensor {
  let cur = x.storage;
  let shape = [...x.shape];
  // Merge runs of adjacent axes so each run is one (outer, dim, inner) call.
  const runs: [number, number][] = [];
  for (const a of axes) {
    const last = runs[runs.length - 1];
    if (last && last[1] === a - 1) last[1] = a;
    else runs.push([a, a]);
  }
  for (let r = runs.length - 1; r >= 0; r--) {
    const [from, to] = runs[r];
    const outer = sizeOf(shape.slice(0, from));
    const dim = sizeOf(shape.slice(from, to + 1));
    const inner = sizeOf(shape.slice(to + 1));
    const out = alloc(x.dtype, outer * inner);
    if (dim === 0 && op !== 'sum') throw new Error(`${op}: cannot reduce over an empty dimension`);
    backend().reduce(op, cur, outer, dim, inner, out);
    cur = out;
    for (let a = from; a <= to; a++) shape[a] = 1;
  }
  return new Tensor(cur, shape);
}

function finish(t: Tensor, x: Tensor, axes: number[], keepDim: boolean): Tensor {
  return keepDim ? t : t.reshape(x.shape.filter((_, i) => !axes.includes(i)));
}

/** Sum over dims (all when omitted); keepDim keeps them with size 1. */
export const sum = defineOp('sum', (x: Tensor, dims?: number | readonly number[], keepDim = false): Tensor => {
  const axes = normAxes(dims, x.ndim, 'sum');
  const kept = reduceRaw('sum', x, axes);
  const out = finish(kept, x, axes, keepDim);
  return record('sum', out, [x], (g) => [g.reshape(kept.shape).expand(x.shape)]);
});

/** Mean over dims (all when omitted); keepDim keeps them with size 1. */
export function mean(x: Tensor, dims?: number | readonly number[], keepDim = false): Tensor {
  requireFloat(x, 'mean');
  const axes = normAxes(dims, x.ndim, 'mean');
  const n = axes.reduce((p, a) => p * x.shape[a], 1);
  return div(sum(x, axes, keepDim), n);
}

function extreme(op: 'max' | 'min', x: Tensor, dims: number | readonly number[] | undefined, keepDim: boolean): Tensor {
  const axes = normAxes(dims, x.ndim, op);
  const kept = reduceRaw(op, x, axes);
  const out = finish(kept, x, axes, keepDim);
  // The gradient is shared equally among the elements that attain the extreme.
  return record(op, out, [x], (g) => {
    const mask = eq(x, kept.expand(x.shape));
    const count = mask.sum(axes, true);
    return [mul(g.reshape(kept.shape).expand(x.shape), div(mask, count))];
  });
}

/** Maximum over dims (all when omitted); keepDim keeps them with size 1. */
export const max = defineOp('max', (x: Tensor, dims?: number | readonly number[], keepDim = false): Tensor =>
  extreme('max', x, dims, keepDim));
/** Minimum over dims (all when omitted); keepDim keeps them with size 1. */
export const min = defineOp('min', (x: Tensor, dims?: number | readonly number[], keepDim = false): Tensor =>
  extreme('min', x, dims, keepDim));

/** Options of var and std. */
export interface VarOptions {
  /** Divide by n - 1 (Bessel's correction); default true, as in PyTorch. */
  unbiased?: boolean;
  /** Keep the reduced dimensions with size 1 (default false). */
  keepDim?: boolean;
}

/** Variance over dims (all when omitted); unbiased unless options say otherwise. */
export function variance(x: Tensor, dims?: number | readonly number[], options: VarOptions = {}): Tensor {
  requireFloat(x, 'var');
  const axes = normAxes(dims, x.ndim, 'var');
  const n = axes.reduce((p, a) => p * x.shape[a], 1);
  const d = sub(x, mean(x, axes, true));
  const correction = options.unbiased === false ? 0 : 1;
  return div(sum(mul(d, d), axes, options.keepDim ?? false), Math.max(n - correction, 0));
}

/** Standard deviation over dims (all when omitted); unbiased unless options say otherwise. */
export function std(x: Tensor, dims?: number | readonly number[], options: VarOptions = {}): Tensor {
  return sqrt(variance(x, dims, options));
}

/** log(sum(exp(x))) over one axis, stable for large values. */
export function logsumexp(x: Tensor, dim: number, keepDim = false): Tensor {
  requireFloat(x, 'logsumexp');
  const m = max(x, dim, true).detach();
  const out = add(log(sum(exp(sub(x, m)), dim, true)), m);
  return keepDim ? out : out.squeeze(normAxis(dim, x.ndim, 'logsumexp'));
}

function argExtreme(x: Tensor, dim: number | undefined, keepDim: boolean, negate: boolean): Tensor {
  const src = negate ? neg(x) : x;
  if (dim === undefined) {
    const out = new Int32Array(1);
    backend().argmax(src.storage, 1, x.size, 1, out);
    return new Tensor(out, keepDim ? x.shape.map(() => 1) : []);
  }
  const a = normAxis(dim, x.ndim, negate ? 'argmin' : 'argmax');
  const [outer, d, inner] = around(x.shape, a);
  if (d === 0) throw new Error(`${negate ? 'argmin' : 'argmax'}: cannot reduce over an empty dimension`);
  const out = new Int32Array(outer * inner);
  backend().argmax(src.storage, outer, d, inner, out);
  const shape = keepDim ? x.shape.map((s, i) => (i === a ? 1 : s)) : x.shape.filter((_, i) => i !== a);
  return new Tensor(out, shape);
}

/** Index of the largest value over dim (or over everything), as int32. */
export function argmax(x: Tensor, dim?: number, keepDim = false): Tensor { return argExtreme(x, dim, keepDim, false); }
/** Index of the smallest value over dim (or over everything), as int32. */
export function argmin(x: Tensor, dim?: number, keepDim = false): Tensor { return argExtreme(x, dim, keepDim, true); }

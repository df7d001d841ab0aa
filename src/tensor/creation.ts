// Tensor creation: from nested arrays or typed arrays, constant fills, ranges, and seeded random draws.

import type { AnyArray, DType } from '../backend/index.js';
import { defaultGenerator, type Generator } from './random.js';
import { fmt, sizeOf, type Shape } from './shape.js';
import { alloc, checkDType, dtypeOf } from './storage.js';
import { Tensor, type NestedArray } from './tensor.js';

/** Options of the tensor constructors. */
export interface CreateOptions {
  /** 'float32' (default), 'float64' or 'int32'. */
  dtype?: DType;
  /** Track gradients for this tensor (float dtypes only; default false). */
  requiresGrad?: boolean;
}

/** Options of the random constructors. */
export interface RandomOptions extends CreateOptions {
  /** The generator to draw from (default: the global one seeded by manualSeed). */
  generator?: Generator;
}

function checkShape(shape: Shape, op: string): number[] {
  if (!Array.isArray(shape)) throw new Error(`${op}: shape must be an array of sizes, got ${String(shape)}`);
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`${op}: shape ${fmt(shape)} has an invalid size ${d}`);
  }
  return [...shape];
}

function inferNested(data: NestedArray, op: string): { shape: number[]; flat: number[] } {
  const shape: number[] = [];
  let level: NestedArray = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0] ?? 0;
    if (shape[shape.length - 1] === 0) break;
  }
  const flat: number[] = [];
  const walk = (v: NestedArray, depth: number, path: string): void => {
    if (depth === shape.length) {
      if (typeof v !== 'number' && typeof v !== 'boolean') {
        throw new Error(`${op}: expected a number at ${path || 'the top level'}, got ${Array.isArray(v) ? 'an array' : typeof v}`);
      }
      flat.push(Number(v));
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw new Error(`${op}: ragged nested array: expected ${shape[depth]} elements at ${path || 'the top level'}, ` +
        `got ${Array.isArray(v) ? v.length : 'a number'}`);
    }
    v.forEach((e, i) => walk(e, depth + 1, `${path}[${i}]`));
  };
  walk(data, 0, '');
  return { shape, flat };
}

/**
 * A tensor from a number, nested arrays or a typed array (whose type sets the default dtype).
 * `kiln.tensor([[1, 2], [3, 4]])`, `kiln.tensor(new Float64Array(6), { shape: [2, 3] })`
 */
export function tensor(data: NestedArray | AnyArray | readonly number[], options: CreateOptions & { shape?: Shape } = {}): Tensor {
  let storage: AnyArray;
  let shape: number[];
  if (ArrayBuffer.isView(data)) {
    const dtype = options.dtype ? checkDType(options.dtype, 'tensor') : dtypeOf(data as AnyArray);
    storage = alloc(dtype, (data as AnyArray).length);
    if (dtype === 'int32' && !(data instanceof Int32Array)) {
      for (let i = 0; i < storage.length; i++) storage[i] = Math.trunc((data as AnyArray)[i]);
    } else storage.set(data as AnyArray);
    shape = options.shape ? checkShape(options.shape, 'tensor') : [storage.length];
  } else {
    const { shape: inferred, flat } = inferNested(data as NestedArray, 'tensor');
    const dtype = checkDType(options.dtype ?? 'float32', 'tensor');
    storage = alloc(dtype, flat.length);
    for (let i = 0; i < flat.length; i++) storage[i] = dtype === 'int32' ? Math.trunc(flat[i]) : flat[i];
    shape = options.shape ? checkShape(options.shape, 'tensor') : inferred;
  }
  if (sizeOf(shape) !== storage.length) {
    throw new Error(`tensor: ${storage.length} values do not fill shape ${fmt(shape)}`);
  }
  return new Tensor(storage, shape, options.requiresGrad ?? false);
}

/** A tensor of the given shape filled with value. */
export function full(shape: Shape, value: number, options: CreateOptions = {}): Tensor {
  const s = checkShape(shape, 'full');
  const storage = alloc(checkDType(options.dtype ?? 'float32', 'full'), sizeOf(s));
  if (value !== 0) storage.fill(value);
  return new Tensor(storage, s, options.requiresGrad ?? false);
}

/** A tensor of zeros. `zeros([2, 3])` */
export function zeros(shape: Shape, options: CreateOptions = {}): Tensor { return full(shape, 0, options); }
/** A tensor of ones. `ones([2, 3])` */
export function ones(shape: Shape, options: CreateOptions = {}): Tensor { return full(shape, 1, options); }
/** Zeros with t's shape and dtype. */
export function zerosLike(t: Tensor, options: CreateOptions = {}): Tensor { return full(t.shape, 0, { dtype: t.dtype, ...options }); }
/** Ones with t's shape and dtype. */
export function onesLike(t: Tensor, options: CreateOptions = {}): Tensor { return full(t.shape, 1, { dtype: t.dtype, ...options }); }
/** A tensor of `value` with t's shape and dtype. */
export function fullLike(t: Tensor, value: number, options: CreateOptions = {}): Tensor {
  return full(t.shape, value, { dtype: t.dtype, ...options });
}

/**
 * Values from start up to (not including) end by step. `arange(5)` is 0..4; int32 when all arguments are
 * integers and no dtype is given.
 */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  const [from, to] = end === undefined ? [0, start] : [start, end];
  if (step === 0 || !Number.isFinite(step)) throw new Error(`arange: step must be a nonzero finite number, got ${step}`);
  const n = Math.max(0, Math.ceil((to - from) / step));
  const allInt = [from, to, step].every(Number.isInteger);
  const dtype = checkDType(options.dtype ?? (allInt ? 'int32' : 'float32'), 'arange');
  const storage = alloc(dtype, n);
  for (let i = 0; i < n; i++) storage[i] = from + i * step;
  return new Tensor(storage, [n], options.requiresGrad ?? false);
}

/** steps values evenly spaced from start to end inclusive. */
export function linspace(start: number, end: number, steps: number, options: CreateOptions = {}): Tensor {
  if (!Number.isInteger(steps) || steps < 0) throw new Error(`linspace: steps must be a non-negative integer, got ${steps}`);
  const storage = alloc(checkDType(options.dtype ?? 'float32', 'linspace'), steps);
  for (let i = 0; i < steps; i++) storage[i] = steps === 1 ? start : start + ((end - start) * i) / (steps - 1);
  return new Tensor(storage, [steps], options.requiresGrad ?? false);
}

/** The n x m identity matrix (m defaults to n). */
export function eye(n: number, m = n, options: CreateOptions = {}): Tensor {
  const t = zeros([n, m], options);
  for (let i = 0; i < Math.min(n, m); i++) t.storage[i * m + i] = 1;
  return t;
}

/** Uniform draws in [0, 1) from the global generator (or options.generator). */
export function rand(shape: Shape, options: RandomOptions = {}): Tensor {
  const t = zeros(shape, options);
  const g = options.generator ?? defaultGenerator;
  for (let i = 0; i < t.size; i++) t.storage[i] = g.uniform();
  return t;
}

/** Standard normal draws from the global generator (or options.generator). */
export function randn(shape: Shape, options: RandomOptions = {}): Tensor {
  const t = zeros(shape, options);
  const g = options.generator ?? defaultGenerator;
  for (let i = 0; i < t.size; i++) t.storage[i] = g.normal();
  return t;
}

/** Integers uniform in [low, high), int32 by default. */
export function randint(low: number, high: number, shape: Shape, options: RandomOptions = {}): Tensor {
  if (!Number.isInteger(low) || !Number.isInteger(high) || high <= low) {
    throw new Error(`randint: need integers low < high, got ${low} and ${high}`);
  }
  const t = zeros(shape, { dtype: 'int32', ...options });
  const g = options.generator ?? defaultGenerator;
  for (let i = 0; i < t.size; i++) t.storage[i] = g.int(low, high);
  return t;
}

/** A random permutation of 0..n-1 (int32), from the global generator or options.generator. */
export function randperm(n: number, options: { generator?: Generator } = {}): Tensor {
  if (!Number.isInteger(n) || n < 0) throw new Error(`randperm: n must be a non-negative integer, got ${n}`);
  const g = options.generator ?? defaultGenerator;
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return new Tensor(g.shuffle(p), [n]);
}

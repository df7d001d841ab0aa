// Element-wise ops: unary maps, broadcasting arithmetic, comparisons, where, clamp, casts.
// Each op's forward and backward sit together; broadcasting gradients are summed back with sumTo.

import { backend, type BinaryOp, type DType, type FloatArray, type UnaryOp } from '../../backend/index.js';
import { defineOp, record } from '../autograd.js';
import { broadcastShapes, fmt, padShape, sizeOf, type Shape } from '../shape.js';
import { alloc, allocFloat, allocFloatUninit, allocUninit, isFloat } from '../storage.js';
import { Tensor, type TensorLike } from '../tensor.js';

export function requireFloat(x: Tensor, op: string): void {
  if (!isFloat(x.dtype)) {
    throw new Error(`${op}: expected a floating-point tensor, got ${x.dtype} (convert with .to('float32'))`);
  }
}

/** A number becomes a 0-d tensor of the other operand's dtype. */
export function asTensor(x: TensorLike, like: Tensor): Tensor {
  if (x instanceof Tensor) return x;
  if (typeof x !== 'number') throw new Error(`expected a Tensor or a number, got ${typeof x}`);
  const s = alloc(like.dtype, 1);
  s[0] = x;
  return new Tensor(s, []);
}

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Sums g over the axes that broadcasting expanded, giving a tensor of the given shape. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return (axes.length > 0 ? g.sum(axes, true) : g).reshape(shape);
}

// ---- unary ----

function unary(op: UnaryOp, x: Tensor): Tensor {
  requireFloat(x, op);
  const out = allocFloatUninit(x.dtype, x.size);
  backend().unary(op, x.storage as FloatArray, out);
  const y = new Tensor(out, x.shape);
  return record(op, y, [x], (g) => {
    const dx = allocFloatUninit(x.dtype, x.size);
    backend().unaryBackward(op, x.storage as FloatArray, out, g.storage as FloatArray, dx);
    return [new Tensor(dx, x.shape)];
  });
}

/** -x, element-wise. */
export const neg = defineOp('neg', (x: Tensor): Tensor => (isFloat(x.dtype) ? unary('neg', x) : mul(x, -1)));
/** e to the power of each element. */
export const exp = defineOp('exp', (x: Tensor): Tensor => unary('exp', x));
/** Natural logarithm of each element. */
export const log = defineOp('log', (x: Tensor): Tensor => unary('log', x));
/** Square root of each element. */
export const sqrt = defineOp('sqrt', (x: Tensor): Tensor => unary('sqrt', x));
/** 1 / sqrt(x) of each element. */
export const rsqrt = defineOp('rsqrt', (x: Tensor): Tensor => unary('rsqrt', x));
/** Absolute value of each element. */
export const abs = defineOp('abs', (x: Tensor): Tensor => unary('abs', x));
/** -1, 0 or 1 by the sign of each element. */
export const sign = defineOp('sign', (x: Tensor): Tensor => unary('sign', x));
/** Each element squared. */
export const square = defineOp('square', (x: Tensor): Tensor => unary('square', x));
/** 1 / x of each element. */
export const reciprocal = defineOp('reciprocal', (x: Tensor): Tensor => unary('reciprocal', x));
/** Sine of each element. */
export const sin = defineOp('sin', (x: Tensor): Tensor => unary('sin', x));
/** Cosine of each element. */
export const cos = defineOp('cos', (x: Tensor): Tensor => unary('cos', x));
/** Hyperbolic tangent of each element. */
export const tanh = defineOp('tanh', (x: Tensor): Tensor => unary('tanh', x));
/** 1 / (1 + exp(-x)) of each element. */
export const sigmoid = defineOp('sigmoid', (x: Tensor): Tensor => unary('sigmoid', x));
/** max(x, 0) of each element. */
export const relu = defineOp('relu', (x: Tensor): Tensor => unary('relu', x));
/** x * sigmoid(x) of each element (SiLU, swish). */
export const silu = defineOp('silu', (x: Tensor): Tensor => unary('silu', x));
/** GELU of each element; approximate 'tanh' is GPT-2's form, 'none' (default) the exact erf form. */
export const gelu = defineOp('gelu', (x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor => {
  if (approximate !== 'none' && approximate !== 'tanh') {
    throw new Error(`gelu: approximate must be 'none' or 'tanh', got '${String(approximate)}'`);
  }
  return unary(approximate === 'tanh' ? 'gelu_tanh' : 'gelu', x);
});

// ---- binary, with broadcasting ----

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, outDType?: DType): Tensor {
  if (a.dtype !== b.dtype) {
    throw new Error(`${op}: dtype mismatch, ${a.dtype} and ${b.dtype} (convert one with .to())`);
  }
  const shape = broadcastShapes(a.shape, b.shape, op);
  const out = allocUninit(outDType ?? a.dtype, sizeOf(shape)); // the kernel writes every element
  backend().binary(op, a.storage, padShape(a.shape, shape.length), b.storage, padShape(b.shape, shape.length), out, shape);
  return new Tensor(out, shape);
}

/** x + y, broadcasting. */
export const add = defineOp('add', (x: TensorLike, y: TensorLike): Tensor => {
  const [a, b] = operands(x, y);
  return record('add', binaryRaw('add', a, b), [a, b], (g) => [
    a.requiresGrad ? sumTo(g, a.shape) : null,
    b.requiresGrad ? sumTo(g, b.shape) : null,
  ]);
});

/** x - y, broadcasting. */
export const sub = defineOp('sub', (x: TensorLike, y: TensorLike): Tensor => {
  const [a, b] = operands(x, y);
  return record('sub', binaryRaw('sub', a, b), [a, b], (g) => [
    a.requiresGrad ? sumTo(g, a.shape) : null,
    b.requiresGrad ? sumTo(neg(g), b.shape) : null,
  ]);
});

/** x * y, element-wise, broadcasting. */
export const mul = defineOp('mul', (x: TensorLike, y: TensorLike): Tensor => {
  const [a, b] = operands(x, y);
  return record('mul', binaryRaw('mul', a, b), [a, b], (g) => [
    a.requiresGrad ? sumTo(mul(g, b), a.shape) : null,
    b.requiresGrad ? sumTo(mul(g, a), b.shape) : null,
  ]);
});

/** x / y, broadcasting. */
export const div = defineOp('div', (x: TensorLike, y: TensorLike): Tensor => {
  const [a, b] = operands(x, y);
  if (!isFloat(a.dtype)) throw new Error(`div: expected floating-point tensors, got ${a.dtype} (convert with .to('float32'))`);
  const out = binaryRaw('div', a, b);
  return record('div', out, [a, b], (g) => [
    a.requiresGrad ? sumTo(div(g, b), a.shape) : null,
    b.requiresGrad ? sumTo(neg(mul(g, div(out, b))), b.shape) : null,
  ]);
});

/** x raised to y, element-wise, broadcasting. */
export const pow = defineOp('pow', (x: TensorLike, y: TensorLike): Tensor => {
  const [a, b] = operands(x, y);
  requireFloat(a, 'pow');
  const out = binaryRaw('pow', a, b);
  return record('pow', out, [a, b], (g) => [
    a.requiresGrad ? sumTo(mul(g, mul(b, binaryRaw('pow', a, sub(b, 1)))), a.shape) : null,
    b.requiresGrad ? sumTo(mul(g, mul(out, log(a))), b.shape) : null,
  ]);
});

function minMax(op: 'max' | 'min', x: TensorLike, y: TensorLike): Tensor {
  const [a, b] = operands(x, y);
  const out = binaryRaw(op, a, b);
  // Ties split the gradient equally, as PyTorch does.
  return record(op === 'max' ? 'maximum' : 'minimum', out, [a, b], (g) => {
    const wins = (p: Tensor, q: Tensor): Tensor => {
      const strict = binaryRaw(op === 'max' ? 'gt' : 'lt', p, q);
      const tie = binaryRaw('eq', p, q);
      return add(strict, mul(tie, 0.5));
    };
    return [
      a.requiresGrad ? sumTo(mul(g, wins(a, b)), a.shape) : null,
      b.requiresGrad ? sumTo(mul(g, wins(b, a)), b.shape) : null,
    ];
  });
}

/** The element-wise larger of x and y, broadcasting. */
export const maximum = defineOp('maximum', (x: TensorLike, y: TensorLike): Tensor => minMax('max', x, y));
/** The element-wise smaller of x and y, broadcasting. */
export const minimum = defineOp('minimum', (x: TensorLike, y: TensorLike): Tensor => minMax('min', x, y));

function operands(x: TensorLike, y: TensorLike): [Tensor, Tensor] {
  if (x instanceof Tensor) return [x, asTensor(y, x)];
  if (y instanceof Tensor) return [asTensor(x, y), y];
  throw new Error('expected at least one Tensor operand, got two numbers');
}

// ---- comparisons: 1 or 0 in the operands' dtype, never differentiable ----

function compare(op: BinaryOp, x: TensorLike, y: TensorLike): Tensor {
  const [a, b] = operands(x, y);
  return binaryRaw(op, a, b);
}

/** 1 where x == y, else 0 (not differentiable). */
export const eq = (x: TensorLike, y: TensorLike): Tensor => compare('eq', x, y);
/** 1 where x != y, else 0 (not differentiable). */
export const ne = (x: TensorLike, y: TensorLike): Tensor => compare('ne', x, y);
/** 1 where x < y, else 0 (not differentiable). */
export const lt = (x: TensorLike, y: TensorLike): Tensor => compare('lt', x, y);
/** 1 where x <= y, else 0 (not differentiable). */
export const le = (x: TensorLike, y: TensorLike): Tensor => compare('le', x, y);
/** 1 where x > y, else 0 (not differentiable). */
export const gt = (x: TensorLike, y: TensorLike): Tensor => compare('gt', x, y);
/** 1 where x >= y, else 0 (not differentiable). */
export const ge = (x: TensorLike, y: TensorLike): Tensor => compare('ge', x, y);

/** Where cond is nonzero take a, else b; all three broadcast together. */
export const where = defineOp('where', (cond: Tensor, x: TensorLike, y: TensorLike): Tensor => {
  const [a, b] = operands(x, y);
  if (a.dtype !== b.dtype) throw new Error(`where: dtype mismatch, ${a.dtype} and ${b.dtype}`);
  const shape = broadcastShapes(broadcastShapes(cond.shape, a.shape, 'where'), b.shape, 'where');
  const out = alloc(a.dtype, sizeOf(shape));
  const r = shape.length;
  backend().where(cond.storage, padShape(cond.shape, r), a.storage, padShape(a.shape, r), b.storage,
    padShape(b.shape, r), out, shape);
  return record('where', new Tensor(out, shape), [a, b], (g) => {
    const zero = asTensor(0, g);
    return [
      a.requiresGrad ? sumTo(where(cond, g, zero), a.shape) : null,
      b.requiresGrad ? sumTo(where(cond, zero, g), b.shape) : null,
    ];
  });
});

/** Limits values to [min, max]; either bound may be omitted. The gradient passes where x is inside. */
export const clamp = defineOp('clamp', (x: Tensor, min?: number | null, max?: number | null): Tensor => {
  requireFloat(x, 'clamp');
  const lo = min ?? -Infinity;
  const hi = max ?? Infinity;
  if (lo > hi) throw new Error(`clamp: min ${lo} is greater than max ${hi}`);
  const out = allocFloat(x.dtype, x.size);
  backend().clamp(x.storage as FloatArray, lo, hi, out);
  return record('clamp', new Tensor(out, x.shape), [x], (g) => {
    const inside = mul(ge(x, lo), le(x, hi));
    return [mul(g, inside)];
  });
});

/** A copy (differentiable). */
export const clone = defineOp('clone', (x: Tensor): Tensor => {
  const out = x.storage.slice();
  return record('clone', new Tensor(out, x.shape), [x], (g) => [g]);
});

/** Converts dtype; float-to-float casts carry gradients back in the source dtype. */
export const cast = defineOp('cast', (x: Tensor, dtype: DType): Tensor => {
  if (dtype === x.dtype) return x;
  const out = alloc(dtype, x.size);
  if (out.length === 0 && x.size !== 0) throw new Error(`to: unknown dtype '${String(dtype)}'`);
  backend().copy(x.storage, out);
  const y = new Tensor(out, x.shape);
  if (!isFloat(dtype)) return y;
  return record('cast', y, [x], (g) => [cast(g, x.dtype)]);
});

/** Checks that two tensors have equal shapes; names the op and both shapes when not. */
export function assertSameShape(a: Tensor, b: Tensor, op: string): void {
  if (!sameShape(a.shape, b.shape)) throw new Error(`${op}: shapes ${fmt(a.shape)} and ${fmt(b.shape)} must be equal`);
}

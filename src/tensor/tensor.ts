// The Tensor: a shape, a dtype, a contiguous row-major typed array owned by the garbage collector, and the
// autograd fields. Methods are thin forwards to the op functions in ./ops/, where forward and backward live.

import type { AnyArray, DType, FloatArray } from '../backend/index.js';
import { type Node, markShared, runBackward, type BackwardOptions } from './autograd.js';
import { fmt, sizeOf, type Shape } from './shape.js';
import { copyOut, dtypeOf, isFloat } from './storage.js';
import * as ew from './ops/elementwise.js';
import * as red from './ops/reduce.js';
import * as mm from './ops/matmul.js';
import * as sh from './ops/shape-ops.js';
import * as nnops from './ops/nn-ops.js';
import { formatTensor } from './format.js';

export type Scalar = number;
/** A tensor, or a number that broadcasts as a 0-d tensor. */
export type TensorLike = Tensor | number;

/** An n-dimensional array of float32, float64 or int32 values with autograd. Make one with `tensor([[1, 2], [3, 4]])`, `zeros([2, 3])` or `randn([4])`. */
export class Tensor {
  /** The dimensions, outermost first. */
  readonly shape: readonly number[];
  readonly dtype: DType;
  /**
   * The flat row-major buffer. Shared by reshape views; read it with data() unless you mean to write in place
   * (optimizers do).
   */
  readonly storage: AnyArray;
  /** Whether gradients flow to this tensor; set on parameters, propagated to op outputs. */
  requiresGrad = false;
  /** The accumulated gradient of a leaf after backward(). */
  grad: Tensor | null = null;
  /** The op that produced this tensor, while the graph is alive. */
  node: Node | null = null;

  constructor(storage: AnyArray, shape: Shape, requiresGrad = false) {
    if (storage.length !== sizeOf(shape)) {
      throw new Error(`Tensor: storage has ${storage.length} elements but shape ${fmt(shape)} needs ${sizeOf(shape)}`);
    }
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtypeOf(storage);
    if (requiresGrad) this.requiresGrad_(true);
  }

  /** Number of dimensions (0 for a scalar). */
  get ndim(): number { return this.shape.length; }
  /** Number of elements. */
  get size(): number { return this.storage.length; }
  /** True for tensors no op produced (parameters, inputs). */
  get isLeaf(): boolean { return this.node === null; }

  // ---- reading: the one place where values leave the backend ----

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item: expected a tensor with one element, got shape ${fmt(this.shape)}`);
    return this.storage[0];
  }

  /** A flat copy of the values. */
  data(): AnyArray { return copyOut(this.storage); }

  /** The values as nested arrays (a number for a 0-d tensor). */
  toArray(): NestedArray {
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === this.shape.length) return this.storage[offset];
      const stride = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  /**
   * The values as nested arrays of numbers by shape, as PyTorch's tolist(): a number for a 0-d tensor, number[]
   * for 1-d, number[][] for 2-d, and so on. The rank is not part of Tensor's type, so name the type you expect,
   * `x.tolist<number[][]>()`; that type argument is your claim, not checked.
   */
  tolist<T extends NestedArray = NestedArray>(): T {
    return this.toArray() as T;
  }

  /** The values printed as PyTorch prints them, with shape and dtype. */
  toString(): string { return formatTensor(this); }
  [Symbol.for('nodejs.util.inspect.custom')](): string { return this.toString(); }

  // ---- autograd ----

  /** Sets requiresGrad in place (floating-point tensors only) and returns this. */
  requiresGrad_(flag = true): this {
    if (flag && !isFloat(this.dtype)) {
      throw new Error(`requiresGrad_: only floating-point tensors can require gradients, got ${this.dtype}`);
    }
    this.requiresGrad = flag;
    return this;
  }

  /** A tensor sharing this one's storage, cut off from the graph. */
  detach(): Tensor {
    const view = new Tensor(this.storage, this.shape);
    markShared(this, view);
    return view;
  }

  /** A copy of the values (differentiable). */
  clone(): Tensor { return ew.clone(this); }

  /**
   * Backpropagates from this tensor. Without a gradient it must hold one element (a loss).
   * `loss.backward(); w.grad`
   */
  backward(gradient?: Tensor, options?: BackwardOptions): void {
    if (!this.requiresGrad) {
      throw new Error('backward: this tensor does not require grad; no input of the computation had requiresGrad set ' +
        '(or it was computed inside noGrad, or from frozen parameters)');
    }
    let g = gradient;
    if (!g) {
      if (this.size !== 1) {
        throw new Error(`backward: the tensor has shape ${fmt(this.shape)}; backward without a gradient needs a ` +
          'single-element tensor (reduce it first, e.g. .sum() or .mean(), or pass a gradient of the same shape)');
      }
      const ones = this.storage.slice() as FloatArray;
      ones.fill(1);
      g = new Tensor(ones, this.shape);
    } else if (g.shape.length !== this.shape.length || g.shape.some((d, i) => d !== this.shape[i])) {
      throw new Error(`backward: gradient shape ${fmt(g.shape)} does not match the tensor's shape ${fmt(this.shape)}`);
    }
    runBackward(this, g, options);
  }

  // ---- conversion ----

  /** The tensor in another dtype (differentiable between float dtypes). */
  to(dtype: DType): Tensor { return ew.cast(this, dtype); }
  /** The values as float32 (this tensor itself when it is float32 already). */
  float(): Tensor { return this.to('float32'); }
  /** The values as float64 (this tensor itself when it is float64 already). */
  double(): Tensor { return this.to('float64'); }
  /** The values as int32, floats truncated toward zero (this tensor itself when it is int32 already). */
  int(): Tensor { return this.to('int32'); }

  // ---- element-wise ----

  /** this + other, broadcasting. */
  add(other: TensorLike): Tensor { return ew.add(this, other); }
  /** this - other, broadcasting. */
  sub(other: TensorLike): Tensor { return ew.sub(this, other); }
  /** this * other, element-wise, broadcasting. */
  mul(other: TensorLike): Tensor { return ew.mul(this, other); }
  /** this / other, broadcasting. */
  div(other: TensorLike): Tensor { return ew.div(this, other); }
  /** this raised to exponent, element-wise. */
  pow(exponent: TensorLike): Tensor { return ew.pow(this, exponent); }
  /** The element-wise larger of this and other. */
  maximum(other: TensorLike): Tensor { return ew.maximum(this, other); }
  /** The element-wise smaller of this and other. */
  minimum(other: TensorLike): Tensor { return ew.minimum(this, other); }
  /** -this. */
  neg(): Tensor { return ew.neg(this); }
  /** e to the power of each element. */
  exp(): Tensor { return ew.exp(this); }
  /** Natural logarithm of each element. */
  log(): Tensor { return ew.log(this); }
  /** Square root of each element. */
  sqrt(): Tensor { return ew.sqrt(this); }
  /** 1 / sqrt of each element. */
  rsqrt(): Tensor { return ew.rsqrt(this); }
  /** Absolute value of each element. */
  abs(): Tensor { return ew.abs(this); }
  /** -1, 0 or 1 by the sign of each element. */
  sign(): Tensor { return ew.sign(this); }
  /** Each element squared. */
  square(): Tensor { return ew.square(this); }
  /** 1 / each element. */
  reciprocal(): Tensor { return ew.reciprocal(this); }
  /** Sine of each element. */
  sin(): Tensor { return ew.sin(this); }
  /** Cosine of each element. */
  cos(): Tensor { return ew.cos(this); }
  /** Hyperbolic tangent of each element. */
  tanh(): Tensor { return ew.tanh(this); }
  /** 1 / (1 + exp(-x)) of each element. */
  sigmoid(): Tensor { return ew.sigmoid(this); }
  /** max(x, 0) of each element. */
  relu(): Tensor { return ew.relu(this); }
  /** GELU; approximate 'tanh' is GPT-2's form, 'none' (default) the exact erf form. */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return ew.gelu(this, approximate); }
  /** x * sigmoid(x) of each element (SiLU, swish). */
  silu(): Tensor { return ew.silu(this); }
  /** Each element limited to [min, max]; a null or missing bound is not applied. */
  clamp(min?: number | null, max?: number | null): Tensor { return ew.clamp(this, min, max); }
  /** 1 where this == other, else 0, in the operands' dtype. */
  eq(other: TensorLike): Tensor { return ew.eq(this, other); }
  /** 1 where this != other, else 0. */
  ne(other: TensorLike): Tensor { return ew.ne(this, other); }
  /** 1 where this < other, else 0. */
  lt(other: TensorLike): Tensor { return ew.lt(this, other); }
  /** 1 where this <= other, else 0. */
  le(other: TensorLike): Tensor { return ew.le(this, other); }
  /** 1 where this > other, else 0. */
  gt(other: TensorLike): Tensor { return ew.gt(this, other); }
  /** 1 where this >= other, else 0. */
  ge(other: TensorLike): Tensor { return ew.ge(this, other); }
  /** Element-wise choice: where this is nonzero take a, else b. */
  where(a: TensorLike, b: TensorLike): Tensor { return ew.where(this, a, b); }

  // ---- reductions ----

  /** Sum over dims (all when omitted); keepDim keeps them with size 1. */
  sum(dims?: number | readonly number[], keepDim = false): Tensor { return red.sum(this, dims, keepDim); }
  /** Mean over dims (all when omitted); keepDim keeps them with size 1. */
  mean(dims?: number | readonly number[], keepDim = false): Tensor { return red.mean(this, dims, keepDim); }
  /** Maximum over dims (all when omitted); keepDim keeps them with size 1. */
  max(dims?: number | readonly number[], keepDim = false): Tensor { return red.max(this, dims, keepDim); }
  /** Minimum over dims (all when omitted); keepDim keeps them with size 1. */
  min(dims?: number | readonly number[], keepDim = false): Tensor { return red.min(this, dims, keepDim); }
  /** Variance; unbiased (divides by n - 1) unless told otherwise. */
  var(dims?: number | readonly number[], options: red.VarOptions = {}): Tensor { return red.variance(this, dims, options); }
  /** Standard deviation; unbiased (divides by n - 1) unless told otherwise. */
  std(dims?: number | readonly number[], options: red.VarOptions = {}): Tensor { return red.std(this, dims, options); }
  /** log(sum(exp(x))) over dim, computed stably. */
  logsumexp(dim: number, keepDim = false): Tensor { return red.logsumexp(this, dim, keepDim); }
  /** Indices (int32) of the largest values over dim, or of the whole flattened tensor. */
  argmax(dim?: number, keepDim = false): Tensor { return red.argmax(this, dim, keepDim); }
  /** Indices (int32) of the smallest values over dim, or of the whole flattened tensor. */
  argmin(dim?: number, keepDim = false): Tensor { return red.argmin(this, dim, keepDim); }

  // ---- linear algebra ----

  /** Matrix product with PyTorch's rules (1-d vectors, batched and broadcast leading dimensions). */
  matmul(other: Tensor): Tensor { return mm.matmul(this, other); }

  // ---- shape ----

  /** The same values in a new shape (one dimension may be -1); shares storage. */
  reshape(shape: readonly number[]): Tensor { return sh.reshape(this, shape); }
  /** The same as reshape (tensors are always contiguous). */
  view(shape: readonly number[]): Tensor { return sh.reshape(this, shape); }
  /** Dimensions startDim..endDim merged into one. */
  flatten(startDim = 0, endDim = -1): Tensor { return sh.flatten(this, startDim, endDim); }
  /** Dimensions dim0 and dim1 swapped (a copy). */
  transpose(dim0 = 0, dim1 = 1): Tensor { return sh.transpose(this, dim0, dim1); }
  /** 2-D transpose. */
  get T(): Tensor { return sh.transpose(this, 0, 1); }
  /** Dimensions reordered (a copy): result dimension i is this tensor's dims[i]. */
  permute(dims: readonly number[]): Tensor { return sh.permute(this, dims); }
  /** Size-1 dimensions removed (only dim, when given). */
  squeeze(dim?: number): Tensor { return sh.squeeze(this, dim); }
  /** A size-1 dimension inserted at dim. */
  unsqueeze(dim: number): Tensor { return sh.unsqueeze(this, dim); }
  /** Size-1 dimensions broadcast to shape (-1 keeps a dimension). */
  expand(shape: readonly number[]): Tensor { return sh.expand(this, shape); }
  /** length elements from start along dim. */
  narrow(dim: number, start: number, length: number): Tensor { return sh.narrow(this, dim, start, length); }
  /** Elements start..end (end exclusive, negatives count from the end) along dim. */
  slice(dim: number, start: number, end?: number): Tensor { return sh.slice(this, dim, start, end); }
  /** Pieces of size elements along dim (the last may be smaller). */
  split(size: number, dim = 0): Tensor[] { return sh.split(this, size, dim); }
  /** Up to `chunks` pieces along dim of ceil(size / chunks) elements each (the last may be smaller), as torch.chunk. */
  chunk(chunks: number, dim = 0): Tensor[] { return sh.chunk(this, chunks, dim); }
  /** The entries at index (int32, 1-d) along dim. */
  indexSelect(dim: number, index: Tensor): Tensor { return sh.indexSelect(this, dim, index); }
  /** Values picked along dim by index (int32, the same rank), as torch.gather. */
  gather(dim: number, index: Tensor): Tensor { return sh.gather(this, dim, index); }

  // ---- neural-network functions ----

  /** Softmax over dim (default the last). */
  softmax(dim = -1): Tensor { return nnops.softmax(this, dim); }
  /** Log of the softmax over dim (default the last), computed stably. */
  logSoftmax(dim = -1): Tensor { return nnops.logSoftmax(this, dim); }
}

/** A number, or nested arrays of numbers (the rows of a tensor). */
export type NestedArray = number | NestedArray[];

/** Whether x is a Tensor. */
export function isTensor(x: unknown): x is Tensor { return x instanceof Tensor; }

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
export type TensorLike = Tensor | number;

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
  float(): Tensor { return this.to('float32'); }
  double(): Tensor { return this.to('float64'); }
  int(): Tensor { return this.to('int32'); }

  // ---- element-wise ----

  add(other: TensorLike): Tensor { return ew.add(this, other); }
  sub(other: TensorLike): Tensor { return ew.sub(this, other); }
  mul(other: TensorLike): Tensor { return ew.mul(this, other); }
  div(other: TensorLike): Tensor { return ew.div(this, other); }
  pow(exponent: TensorLike): Tensor { return ew.pow(this, exponent); }
  maximum(other: TensorLike): Tensor { return ew.maximum(this, other); }
  minimum(other: TensorLike): Tensor { return ew.minimum(this, other); }
  neg(): Tensor { return ew.neg(this); }
  exp(): Tensor { return ew.exp(this); }
  log(): Tensor { return ew.log(this); }
  sqrt(): Tensor { return ew.sqrt(this); }
  rsqrt(): Tensor { return ew.rsqrt(this); }
  abs(): Tensor { return ew.abs(this); }
  sign(): Tensor { return ew.sign(this); }
  square(): Tensor { return ew.square(this); }
  reciprocal(): Tensor { return ew.reciprocal(this); }
  sin(): Tensor { return ew.sin(this); }
  cos(): Tensor { return ew.cos(this); }
  tanh(): Tensor { return ew.tanh(this); }
  sigmoid(): Tensor { return ew.sigmoid(this); }
  relu(): Tensor { return ew.relu(this); }
  /** GELU; approximate 'tanh' is GPT-2's form, 'none' (default) the exact erf form. */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return ew.gelu(this, approximate); }
  silu(): Tensor { return ew.silu(this); }
  clamp(min?: number | null, max?: number | null): Tensor { return ew.clamp(this, min, max); }
  eq(other: TensorLike): Tensor { return ew.eq(this, other); }
  ne(other: TensorLike): Tensor { return ew.ne(this, other); }
  lt(other: TensorLike): Tensor { return ew.lt(this, other); }
  le(other: TensorLike): Tensor { return ew.le(this, other); }
  gt(other: TensorLike): Tensor { return ew.gt(this, other); }
  ge(other: TensorLike): Tensor { return ew.ge(this, other); }
  /** Element-wise choice: where this is nonzero take a, else b. */
  where(a: TensorLike, b: TensorLike): Tensor { return ew.where(this, a, b); }

  // ---- reductions ----

  sum(dims?: number | readonly number[], keepDim = false): Tensor { return red.sum(this, dims, keepDim); }
  mean(dims?: number | readonly number[], keepDim = false): Tensor { return red.mean(this, dims, keepDim); }
  max(dims?: number | readonly number[], keepDim = false): Tensor { return red.max(this, dims, keepDim); }
  min(dims?: number | readonly number[], keepDim = false): Tensor { return red.min(this, dims, keepDim); }
  /** Variance; unbiased (divides by n - 1) unless told otherwise. */
  var(dims?: number | readonly number[], options: red.VarOptions = {}): Tensor { return red.variance(this, dims, options); }
  std(dims?: number | readonly number[], options: red.VarOptions = {}): Tensor { return red.std(this, dims, options); }
  logsumexp(dim: number, keepDim = false): Tensor { return red.logsumexp(this, dim, keepDim); }
  argmax(dim?: number, keepDim = false): Tensor { return red.argmax(this, dim, keepDim); }
  argmin(dim?: number, keepDim = false): Tensor { return red.argmin(this, dim, keepDim); }

  // ---- linear algebra ----

  matmul(other: Tensor): Tensor { return mm.matmul(this, other); }

  // ---- shape ----

  reshape(shape: readonly number[]): Tensor { return sh.reshape(this, shape); }
  view(shape: readonly number[]): Tensor { return sh.reshape(this, shape); }
  flatten(startDim = 0, endDim = -1): Tensor { return sh.flatten(this, startDim, endDim); }
  transpose(dim0 = 0, dim1 = 1): Tensor { return sh.transpose(this, dim0, dim1); }
  /** 2-D transpose. */
  get T(): Tensor { return sh.transpose(this, 0, 1); }
  permute(dims: readonly number[]): Tensor { return sh.permute(this, dims); }
  squeeze(dim?: number): Tensor { return sh.squeeze(this, dim); }
  unsqueeze(dim: number): Tensor { return sh.unsqueeze(this, dim); }
  expand(shape: readonly number[]): Tensor { return sh.expand(this, shape); }
  narrow(dim: number, start: number, length: number): Tensor { return sh.narrow(this, dim, start, length); }
  /** Elements start..end (end exclusive, negatives count from the end) along dim. */
  slice(dim: number, start: number, end?: number): Tensor { return sh.slice(this, dim, start, end); }
  split(size: number, dim = 0): Tensor[] { return sh.split(this, size, dim); }
  chunk(chunks: number, dim = 0): Tensor[] { return sh.chunk(this, chunks, dim); }
  indexSelect(dim: number, index: Tensor): Tensor { return sh.indexSelect(this, dim, index); }
  gather(dim: number, index: Tensor): Tensor { return sh.gather(this, dim, index); }

  // ---- neural-network functions ----

  softmax(dim = -1): Tensor { return nnops.softmax(this, dim); }
  logSoftmax(dim = -1): Tensor { return nnops.logSoftmax(this, dim); }
}

export type NestedArray = number | NestedArray[];

export function isTensor(x: unknown): x is Tensor { return x instanceof Tensor; }

// Map-style datasets: a length and get(i). From tensors (rows of equal-length tensors), from arrays, from a
// function, and Subset (a view through an index list, as the train/validation split makes).

import { Tensor } from '../tensor/index.js';

/** A map-style dataset: `length` items, item i from get(i). getBatch, when present, gathers many at once. */
export interface Dataset<T = unknown> {
  readonly length: number;
  /** Item `index` (0 <= index < length). */
  get(index: number): T;
  /** Optional fast path: the collated batch of these items (DataLoader uses it when no collate is given). */
  getBatch?(indices: readonly number[]): unknown;
}

function checkIndex(i: number, length: number, what: string): void {
  if (!Number.isInteger(i) || i < 0 || i >= length) {
    throw new Error(`${what}: index ${i} is out of range for a dataset of ${length} items`);
  }
}

/** Copies rows `indices` of t (first dimension) into a new tensor. */
export function takeRows(t: Tensor, indices: readonly number[]): Tensor {
  const rowSize = t.shape.length === 0 ? 1 : t.size / Math.max(t.shape[0], 1);
  const out = new (t.storage.constructor as new (n: number) => typeof t.storage)(indices.length * rowSize);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    if (rowSize === 1) out[k] = t.storage[i];
    else out.set(t.storage.subarray(i * rowSize, (i + 1) * rowSize), k * rowSize);
  }
  return new Tensor(out, [indices.length, ...t.shape.slice(1)]);
}

/**
 * Rows of one or more tensors that share their first dimension; item i is [x[i], y[i], ...]. Typed by its
 * tensors: `new TensorDataset(images, labels)` is a `TensorDataset<[Tensor, Tensor]>`, so a DataLoader over it
 * yields `[Tensor, Tensor]` batches and `for (const [x, y] of loader)` type-checks.
 * `new TensorDataset(images, labels)` with images (N, 784) and labels (N,)
 */
export class TensorDataset<T extends Tensor[] = Tensor[]> implements Dataset<T> {
  /** The tensors, in the order given. */
  readonly tensors: T;
  /** Rows: the shared first dimension. */
  readonly length: number;

  constructor(...tensors: T) {
    if (tensors.length === 0) throw new Error('TensorDataset: needs at least one tensor');
    tensors.forEach((t, i) => {
      if (!(t instanceof Tensor)) throw new Error(`TensorDataset: argument ${i} is not a Tensor`);
      if (t.ndim === 0) throw new Error(`TensorDataset: tensor ${i} is 0-d; each tensor needs a first (sample) dimension`);
    });
    const n = tensors[0]!.shape[0]!;
    tensors.forEach((t, i) => {
      if (t.shape[0] !== n) {
        throw new Error(`TensorDataset: tensor ${i} has ${t.shape[0]} rows but tensor 0 has ${n}; all must share the first dimension`);
      }
    });
    this.tensors = tensors;
    this.length = n;
  }

  /** Row `index` of every tensor: [x[index], y[index], ...]. */
  get(index: number): T {
    checkIndex(index, this.length, 'TensorDataset.get');
    return this.tensors.map((t) => takeRows(t, [index]).reshape(t.shape.slice(1))) as T;
  }

  /** The rows of every tensor at once, stacked: [x[indices], y[indices], ...]. */
  getBatch(indices: readonly number[]): T {
    for (const i of indices) checkIndex(i, this.length, 'TensorDataset.getBatch');
    return this.tensors.map((t) => takeRows(t, indices)) as T;
  }
}

/** A dataset over a JavaScript array (any item type). `new ArrayDataset([{ text: 'a', label: 0 }])` */
export class ArrayDataset<T> implements Dataset<T> {
  constructor(readonly items: readonly T[]) {
    if (!Array.isArray(items)) throw new Error('ArrayDataset: expected an array of items');
  }

  /** Number of items. */
  get length(): number { return this.items.length; }

  /** Item `index` (0 <= index < length). */
  get(index: number): T {
    checkIndex(index, this.items.length, 'ArrayDataset.get');
    return this.items[index];
  }
}

/** A dataset whose item i is fn(i), computed on demand. `fromFunction(1000, (i) => [x(i), y(i)])` */
export function fromFunction<T>(length: number, fn: (index: number) => T): Dataset<T> {
  if (!Number.isInteger(length) || length < 0) throw new Error(`fromFunction: length must be a non-negative integer, got ${length}`);
  if (typeof fn !== 'function') throw new Error('fromFunction: expected a function from index to item');
  return {
    length,
    get(index: number): T {
      checkIndex(index, length, 'fromFunction dataset');
      return fn(index);
    },
  };
}

/** The items of a dataset at the given indices, in that order. */
export class Subset<T> implements Dataset<T> {
  readonly indices: readonly number[];

  constructor(readonly dataset: Dataset<T>, indices: readonly number[]) {
    for (const i of indices) checkIndex(i, dataset.length, 'Subset');
    this.indices = [...indices];
    if (dataset.getBatch) {
      this.getBatch = (idx) => dataset.getBatch!(idx.map((i) => {
        checkIndex(i, this.indices.length, 'Subset.getBatch');
        return this.indices[i];
      }));
    }
  }

  /** Number of items. */
  get length(): number { return this.indices.length; }

  /** Item `index` (0 <= index < length). */
  get(index: number): T {
    checkIndex(index, this.indices.length, 'Subset.get');
    return this.dataset.get(this.indices[index]);
  }

  getBatch?: (indices: readonly number[]) => unknown;
}

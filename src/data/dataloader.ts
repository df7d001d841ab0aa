// DataLoader: batches from a map-style dataset with a seeded shuffle per epoch. The order of epoch e depends
// only on (seed, e), and the loader's state is just { epoch, position }, so training resumes mid-epoch exactly.

import { Generator as RandomGenerator, stack, tensor, Tensor } from '../tensor/index.js';
import type { Dataset } from './dataset.js';

/** Options of DataLoader. */
export interface DataLoaderOptions<T, B> {
  /** Items per batch (default 1). */
  batchSize?: number;
  /** A new seeded random order each epoch (default false: dataset order). */
  shuffle?: boolean;
  /** Seed of the shuffles (default 0); epoch e uses a stream derived from (seed, e). */
  seed?: number;
  /** Drop the last batch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /** Turns a list of items into a batch (default: defaultCollate, or the dataset's getBatch when it has one). */
  collate?: (items: T[]) => B;
}

/** The batch type defaultCollate makes from items of type T (tensors and numbers become tensors). */
export type Collated<T> = T extends Tensor | number ? Tensor
  : T extends readonly unknown[] ? { [K in keyof T]: Collated<T[K]> }
  : T extends object ? { [K in keyof T]: Collated<T[K]> } : T;

/** The resumable position of a DataLoader. */
export interface DataLoaderState { epoch: number; position: number; datasetLength: number; batchSize: number; seed: number; shuffle: boolean; dropLast: boolean }

/**
 * Stacks items into a batch: tensors are stacked along a new first dimension, numbers become a tensor (int32
 * when all are integers, else float32), arrays and plain objects are collated position by position / key by key.
 */
export function defaultCollate(items: unknown[]): unknown {
  if (items.length === 0) throw new Error('defaultCollate: cannot collate an empty list of items');
  const first = items[0];
  if (first instanceof Tensor) {
    items.forEach((t, i) => {
      if (!(t instanceof Tensor)) throw new Error(`defaultCollate: item ${i} is not a Tensor while item 0 is`);
    });
    return stack(items as Tensor[], 0);
  }
  if (typeof first === 'number') {
    const nums = items as number[];
    if (!nums.every((v) => typeof v === 'number')) throw new Error('defaultCollate: items mix numbers with other values');
    return tensor(nums, { dtype: nums.every(Number.isInteger) ? 'int32' : 'float32' });
  }
  if (Array.isArray(first)) {
    return first.map((_, k) => defaultCollate(items.map((it, i) => {
      if (!Array.isArray(it) || it.length !== first.length) throw new Error(`defaultCollate: item ${i} is not an array of ${first.length} fields`);
      return it[k];
    })));
  }
  if (typeof first === 'object' && first !== null) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(first)) out[key] = defaultCollate(items.map((it) => (it as Record<string, unknown>)[key]));
    return out;
  }
  return items;
}

function epochSeed(seed: number, epoch: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.floor(seed / 2 ** 32);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) ^ Math.imul(epoch + 1, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  return (h ^ (h >>> 15)) >>> 0;
}

/**
 * Batches over a dataset. Iterate it for one epoch (`for (const [x, y] of loader)`), or call next() repeatedly:
 * it returns undefined once at the end of each epoch and then starts the next one.
 * `new DataLoader(new TensorDataset(x, y), { batchSize: 128, shuffle: true, seed: 1 })`
 */
export class DataLoader<T = unknown, B = Collated<T>> implements Iterable<B> {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  private collate?: (items: T[]) => B;
  /** The epoch next() reads from. */
  epoch = 0;
  /** Batches of the current epoch already returned by next(). */
  position = 0;
  private orderCache: { epoch: number; order: number[] } | null = null;

  constructor(readonly dataset: Dataset<T>, options: DataLoaderOptions<T, B> = {}) {
    if (!dataset || typeof dataset.get !== 'function' || !Number.isInteger(dataset.length)) {
      throw new Error('DataLoader: expected a dataset with a length and get(index)');
    }
    const { batchSize = 1, shuffle = false, seed = 0, dropLast = false, collate } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isSafeInteger(seed)) throw new Error(`DataLoader: seed must be a safe integer, got ${seed}`);
    this.batchSize = batchSize;
    this.shuffle = shuffle;
    this.seed = seed;
    this.dropLast = dropLast;
    this.collate = collate;
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The item order of an epoch (a seeded permutation when shuffling). */
  order(epoch: number): number[] {
    if (this.orderCache?.epoch === epoch) return this.orderCache.order;
    const n = this.dataset.length;
    const order = Array.from({ length: n }, (_, i) => i);
    if (this.shuffle) new RandomGenerator(epochSeed(this.seed, epoch)).shuffle(order);
    this.orderCache = { epoch, order };
    return order;
  }

  /** Batch b of an epoch. */
  batch(epoch: number, b: number): B {
    if (!Number.isInteger(b) || b < 0 || b >= this.length) throw new Error(`DataLoader.batch: batch ${b} is out of range (0..${this.length - 1})`);
    const idx = this.order(epoch).slice(b * this.batchSize, (b + 1) * this.batchSize);
    if (!this.collate && this.dataset.getBatch) return this.dataset.getBatch(idx) as B;
    const items = idx.map((i) => this.dataset.get(i));
    return this.collate ? this.collate(items) : (defaultCollate(items) as B);
  }

  /** The batches of one epoch from batch `start`, without touching the loader's position. */
  *iterEpoch(epoch: number, start = 0): IterableIterator<B> {
    for (let b = start; b < this.length; b++) yield this.batch(epoch, b);
  }

  /** The next batch of the current epoch, or undefined at its end (the following call starts the next epoch). */
  next(): B | undefined {
    if (this.position >= this.length) {
      this.epoch++;
      this.position = 0;
      return undefined;
    }
    return this.batch(this.epoch, this.position++);
  }

  /** The rest of the current epoch; afterwards the loader stands at the start of the next one. */
  *[Symbol.iterator](): IterableIterator<B> {
    for (;;) {
      const b = this.next();
      if (b === undefined) return;
      yield b;
    }
  }

  /** The position (epoch, batch) and settings, as JSON for a checkpoint. */
  state(): DataLoaderState {
    return {
      epoch: this.epoch, position: this.position, datasetLength: this.dataset.length, batchSize: this.batchSize,
      seed: this.seed, shuffle: this.shuffle, dropLast: this.dropLast,
    };
  }

  /** Continues from a saved state; the dataset and settings must match the ones it was saved with. */
  restore(state: unknown): void {
    const s = state as Partial<DataLoaderState> | null;
    if (!s || typeof s !== 'object' || !Number.isInteger(s.epoch) || !Number.isInteger(s.position) || s.epoch! < 0 || s.position! < 0) {
      throw new Error(`DataLoader.restore: expected { epoch, position } with non-negative integers, got ${JSON.stringify(state)}`);
    }
    const mine = this.state();
    for (const key of ['datasetLength', 'batchSize', 'seed', 'shuffle', 'dropLast'] as const) {
      if (s[key] !== undefined && s[key] !== mine[key]) {
        throw new Error(`DataLoader.restore: the saved loader had ${key} ${String(s[key])} but this one has ${String(mine[key])}`);
      }
    }
    if (s.position! > this.length) throw new Error(`DataLoader.restore: position ${s.position} is past the ${this.length} batches of an epoch`);
    this.epoch = s.epoch!;
    this.position = s.position!;
  }
}

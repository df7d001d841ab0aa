// Each rank's share of the data: shardBatch cuts a global batch into contiguous per-rank slices, shardIndices is a
// seeded, per-epoch shuffled sampler of disjoint index sets (PyTorch's DistributedSampler). Both are deterministic.

import { Generator, randperm, Tensor } from '../tensor/index.js';

/** Rows [start, end) of n that rank r of world takes: contiguous, sizes differ by at most one (lower ranks larger). */
export function shardRange(n: number, rank: number, world: number): [number, number] {
  if (!Number.isInteger(world) || world < 1) throw new Error(`shardRange: world must be a positive integer, got ${world}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= world) throw new Error(`shardRange: rank must be 0 .. ${world - 1}, got ${rank}`);
  if (n < world) throw new Error(`shardRange: a batch of ${n} rows cannot give each of ${world} ranks at least one row`);
  const base = Math.floor(n / world);
  const extra = n % world;
  const start = rank * base + Math.min(rank, extra);
  return [start, start + base + (rank < extra ? 1 : 0)];
}

/** A batch shardBatch can cut: a tensor, an array of batches, or an object of them. */
export type Batch = Tensor | readonly unknown[] | { [key: string]: unknown };

/**
 * This rank's slice of a global batch, along the first dimension: a tensor, an array of rows, or a tuple or object
 * of those (as DataLoader yields), each cut the same way. With rank r of world ranks taking rows
 * [r * n / world, (r + 1) * n / world), world ranks at batch b see exactly what one process sees at batch world * b.
 * `const [x, y] = kiln.distributed.shardBatch([xs, ys], rank, world)`
 */
export function shardBatch<B extends Batch>(batch: B, rank: number, world: number): B {
  const rows = (v: unknown): number | undefined => (v instanceof Tensor ? v.shape[0] : Array.isArray(v) ? v.length : undefined);
  const fields: unknown[] = batch instanceof Tensor ? [batch] : Array.isArray(batch) && rows(batch[0]) !== undefined ? batch
    : Array.isArray(batch) ? [batch] : Object.values(batch);
  const n = rows(fields[0]);
  if (n === undefined) throw new Error('shardBatch: the batch must be a tensor, an array, or a tuple or object of those');
  fields.forEach((f) => {
    if (rows(f) !== n) throw new Error(`shardBatch: every field of the batch must have ${n} rows, found one with ${rows(f) ?? 'none'}`);
  });
  const [start, end] = shardRange(n, rank, world);
  const cut = (v: unknown): unknown => (v instanceof Tensor ? v.slice(0, start, end) : (v as unknown[]).slice(start, end));
  if (batch instanceof Tensor || (Array.isArray(batch) && rows(batch[0]) === undefined)) return cut(batch) as B;
  if (Array.isArray(batch)) return batch.map(cut) as unknown as B;
  return Object.fromEntries(Object.entries(batch).map(([k, v]) => [k, cut(v)])) as B;
}

/** Options of shardIndices. */
export interface ShardIndicesOptions {
  /** Shuffle with a stream seeded by (seed, epoch) (default true); false keeps dataset order. */
  shuffle?: boolean;
  seed?: number;
  epoch?: number;
}

/**
 * The dataset indices rank r reads in an epoch: one seeded permutation of 0 .. n - 1 shared by all ranks, padded
 * by wrapping to a multiple of world, and every world-th element from r. The sets are disjoint except for the
 * padding, and every rank gets the same count (so all ranks take the same number of steps).
 * `for (const i of kiln.distributed.shardIndices(dataset.length, rank, world, { seed: 1, epoch }))`
 */
export function shardIndices(n: number, rank: number, world: number, options: ShardIndicesOptions = {}): number[] {
  if (!Number.isInteger(n) || n < 1) throw new Error(`shardIndices: n must be a positive integer, got ${n}`);
  shardRange(world, rank, world); // checks rank and world
  const { shuffle = true, seed = 0, epoch = 0 } = options;
  const order = shuffle
    ? [...(randperm(n, { generator: new Generator(seed * 1_000_003 + epoch) }).storage as Int32Array)]
    : Array.from({ length: n }, (_, i) => i);
  const total = Math.ceil(n / world) * world;
  const out: number[] = [];
  for (let i = rank; i < total; i += world) out.push(order[i % n]);
  return out;
}

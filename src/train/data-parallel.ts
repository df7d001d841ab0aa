// The Trainer under `mpirun -np N`: the model wrapped in DistributedDataParallel, each rank's slice of every global
// batch, and the few agreements ranks must reach every step (loss, a non-finite batch, an interrupt) so that they
// all take the same branch and issue the same collectives. A world of one makes every call here the identity.

import { DistributedDataParallel } from '../distributed/ddp.js';
import { allReduce, barrier, init } from '../distributed/process-group.js';
import { shardBatch } from '../distributed/shard.js';
import { Tensor } from '../tensor/index.js';
import type { Module } from '../nn/index.js';
import type { ParallelWorld } from './parallel.js';

/** The Trainer's world under mpirun: DistributedDataParallel and MPI collectives (Node only). */
export class DataParallel implements ParallelWorld {
  readonly rank: number;
  readonly world: number;
  private ddp: DistributedDataParallel | null = null;

  constructor() {
    const w = init();
    this.rank = w.rank;
    this.world = w.worldSize;
  }

  /** Whether several processes train together. */
  get active(): boolean { return this.world > 1; }

  /** Whether this process logs and writes files (rank 0, or the only process). */
  get isMain(): boolean { return this.rank === 0; }

  /**
   * Wraps the model once (the hooks it installs live as long as the model): rank 0's parameters are broadcast to
   * every rank, then gradients are averaged in buckets while backward runs.
   */
  wrap(model: Module): void {
    if (this.active && !this.ddp) this.ddp = new DistributedDataParallel(model);
  }

  /**
   * This rank's rows of a global batch (the whole batch in a world of one). In an object batch, fields without rows
   * (a number such as a token count) are passed on whole.
   */
  shard<B>(batch: B): B {
    if (!this.active) return batch;
    const rows = batchRows(batch);
    if (rows !== undefined && rows < this.world) {
      throw new Error(`Trainer: a training batch of ${rows} row${rows === 1 ? '' : 's'} cannot give each of ${this.world} ranks ` +
        'a row; make the global batch (the batch size of the training source) at least the number of processes, ' +
        'and drop a short last batch (DataLoader dropLast)');
    }
    if (batch && typeof batch === 'object' && !Array.isArray(batch) && !(batch instanceof Tensor)) {
      const entries = Object.entries(batch as Record<string, unknown>);
      const sliced = shardBatch(Object.fromEntries(entries.filter(([, v]) => hasRows(v))), this.rank, this.world);
      return { ...batch, ...sliced } as B;
    }
    return shardBatch(batch as Parameters<typeof shardBatch>[0], this.rank, this.world) as B;
  }

  /** Runs a micro-step's forward and backward; all but the last micro-step of a step keep their gradients local. */
  microStep<T>(last: boolean, fn: () => T): T {
    return this.ddp && !last ? this.ddp.noSync(fn) : fn();
  }

  /** The one wait before clipping and the optimizer step: every rank then holds the same averaged gradients. */
  finishGradientSync(): void { this.ddp?.finishGradientSync(); }

  /**
   * The sums over every rank of a few float64 numbers (each sent as a float32 pair, high and low part, so the sum
   * keeps about 14 digits). Every rank must call it at the same point.
   */
  sum(values: number[]): number[] {
    if (!this.active) return values;
    const buf = new Float32Array(values.length * 2);
    values.forEach((v, i) => {
      const hi = Math.fround(v);
      buf[2 * i] = hi;
      buf[2 * i + 1] = Number.isFinite(hi) ? v - hi : 0;
    });
    const out = allReduce(new Tensor(buf, [buf.length]), 'sum').storage as Float32Array;
    return values.map((_, i) => out[2 * i] + out[2 * i + 1]);
  }

  /** Returns once every rank got here (after rank 0 wrote a checkpoint, so no rank runs ahead of it). */
  barrier(): void { if (this.active) barrier(); }
}

function hasRows(v: unknown): boolean { return v instanceof Tensor || Array.isArray(v); }

/** The first dimension of a batch's first field with rows (a tensor, an array, or a tuple or object of them). */
function batchRows(batch: unknown): number | undefined {
  const n = (v: unknown): number | undefined => (v instanceof Tensor ? v.shape[0] : undefined);
  if (batch instanceof Tensor) return n(batch);
  if (Array.isArray(batch)) return batch[0] instanceof Tensor ? n(batch[0]) : Array.isArray(batch[0]) ? batch[0].length : batch.length;
  if (batch && typeof batch === 'object') {
    const first = Object.values(batch).find(hasRows);
    return first instanceof Tensor ? n(first) : (first as unknown[] | undefined)?.length;
  }
  return undefined;
}

/** Refuses to resume a checkpoint written by another number of processes unless asked to re-shard. */
export function checkWorldSize(stateFile: string, saved: number, now: number, reshard: boolean): void {
  if (saved === now || reshard) return;
  const procs = (n: number): string => `${n} process${n === 1 ? '' : 'es'}`;
  throw new Error(`checkpoint '${stateFile}' was written by a run of ${procs(saved)} (world_size ${saved}), but this run ` +
    `has ${procs(now)}, so the global batch (the per-process batch x the processes) would change. Resume with ` +
    `${saved === 1 ? 'a single process (no mpirun)' : `\`mpirun -np ${saved}\``}, or pass --reshard ` +
    '(fit({ resume, reshard: true })) to continue with this world size.');
}

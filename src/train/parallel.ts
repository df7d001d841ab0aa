// The few collective operations the training loop needs, as an interface: the Node Trainer fills it with MPI
// (data-parallel.ts), everything else with a world of one process, where every call is the identity.

import type { Module } from '../nn/index.js';

/** The processes that train together: under `mpirun -np N` in Node, one process everywhere else. */
export interface ParallelWorld {
  readonly rank: number;
  readonly world: number;
  /** Whether several processes train together. */
  readonly active: boolean;
  /** Whether this process logs and writes (rank 0, or the only process). */
  readonly isMain: boolean;
  /** Wraps the model for gradient averaging, once. */
  wrap(model: Module): void;
  /** This rank's rows of a global batch. */
  shard<B>(batch: B): B;
  /** Runs a micro-step's forward and backward. */
  microStep<T>(last: boolean, fn: () => T): T;
  /** Waits for the averaged gradients. */
  finishGradientSync(): void;
  /** Sums a few numbers over every rank. */
  sum(values: number[]): number[];
  /** Waits until every rank got here. */
  barrier(): void;
}

/** A world of one process: every collective is the identity. */
export const singleProcess: ParallelWorld = {
  rank: 0,
  world: 1,
  active: false,
  isMain: true,
  wrap: () => {},
  shard: (batch) => batch,
  microStep: (_last, fn) => fn(),
  finishGradientSync: () => {},
  sum: (values) => values,
  barrier: () => {},
};

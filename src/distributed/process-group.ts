// The process group: which rank this process is in a world of how many, and the collectives on float32 tensors
// (all-reduce, broadcast, barrier) over MPI. A process not started by mpirun is a world of one: nothing is
// initialised and every collective is the identity, so the same script runs alone or under `mpirun -np N`.

import type { Tensor } from '../tensor/index.js';
import { loadMpiBinding, MPI_INSTALL_HINT, type MpiBinding } from '../backend/native/mpi.js';

/** This process's place in the process group. */
export interface World {
  rank: number;
  worldSize: number;
  /** 'mpi' under an MPI launcher, 'none' for a single process. */
  transport: 'mpi' | 'none';
  /** Whether collectives run on the binding's communication thread (so they overlap computation). */
  asyncProgress: boolean;
}

/** How allReduce combines: 'sum' or 'avg' over the ranks. */
export type ReduceOp = 'sum' | 'avg';

let world: World | null = null;
let mpi: MpiBinding | null = null;

/**
 * How many processes the launcher says this world has (OMPI_COMM_WORLD_SIZE from Open MPI's mpirun, PMI_SIZE from
 * MPICH's or Slurm's), or 0 when this process was not started by an MPI launcher.
 */
export function launchedWorldSize(env: NodeJS.ProcessEnv = process.env): number {
  for (const key of ['OMPI_COMM_WORLD_SIZE', 'PMI_SIZE']) {
    const n = Number(env[key]);
    if (env[key] !== undefined && Number.isInteger(n) && n >= 1) return n;
  }
  return env.PMIX_RANK !== undefined ? 1 : 0;
}

/**
 * Joins the process group: under mpirun initialises MPI and reads this process's rank and the world size; a plain
 * `node` run is rank 0 of a world of 1 and never touches MPI. Idempotent. Throws, naming the packages to install,
 * when mpirun started several processes but the MPI binding is unavailable.
 * `const { rank, worldSize } = kiln.distributed.init()`
 */
export function init(): World {
  if (world) return world;
  const launched = launchedWorldSize();
  if (launched === 0) {
    world = { rank: 0, worldSize: 1, transport: 'none', asyncProgress: false };
    return world;
  }
  const load = loadMpiBinding();
  if (!load.binding) {
    if (launched > 1) {
      throw new Error(`kiln.distributed: this process is one of ${launched} started by mpirun, but Kiln's MPI binding ` +
        `is unavailable (${load.error}); ${MPI_INSTALL_HINT}`);
    }
    world = { rank: 0, worldSize: 1, transport: 'none', asyncProgress: false };
    return world;
  }
  const w = load.binding.init();
  mpi = load.binding;
  world = { rank: w.rank, worldSize: w.size, transport: 'mpi', asyncProgress: w.asyncProgress };
  // Open MPI counts a process that exits without MPI_Finalize as failed; one that fails must abort the whole job
  // (finalizing would wait for ranks that are themselves waiting for it).
  process.on('exit', (code) => {
    if (!mpi) return;
    const binding = mpi;
    mpi = null;
    if (code === 0) binding.finalize();
    else binding.abort(code);
  });
  return world;
}

/** This process's rank, 0 .. worldSize() - 1 (joins the group on first use). */
export function rank(): number { return init().rank; }

/** The number of processes training together (joins the group on first use). */
export function worldSize(): number { return init().worldSize; }

/** Whether this process is rank 0, the one that logs and writes checkpoints. */
export function isMain(): boolean { return rank() === 0; }

/** The binding when the world has more than one process, else null (collectives are then the identity). */
export function communicator(): MpiBinding | null {
  init();
  return world && world.worldSize > 1 ? mpi : null;
}

function float32Storage(t: Tensor, fn: string): Float32Array {
  if (!(t.storage instanceof Float32Array)) {
    throw new Error(`${fn}: collectives take float32 tensors, got ${t.dtype} (convert with .float())`);
  }
  return t.storage;
}

/**
 * Replaces t's values, in place, by their sum (or mean, with 'avg') over every rank; returns t.
 * Every rank must call it, in the same order as its other collectives, with a tensor of the same size.
 * `kiln.distributed.allReduce(lossSum, 'sum')`
 */
export function allReduce(t: Tensor, op: ReduceOp = 'sum'): Tensor {
  if (op !== 'sum' && op !== 'avg') throw new Error(`allReduce: op must be 'sum' or 'avg', got '${String(op)}'`);
  const buf = float32Storage(t, 'allReduce');
  const c = communicator();
  if (!c) return t;
  c.wait(c.allReduceStart(buf));
  if (op === 'avg') {
    const n = worldSize();
    for (let i = 0; i < buf.length; i++) buf[i] /= n;
  }
  return t;
}

/**
 * Overwrites t, in place, with root's values on every rank; returns t.
 * `kiln.distributed.broadcast(weights, 0)`
 */
export function broadcast(t: Tensor, root = 0): Tensor {
  const buf = float32Storage(t, 'broadcast');
  const n = worldSize();
  if (!Number.isInteger(root) || root < 0 || root >= n) {
    throw new Error(`broadcast: root must be a rank of this world (0 .. ${n - 1}), got ${root}`);
  }
  const c = communicator();
  if (c) c.wait(c.broadcastStart(buf, root));
  return t;
}

/** Returns once every rank has called it. */
export function barrier(): void {
  const c = communicator();
  if (c) c.wait(c.barrierStart());
}

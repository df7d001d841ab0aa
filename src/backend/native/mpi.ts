// Loads the MPI binding (build/Release/kiln_mpi.node, or KILN_MPI_PATH), which scripts/build-native.mjs builds from
// native/mpi/ only where MPI is installed. Never throws: says why it is unavailable instead. src/distributed uses it.

import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from './index.js';

/** The raw binding (native/mpi/mpi.c). Every operation is queued in order; *Start returns a handle for wait/test. */
export interface MpiBinding {
  init(): { rank: number; size: number; threadLevel: number; asyncProgress: boolean };
  allReduceStart(buf: Float32Array): number;
  broadcastStart(buf: Float32Array, root: number): number;
  barrierStart(): number;
  /** Blocks until the operation is done; throws when MPI reported an error. */
  wait(handle: number): void;
  test(handle: number): boolean;
  finalize(): void;
  abort(code: number): void;
  libraryVersion(): string;
}

export interface MpiLoad { binding?: MpiBinding; path: string; error?: string }

/** The packages that provide MPI, for messages. */
export const MPI_INSTALL_HINT = 'install Open MPI (Debian/Ubuntu: apt install openmpi-bin libopenmpi-dev; macOS: ' +
  "brew install open-mpi), then run `node scripts/build-native.mjs` in Kiln's folder";

let cached: MpiLoad | undefined;

/** Whether an MPI compiler wrapper is on PATH (used only to explain a missing binding). */
function hasMpicc(): boolean {
  const r = spawnSync(process.env.MPICC || 'mpicc', ['--version'], { encoding: 'utf8', timeout: 10000 });
  return !r.error && r.status === 0;
}

/** Loads the binding once; { error } says why it is unavailable. Loading it does not initialise MPI. */
export function loadMpiBinding(): MpiLoad {
  if (cached) return cached;
  const custom = process.env.KILN_MPI_PATH;
  const path = custom && custom.trim() !== '' ? resolve(custom) : join(packageRoot(), 'build', 'Release', 'kiln_mpi.node');
  try {
    if (!existsSync(path)) {
      let error: string;
      if (custom) error = `KILN_MPI_PATH is ${custom}, which does not exist`;
      else if (hasMpicc()) error = `the MPI binding was not built (${path} is missing) although mpicc is installed; run \`node scripts/build-native.mjs\``;
      else error = 'the MPI binding was not built because MPI is not installed (no mpicc on PATH)';
      cached = { path, error };
    } else {
      const binding = createRequire(import.meta.url)(path) as MpiBinding;
      cached = typeof binding?.allReduceStart === 'function' ? { path, binding } : { path, error: `${path} is not Kiln's MPI binding` };
    }
  } catch (e) {
    cached = { path, error: `the MPI binding failed to load: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` };
  }
  return cached;
}

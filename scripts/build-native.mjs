// Builds the native backend (native/*.c -> build/Release/kiln_native.node) with node-gyp; run by `npm install`.
// As the install script it compiles only where no prebuilt addon fits: the package ships one for linux-x64
// (prebuilds/linux-x64/, made by scripts/prebuild.mjs at `npm pack`), and when that one loads here nothing is
// compiled. Run by hand (`node scripts/build-native.mjs`) it always compiles.
// It never fails the install: without a compiler or headers it prints one short warning and Kiln runs on the
// WebAssembly backend (or, where that cannot load, the reference TypeScript one). KILN_SKIP_NATIVE=1 skips the
// build. Where MPI is installed (mpicc on PATH) it then builds the MPI binding native/mpi/ ->
// build/Release/kiln_mpi.node for multi-process training; without MPI, or with KILN_SKIP_MPI=1, that step is
// skipped and nothing else changes.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { findNodeGyp, gypRebuild, prebuildDir, root } from './native-gyp.mjs';

function warn(reason) {
  console.warn(`kiln: could not build the native backend (${reason}); Kiln will run on the slower ` +
    'WebAssembly backend instead. For the native one, install a C compiler (gcc or clang) and make, then run ' +
    '`npm rebuild kiln` in your project (`node scripts/build-native.mjs` in a checkout of Kiln).');
  process.exit(0);
}

if (process.env.KILN_SKIP_NATIVE === '1') {
  console.log('kiln: KILN_SKIP_NATIVE=1, not building the native backend');
  process.exit(0);
}

/** The MPI binding, only where an MPI compiler wrapper exists; a failure here never touches the main addon. */
function buildMpi(gyp) {
  if (process.env.KILN_SKIP_MPI === '1') return;
  const mpicc = spawnSync(process.env.MPICC || 'mpicc', ['--version'], { encoding: 'utf8', timeout: 20000 });
  if (mpicc.error || mpicc.status !== 0) return; // no MPI here: single-process training only, nothing to say
  const dir = join(root, 'native', 'mpi');
  const reason = gypRebuild(gyp, dir, 'kiln_mpi.node');
  if (reason) {
    console.warn(`kiln: could not build the MPI binding (${reason}); multi-process training is unavailable. ` +
      'It needs the MPI headers (libopenmpi-dev) besides mpicc.');
    return;
  }
  mkdirSync(join(root, 'build', 'Release'), { recursive: true }); // absent when the prebuilt addon was used
  copyFileSync(join(dir, 'build', 'Release', 'kiln_mpi.node'), join(root, 'build', 'Release', 'kiln_mpi.node'));
  console.log('kiln: built the MPI binding (build/Release/kiln_mpi.node)');
}

/** The shipped prebuilt addon for this platform when it loads in this Node, else undefined. */
function fittingPrebuild() {
  const dir = prebuildDir();
  if (!existsSync(dir)) return undefined;
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.node')).sort()) {
    try {
      const addon = createRequire(import.meta.url)(join(dir, name));
      if (typeof addon?.gemm === 'function') return join(dir, name);
    } catch { /* built for another libc, or a glibc newer than this one: try the next, then compile */ }
  }
  return undefined;
}

const prebuilt = process.env.npm_lifecycle_event === 'install' ? fittingPrebuild() : undefined;
if (prebuilt) {
  console.log(`kiln: using the prebuilt native backend (${prebuilt.slice(root.length + 1)}); nothing to compile`);
  try {
    const gyp = findNodeGyp();
    if (gyp) buildMpi(gyp);
  } catch { /* the MPI binding is optional */ }
  process.exit(0);
}

try {
  const gyp = findNodeGyp();
  if (!gyp) warn('node-gyp was not found');
  const reason = gypRebuild(gyp, root, 'kiln_native.node');
  if (reason) warn(reason);
  console.log('kiln: built the native backend (build/Release/kiln_native.node)');
  buildMpi(gyp);
} catch (e) {
  warn(e instanceof Error ? e.message : String(e));
}

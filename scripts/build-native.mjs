// Builds the native backend (native/*.c -> build/Release/kiln_native.node) with node-gyp; run by `npm install`.
// It never fails the install: without a compiler or headers it prints one short warning and Kiln runs on the
// reference TypeScript backend. KILN_SKIP_NATIVE=1 skips the build. Where MPI is installed (mpicc on PATH) it
// then builds the MPI binding native/mpi/ -> build/Release/kiln_mpi.node for multi-process training; without MPI,
// or with KILN_SKIP_MPI=1, that step is skipped and nothing else changes.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function warn(reason) {
  console.warn(`kiln: could not build the native backend (${reason}); Kiln will run on the slower reference ` +
    'TypeScript backend. Install a C compiler (gcc or clang) and make, then run `node scripts/build-native.mjs`.');
  process.exit(0);
}

/** node-gyp's entry script: the one npm is running with, npm's bundled copy, or a local install. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  const prefix = resolve(dirname(process.execPath), '..');
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  try {
    const npmPrefix = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['prefix', '-g'], { encoding: 'utf8', timeout: 20000 });
    const p = (npmPrefix.stdout ?? '').trim();
    if (p) {
      candidates.push(join(p, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
      candidates.push(join(p, 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
    }
  } catch { /* npm not on PATH */ }
  try { candidates.push(createRequire(join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js')); } catch { /* none */ }
  return candidates.find((c) => c && existsSync(c));
}

if (process.env.KILN_SKIP_NATIVE === '1') {
  console.log('kiln: KILN_SKIP_NATIVE=1, not building the native backend');
  process.exit(0);
}

/** node-gyp rebuild in dir; returns null on success, else a short reason. */
function gypRebuild(gyp, dir, product) {
  const args = [gyp, 'rebuild', '--release'];
  // Headers installed next to node (distribution packages) save node-gyp a download, which may be impossible offline.
  const localHeaders = resolve(dirname(process.execPath), '..');
  if (!process.env.npm_config_nodedir && existsSync(join(localHeaders, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${localHeaders}`);
  }
  const res = spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', timeout: 10 * 60 * 1000,
    maxBuffer: 64 * 1024 * 1024 });
  const out = `${res.stdout ?? ''}${res.stderr ?? ''}`;
  if (res.error) return res.error.message;
  if (res.status !== 0 || !existsSync(join(dir, 'build', 'Release', product))) {
    const lines = out.split('\n').filter((l) => /error|not found|No such file|command not found/i.test(l) && !/^gyp info/.test(l));
    return lines.slice(0, 2).map((l) => l.trim()).join('; ') || `node-gyp exited with status ${res.status}`;
  }
  return null;
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
  copyFileSync(join(dir, 'build', 'Release', 'kiln_mpi.node'), join(root, 'build', 'Release', 'kiln_mpi.node'));
  console.log('kiln: built the MPI binding (build/Release/kiln_mpi.node)');
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

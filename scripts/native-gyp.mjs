// node-gyp helpers shared by scripts/build-native.mjs (the install-time compile) and scripts/prebuild.mjs (the
// prebuilt addon packed into the tarball): where node-gyp is, and `node-gyp rebuild` in a folder.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** node-gyp's entry script: the one npm is running with, npm's bundled copy, or a local install. */
export function findNodeGyp() {
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

/** node-gyp rebuild in dir; returns null on success, else a short reason. */
export function gypRebuild(gyp, dir, product) {
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

/** The folder of prebuilt addons for this platform, in the prebuildify / node-gyp-build layout. */
export function prebuildDir(base = root) {
  return join(base, 'prebuilds', `${process.platform}-${process.arch}`);
}

// Builds the prebuilt native addon that the npm package ships, so that installing Kiln on linux-x64 needs no
// compiler and no install script: prebuilds/<platform>-<arch>/node.napi[.glibc|.musl].node, the layout of
// prebuildify and node-gyp-build. Runs at `npm pack` / `npm publish` (prepack); postpack runs it with --clean, so
// a checkout keeps no binary that could go stale against native/*.c (git ignores prebuilds/ too).
//
//   node scripts/prebuild.mjs           build this platform's addon into prebuilds/
//   node scripts/prebuild.mjs --clean   remove prebuilds/
//
// The addon is compiled in a scratch folder from binding.gyp and native/ with the same flags as the install-time
// build: the x86-64 baseline, with the AVX2 and AVX-512 kernels chosen at run time per function (native/cpu.c), so
// one binary serves every x86-64 CPU. It is N-API, so one binary serves every Node version from 20 on. On x86-64
// glibc it force-includes scripts/glibc-compat.h, which binds the few glibc functions it calls to their oldest
// symbol versions, and checks with objdump that the result needs at most glibc 2.17. A pack on a
// platform other than linux-x64 fails unless prebuilds/linux-x64 is already there or KILN_PREBUILD_OPTIONAL=1.

import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findNodeGyp, gypRebuild, prebuildDir, root } from './native-gyp.mjs';

function fail(message) {
  console.error(`kiln prebuild: ${message}`);
  process.exit(1);
}

/** The oldest glibc the prebuilt addon may need on x86-64 (that of manylinux2014: CentOS 7, Ubuntu 14.04 and later). */
const GLIBC_FLOOR = '2.17';
const glibcX64 = process.platform === 'linux' && process.arch === 'x64' && !!process.report?.getReport?.().header?.glibcVersionRuntime;

/** The newest GLIBC_x.y symbol version that an ELF file needs, from objdump -T; undefined when objdump is missing. */
function newestGlibc(file) {
  const r = spawnSync('objdump', ['-T', file], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  const versions = [...r.stdout.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  versions.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const v = versions.pop();
  return v ? `${v[0]}.${v[1]}` : '0.0';
}
const newer = (a, b) => { const [x, y] = a.split('.').map(Number); const [u, w] = b.split('.').map(Number); return x > u || (x === u && y > w); };

/** The file name node-gyp-build gives an N-API addon for this runtime: node.napi.node, tagged with the libc on Linux. */
function prebuildName() {
  if (process.platform !== 'linux') return 'node.napi.node';
  const glibc = process.report?.getReport?.().header?.glibcVersionRuntime;
  return glibc ? 'node.napi.glibc.node' : 'node.napi.musl.node';
}

if (process.argv.includes('--clean')) {
  rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
  process.exit(0);
}

const gyp = findNodeGyp();
if (!gyp) fail('node-gyp was not found (it ships with npm)');
const scratch = mkdtempSync(join(tmpdir(), 'kiln-prebuild-'));
try {
  const gypFile = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8'));
  if (glibcX64) {
    copyFileSync(join(root, 'scripts', 'glibc-compat.h'), join(scratch, 'glibc-compat.h'));
    gypFile.targets[0].cflags.push('-include', join(scratch, 'glibc-compat.h'));
  }
  writeFileSync(join(scratch, 'binding.gyp'), JSON.stringify(gypFile, null, 2));
  mkdirSync(join(scratch, 'native'));
  for (const f of readdirSync(join(root, 'native')).filter((n) => /\.[ch]$/.test(n))) {
    cpSync(join(root, 'native', f), join(scratch, 'native', f));
  }
  const reason = gypRebuild(gyp, scratch, 'kiln_native.node');
  if (reason) fail(`the addon did not compile: ${reason}`);
  const dir = prebuildDir();
  mkdirSync(dir, { recursive: true });
  const out = join(dir, prebuildName());
  copyFileSync(join(scratch, 'build', 'Release', 'kiln_native.node'), out);
  if (glibcX64) {
    const needs = newestGlibc(out);
    if (needs === undefined) fail('objdump (binutils) is needed to check the glibc versions the addon needs');
    if (newer(needs, GLIBC_FLOOR)) fail(`the addon needs glibc ${needs}, newer than the ${GLIBC_FLOOR} it must load on: add the symbol to scripts/glibc-compat.h`);
    console.log(`kiln prebuild: the addon needs glibc ${needs} at most`);
  }
  const addon = createRequire(import.meta.url)(out);
  if (typeof addon?.gemm !== 'function') fail(`${out} does not load as Kiln's addon`);
  console.log(`kiln prebuild: wrote ${out.slice(root.length + 1)} (${addon.info().isa} kernels on this CPU)`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
if (!existsSync(join(root, 'prebuilds', 'linux-x64')) && process.env.KILN_PREBUILD_OPTIONAL !== '1') {
  fail('the package must ship prebuilds/linux-x64: pack on linux-x64, or set KILN_PREBUILD_OPTIONAL=1 to pack without it');
}

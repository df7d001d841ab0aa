// Builds the WebAssembly backend from the same C kernels as the native addon (native/*.c, with their SIMD128 paths)
// into src/backend/wasm/: kiln.wasm (threads: shared memory and atomics, for hosts with SharedArrayBuffer) and
// kiln-single.wasm (one thread, unshared memory, for browser pages without cross-origin isolation). Both are
// committed, so installing Kiln never needs a compiler; this script is how they are remade.
//
//   node scripts/build-wasm.mjs           rebuild both files
//   node scripts/build-wasm.mjs --check   rebuild into a temporary folder and fail if either differs from the
//                                         committed file (CI runs this: the binaries always match their sources)
//
// Needs Debian's clang, lld and wasi-libc (apt-get install clang lld wasi-libc): wasi-libc gives the math and
// string functions; the allocator, the thread pool and the worker stacks are Kiln's own (native/wasm/, pool.c).
// The output is deterministic: the same sources and toolchain give the same bytes.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'src', 'backend', 'wasm');
const SOURCES = ['cpu.c', 'pool.c', 'gemm.c', 'gemv.c', 'memory.c', 'vmath.c', 'elementwise.c', 'layout.c', 'nn.c',
  'attention.c', 'decoder.c', 'decode_step.c', 'sample.c', 'rnn.c', 'conv.c', 'pooling.c', 'batchnorm.c', 'wasm/malloc.c',
  'wasm/stack.s'];
const SYSROOT_LIB = process.env.KILN_WASI_LIB ?? '/usr/lib/wasm32-wasi';
const CC = process.env.KILN_WASM_CC ?? 'clang';
const LD = process.env.KILN_WASM_LD ?? 'wasm-ld';
/** Stack of the calling thread; each worker gets one of the same size from the heap (src/backend/wasm). */
const STACK_BYTES = 1 << 20;

const VARIANTS = [
  { file: 'kiln.wasm', cflags: ['-matomics', '-mbulk-memory'], ldflags: ['--shared-memory', '--max-memory=4294967296'] },
  { file: 'kiln-single.wasm', cflags: ['-mbulk-memory'], ldflags: ['--max-memory=4294967296'] },
];

function run(cmd, args) {
  const res = spawnSync(cmd, args, { cwd: root, encoding: 'utf8' });
  if (res.error) throw new Error(`${cmd} could not run (${res.error.message}); install clang, lld and wasi-libc`);
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${res.stderr}`);
  return res.stdout;
}

/** Every function kiln.h declares, plus the wasm-only entry points: the module's exports. */
function exportsList() {
  const header = readFileSync(join(root, 'native', 'kiln.h'), 'utf8');
  const names = new Set([...header.matchAll(/\b(kiln_[a-z0-9_]+)\s*\(/g)].map((m) => m[1]));
  return [...names].sort();
}

function build(variant, dir) {
  const objs = [];
  for (const src of SOURCES) {
    const obj = join(dir, `${variant.file}-${src.replace(/[/.]/g, '_')}.o`);
    const cOnly = src.endsWith('.c') ? ['-std=gnu11', '-fno-math-errno', '-ffp-contract=fast', '-Wall',
      '-Wno-unused-function', '-Werror', `-ffile-prefix-map=${root}=.`] : [];
    run(CC, ['--target=wasm32-wasi', '-O3', '-msimd128', ...variant.cflags, ...cOnly, '-c', join('native', src),
      '-o', obj]);
    objs.push(obj);
  }
  const out = join(dir, variant.file);
  const exports = exportsList().flatMap((n) => [`--export-if-defined=${n}`]);
  run(LD, ['--no-entry', '--import-memory', ...variant.ldflags, '-z', `stack-size=${STACK_BYTES}`, '--stack-first',
    '--strip-all', ...exports, '--export=kiln_wasm_alloc', '--export=kiln_wasm_free', '--export=kiln_set_stack_pointer',
    '--export=__heap_base', ...objs, `-L${SYSROOT_LIB}`, '-lc', '-o', out]);
  const bytes = readFileSync(out);
  const imports = WebAssembly.Module.imports(new WebAssembly.Module(bytes));
  const extra = imports.filter((i) => !(i.module === 'env' && i.name === 'memory'));
  if (extra.length > 0) {
    throw new Error(`${variant.file} imports ${extra.map((i) => `${i.module}.${i.name}`).join(', ')}; ` +
      'it may import only env.memory (a libc function that needs WASI crept in)');
  }
  return bytes;
}

const check = process.argv.includes('--check');
const dir = mkdtempSync(join(tmpdir(), 'kiln-wasm-'));
let differ = 0;
try {
  for (const v of VARIANTS) {
    const bytes = build(v, dir);
    const target = join(outDir, v.file);
    if (check) {
      const same = existsSync(target) && Buffer.compare(readFileSync(target), bytes) === 0;
      if (!same) {
        differ++;
        console.error(`kiln: ${v.file} differs from a fresh build of native/ (rebuild it: node scripts/build-wasm.mjs)`);
      } else console.log(`kiln: ${v.file} matches its sources (${bytes.length} bytes)`);
    } else {
      writeFileSync(target, bytes);
      console.log(`kiln: built ${join('src', 'backend', 'wasm', v.file)} (${bytes.length} bytes)`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(differ > 0 ? 1 : 0);

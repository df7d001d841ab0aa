// The WebAssembly backend's own parts (the kernels themselves are checked by conformance.test.ts on the wasm pass):
// tensor storage inside wasm memory is used in place, foreign arrays that overlap are copied as one, the one-thread
// build (kiln-single.wasm, unshared memory) gives the same results, threads give bitwise the same results, bad
// settings are named, and the committed .wasm files match a fresh build of native/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsBackend } from '../../src/backend/index.js';
import { createWasmBackend } from '../../src/backend/wasm/index.js';
import { loadWasmBackend, wasmControls } from '../../src/backend/wasm/node.js';
import { MISSING_PREREQUISITE } from '../helpers/prereq.js';
import { assertBitwiseEqual, assertClose, randF32, rng } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const wasm = loadWasmBackend();
const be = wasm.backend!;

test('the wasm backend loads with SIMD128 kernels', () => {
  assert.ok(be, `wasm backend unavailable: ${wasm.error}`);
  assert.equal(be.name, 'wasm');
  assert.equal(wasm.info?.isa, 'simd128');
  assert.ok((wasm.info?.threads ?? 0) >= 1);
});

test('storage allocated in wasm memory is used in place, alone or mixed with ordinary arrays', () => {
  const r = rng(31);
  const [M, N, K] = [37, 29, 53];
  const A = be.allocate!('float32', M * K) as Float32Array;
  assert.ok(A instanceof Float32Array && be.ownsWhole!(A), 'allocate gives a whole buffer the backend owns');
  assert.ok(!be.ownsWhole!(A.subarray(1)), 'a view into it is not whole');
  assert.ok(!be.ownsWhole!(new Float32Array(8)), 'an ordinary array is not the backend\'s');
  A.set(randF32(r, M * K));
  const B = randF32(r, K * N); // foreign
  const C = be.allocate!('float32', M * N) as Float32Array;
  const want = new Float32Array(M * N);
  be.gemm(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, C, 0);
  jsBackend.gemm(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, want, 0);
  assertClose(C, want, 'gemm on wasm storage', 1e-5, 1e-6);
  // in place: out aliases x, in wasm memory and in an ordinary array
  for (const x of [be.allocate!('float32', 1000) as Float32Array, new Float32Array(1000)]) {
    x.set(randF32(r, 1000, -3, 3));
    const expect = new Float32Array(1000);
    jsBackend.unary('tanh', x, expect);
    be.unary('tanh', x, x);
    assertClose(x, expect, 'tanh in place', 2e-6, 1e-7);
  }
  assert.equal(be.allocate!('float32', 4), undefined, 'tiny buffers stay ordinary arrays');
});

test('foreign views that interleave in one buffer (fused q, k, v) are copied as one range', () => {
  const r = rng(32);
  const [B, T, NH, HS] = [2, 5, 2, 4];
  const C = NH * HS;
  const fused = randF32(r, B * T * 3 * C);
  const [q, k, v] = [0, 1, 2].map((j) => fused.subarray(j * C));
  const out = [new Float32Array(B * T * C), new Float32Array(B * T * C)];
  const lse = [new Float32Array(B * NH * T), new Float32Array(B * NH * T)];
  be.attention(q, k, v, B, T, T, NH, HS, true, 0.5, out[0], lse[0], 3 * C);
  jsBackend.attention(q, k, v, B, T, T, NH, HS, true, 0.5, out[1], lse[1], 3 * C);
  assertClose(out[0], out[1], 'attention out', 1e-5, 1e-6);
  assertClose(lse[0], lse[1], 'attention lse', 1e-5, 1e-6);
  const before = fused.slice();
  const dfused = randF32(r, fused.length);
  const untouched = dfused.slice();
  const d = [0, 1, 2].map((j) => dfused.subarray(j * C));
  be.attentionBackward(randF32(r, B * T * C), q, k, v, out[0], lse[0], B, T, T, NH, HS, true, 0.5, d[0], d[1], d[2], 3 * C);
  assert.deepEqual(fused, before, 'inputs are not written');
  assert.ok(dfused.some((x, i) => x !== untouched[i]), 'the gradients were written back');
});

test('the one-thread build (kiln-single.wasm, unshared memory) gives the same results as the threaded one', () => {
  const module = new WebAssembly.Module(readFileSync(join(root, 'src', 'backend', 'wasm', 'kiln-single.wasm')));
  const single = createWasmBackend({ module, shared: false });
  assert.equal(single.controls.info().threads, 1);
  assert.equal(single.backend.allocate, undefined, 'unshared memory keeps no tensor storage (it detaches as it grows)');
  const r = rng(33);
  const [M, N, K] = [130, 70, 300];
  const A = randF32(r, M * K);
  const Bm = randF32(r, K * N);
  const got = new Float32Array(M * N);
  const want = new Float32Array(M * N);
  single.backend.gemm(false, true, 1, M, N, K, 1, A, 0, Bm, 0, 0, got, 0);
  be.gemm(false, true, 1, M, N, K, 1, A, 0, Bm, 0, 0, want, 0);
  assertBitwiseEqual(got, want, 'single vs threaded gemm');
  // growth: a buffer bigger than the initial memory still works (the scratch area moves)
  const big = randF32(r, 5_000_000);
  const out = new Float32Array(big.length);
  single.backend.unary('neg', big, out);
  assert.equal(out[4_999_999], -big[4_999_999]);
});

test('threads join the pool and give bitwise the same GEMM as one thread', async () => {
  const controls = wasmControls()!;
  const pool = controls.info().poolSize;
  for (let i = 0; i < 200 && controls.workersReady() < pool - 1; i++) await new Promise((res) => setTimeout(res, 10));
  assert.equal(controls.workersReady(), pool - 1, 'every worker checked in');
  const r = rng(34);
  const [M, N, K] = [301, 517, 389];
  const A = randF32(r, M * K);
  const B = randF32(r, K * N);
  const all = new Float32Array(M * N);
  const one = new Float32Array(M * N);
  be.gemm(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, all, 0);
  try {
    controls.setThreads(1);
    be.gemm(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, one, 0);
  } finally {
    controls.setThreads(pool);
  }
  assertBitwiseEqual(all, one, 'threads vs one thread');
});

// Node 20's baseline wasm compiler (Liftoff) lost a register value across an inlined memory.atomic.wait32: a thread
// that slept in a barrier could leave it early, and the threads of a decoding step drifted a barrier apart (wrong
// logits one step in twenty-five, and a hung CI run). --liftoff-only keeps every function in the baseline compiler;
// two threads decode a small GPT step by step, fused (one job, barriers) and layer by layer, and must agree bitwise.
test('the fused decoding step agrees with the layer-by-layer one on two threads in the baseline compiler', () => {
  const script = `
    import * as kiln from '${root}/src/index.ts';
    import { gptModelDecode } from '${root}/src/tensor/ops/gpt-block.ts';
    const cfg = { vocabSize: 61, context: 24, layers: 2, heads: 4, width: 32 };
    const gpt = new kiln.models.GPT(cfg, { generator: new kiln.Generator(4) }).eval();
    const tr = gpt.transformer;
    const weights = { wte: tr.wte.weight, wpe: tr.wpe.weight, blocks: [...tr.h].map((b) => b.fusedWeights()),
      lnfWeight: tr.ln_f.weight, lnfBias: tr.ln_f.bias, head: gpt.lm_head.weight };
    let differ = 0, fused = 0;
    for (let step = 0; step < 150; step++) {
      const a = gpt.createCache(4), b = gpt.createCache(4);
      const rows = [1, 2], starts = [3, 5], tokens = [step % 61, (7 * step) % 61];
      kiln.noGrad(() => {
        const idx = kiln.tensor(Int32Array.from(tokens), { shape: [2, 1] });
        const pos = kiln.tensor(Int32Array.from(starts), { shape: [2, 1] });
        let x = kiln.nn.functional.embedding(idx, tr.wte.weight).add(kiln.nn.functional.embedding(pos, tr.wpe.weight));
        [...tr.h].forEach((block, l) => { x = block.forward(x, { cache: a, rows, starts }, l); });
        const want = gpt.lm_head.forward(tr.ln_f.forward(x)).data();
        const got = gptModelDecode(Int32Array.from(tokens), weights, [0, 1].map((l) => b.layer(l)), rows, starts, cfg.heads, 1e-5);
        if (got) { fused++; if (got.data().some((v, i) => v !== want[i])) differ++; }
      });
    }
    console.log(JSON.stringify({ backend: kiln.backendInfo().name, threads: kiln.backendInfo().threads, fused, differ }));`;
  // a file, not node -e: under --input-type=module the workers get the options without it, and Node refuses a
  // V8 option such as --liftoff-only in a worker's own list (V8 options are process-wide anyway)
  const dir = mkdtempSync(join(tmpdir(), 'kiln-liftoff-'));
  const file = join(dir, 'decode.mts');
  writeFileSync(file, script);
  let res;
  try {
    res = spawnSync(process.execPath, ['--liftoff-only', '--import', 'tsx', '--import', './src/node.ts', file],
      { cwd: root, env: { ...process.env, KILN_BACKEND: 'wasm', KILN_THREADS: '2' }, encoding: 'utf8', timeout: 120_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout.trim().split('\n').pop()!) as { backend: string; threads: number; fused: number; differ: number };
  assert.deepEqual([out.backend, out.threads, out.fused], ['wasm', 2, 150]);
  assert.equal(out.differ, 0, 'fused steps whose logits differ from the layer-by-layer step');
});

test('the pool\'s workers start under node --input-type=module (node -e with imports)', () => {
  const res = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
    "import { loadWasmBackend, wasmControls } from './src/backend/wasm/node.ts'; const err = loadWasmBackend().error; " +
    'const c = wasmControls(); for (let i = 0; i < 300 && c.workersReady() < 2; i++) await new Promise((r) => setTimeout(r, 10)); ' +
    'console.log(JSON.stringify({ err, ready: c.workersReady() }));'],
  { cwd: root, env: { ...process.env, KILN_THREADS: '3' }, encoding: 'utf8', timeout: 60_000 });
  assert.equal(res.status, 0, res.stderr);
  assert.deepEqual(JSON.parse(res.stdout.trim()), { ready: 2 }, 'both workers joined (the worker source is CommonJS)');
  assert.doesNotMatch(res.stderr, /failed to start/);
});

test('a bad KILN_WASM_HEAP_BYTES is named', () => {
  const res = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
    "import { loadWasmBackend } from './src/backend/wasm/node.ts'; console.log(JSON.stringify(loadWasmBackend().error));"],
  { cwd: root, env: { ...process.env, KILN_WASM_HEAP_BYTES: 'lots' }, encoding: 'utf8' });
  assert.equal(res.status, 0, res.stderr);
  assert.match(res.stdout, /KILN_WASM_HEAP_BYTES must be a whole number of bytes .* got 'lots'/);
});

/** Why the wasm toolchain is absent, or null: clang, wasm-ld and wasi-libc's libc.a. */
function missingToolchain(): string | null {
  for (const tool of ['clang', 'wasm-ld']) {
    if (spawnSync(tool, ['--version']).error) return `${MISSING_PREREQUISITE} ${tool} is not installed (apt-get install -y clang lld wasi-libc)`;
  }
  if (!existsSync('/usr/lib/wasm32-wasi/libc.a') && !process.env.KILN_WASI_LIB) {
    return `${MISSING_PREREQUISITE} wasi-libc is not installed (apt-get install -y wasi-libc)`;
  }
  return null;
}

// The rebuild takes a while on 2 cores: once per test run (the js pass), not once per backend.
const buildPass = (process.env.KILN_BACKEND ?? 'js') === 'js';
test('the committed kiln.wasm and kiln-single.wasm match a fresh build of native/',
  { skip: !buildPass ? 'checked in the js pass only' : missingToolchain() ?? false }, () => {
    const res = spawnSync(process.execPath, [join(root, 'scripts', 'build-wasm.mjs'), '--check'], { encoding: 'utf8' });
    assert.equal(res.status, 0, `${res.stdout}${res.stderr}`);
    assert.match(res.stdout, /kiln\.wasm matches its sources/);
    assert.match(res.stdout, /kiln-single\.wasm matches its sources/);
  });

// Determinism: the same GEMM, attention and indexAdd twice give bitwise equal results, and (native, wasm) so do runs
// with one thread and with every thread: parallel kernels split work in fixed chunks, never by timing.

import { test } from 'node:test';
import { backend, backendInfo } from '../../src/backend/node.js';
import { nativeControls } from '../../src/backend/native/index.js';
import { wasmControls } from '../../src/backend/wasm/node.js';
import { assertBitwiseEqual, randF32, randInt, rng } from './helpers.js';

const be = backend();
const name = backendInfo().name;
const controls = name === 'native' ? nativeControls() : name === 'wasm' ? wasmControls() : undefined;

/** Runs fn with every thread, again, then with one thread (native), and checks the outputs are bitwise equal. */
function repeatable(label: string, fn: () => Float32Array[]): void {
  const first = fn();
  const runs = [fn()];
  if (controls) {
    const all = controls.info().poolSize;
    try {
      controls.setThreads(1);
      runs.push(fn());
    } finally {
      controls.setThreads(all);
    }
  }
  for (const [r, outs] of runs.entries()) {
    outs.forEach((o, i) => assertBitwiseEqual(o, first[i], `${label}: run ${r + 2}, output ${i}`));
  }
}

test('gemm is bitwise repeatable (all transposes, threaded shapes, batched)', () => {
  const r = rng(21);
  const [M, N, K] = [301, 517, 389];
  const A = randF32(r, M * K);
  const B = randF32(r, K * N);
  const C0 = randF32(r, M * N);
  for (const tA of [false, true]) {
    for (const tB of [false, true]) {
      repeatable(`gemm tA=${tA} tB=${tB}`, () => {
        const C = C0.slice();
        be.gemm(tA, tB, 1, M, N, K, 0.5, A, 0, B, 0, 0.25, C, 0);
        return [C];
      });
    }
  }
  const A3 = randF32(r, 700 * 300);
  repeatable('gemm tall and narrow (row blocks shared by the threads)', () => {
    const C = new Float32Array(700 * 100);
    be.gemm(false, true, 1, 700, 100, 300, 1, A3, 0, B, 0, 0, C, 0);
    return [C];
  });
  const B2 = randF32(r, 300 * 2000);
  repeatable('gemm small M (column split)', () => {
    const C = new Float32Array(5 * 2000);
    be.gemm(false, false, 1, 5, 2000, 300, 1, A, 0, B2, 0, 0, C, 0);
    return [C];
  });
  repeatable('gemm batched', () => {
    const C = new Float32Array(6 * 40 * 50);
    be.gemm(false, true, 6, 40, 50, 60, 1, A, 40 * 60, B, 0, 0, C, 40 * 50);
    return [C];
  });
});

test('attention forward and backward are bitwise repeatable', () => {
  const r = rng(22);
  const [B, T, NH, HS] = [2, 100, 3, 32];
  const n = B * T * NH * HS;
  const q = randF32(r, n);
  const k = randF32(r, n);
  const v = randF32(r, n);
  const dout = randF32(r, n);
  repeatable('attention', () => {
    const out = new Float32Array(n);
    const lse = new Float32Array(B * NH * T);
    be.attention(q, k, v, B, T, T, NH, HS, true, 0.17, out, lse);
    const dq = new Float32Array(n);
    const dk = new Float32Array(n);
    const dv = new Float32Array(n);
    be.attentionBackward(dout, q, k, v, out, lse, B, T, T, NH, HS, true, 0.17, dq, dk, dv);
    return [out, lse, dq, dk, dv];
  });
});

test('indexAdd (embedding scatter-add with repeated indices) is bitwise repeatable', () => {
  const r = rng(23);
  const [V, C, N] = [1000, 256, 4096];
  const dout = randF32(r, N * C);
  const idx = randInt(r, N, 0, 50); // many repeats
  const start = randF32(r, V * C);
  repeatable('indexAdd', () => {
    const dx = start.slice();
    be.indexAdd(dout, 1, V, C, idx, dx);
    return [dx];
  });
});

test('kernels called from several JavaScript threads at once give the same results', { skip: name !== 'native' }, async () => {
  const { Worker } = await import('node:worker_threads');
  const { dirname, join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const addon = process.env.KILN_NATIVE_PATH || join(root, 'build', 'Release', 'kiln_native.node');
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const n = require(workerData);
    const M = 200, K = 300, N = 250;
    const A = new Float32Array(M * K).map((_, i) => (i % 7) - 2.5), B = new Float32Array(K * N).map((_, i) => (i % 5) - 1.25);
    const C = new Float32Array(M * N);
    for (let r = 0; r < 40; r++) n.gemm(false, true, 1, M, N, K, 1, A, 0, B, 0, 0, C, 0);
    parentPort.postMessage(C);`;
  const workers = [0, 1, 2].map(() => new Worker(code, { eval: true, workerData: addon }));
  const results = await Promise.all(workers.map((w) => new Promise<Float32Array>((res, rej) => {
    w.on('message', res);
    w.on('error', rej);
  })));
  await Promise.all(workers.map((w) => w.terminate()));
  const [M, K, N] = [200, 300, 250];
  const A = new Float32Array(M * K).map((_, i) => (i % 7) - 2.5);
  const B = new Float32Array(K * N).map((_, i) => (i % 5) - 1.25);
  const C = new Float32Array(M * N);
  be.gemm(false, true, 1, M, N, K, 1, A, 0, B, 0, 0, C, 0);
  results.forEach((r, i) => assertBitwiseEqual(r, C, `worker ${i}`));
});

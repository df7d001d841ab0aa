// Conformance: every kernel of the Backend contract on the active backend (KILN_BACKEND=native|wasm|js) against the
// reference backend, on random inputs and awkward shapes. With the native backend, the GEMM and the vectorised
// kernels are also run under every instruction set this CPU has (avx512, avx2, scalar); with the wasm backend under
// simd128 and scalar.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backend, backendInfo, jsBackend } from '../../src/backend/node.js';
import type { BinaryOp, UnaryOp } from '../../src/backend/node.js';
import { nativeControls } from '../../src/backend/native/index.js';
import { wasmControls } from '../../src/backend/wasm/node.js';
import { assertClose, randF32, randInt, rng } from './helpers.js';

const be = backend();
const info = backendInfo();
const controls = info.name === 'native' ? nativeControls() : info.name === 'wasm' ? wasmControls() : undefined;
/** The backends whose kernels are C (the addon or its wasm build): same checks and error messages. */
const compiled = info.name === 'native' || info.name === 'wasm';
const defaultIsa = controls?.info().isa;

/** Runs fn once per instruction set available (once for the js backend), restoring the default after. */
function forEachIsa(fn: (isa: string) => void): void {
  if (!controls) { fn('js'); return; }
  try {
    for (const isa of ['avx512', 'avx2', 'neon', 'simd128', 'scalar']) {
      if (!controls.setIsa(isa)) continue;
      fn(isa);
    }
  } finally {
    controls.setIsa(defaultIsa!);
  }
}

test(`backend in use: ${info.name}${info.isa ? ` (${info.isa}, ${info.threads} threads)` : ''}`, () => {
  assert.ok(info.name === 'js' || info.name === 'native' || info.name === 'wasm');
  if (process.env.KILN_BACKEND === 'native') assert.equal(info.name, 'native', `native requested but ${info.reason}`);
  if (process.env.KILN_BACKEND === 'wasm') assert.equal(info.name, 'wasm', `wasm requested but ${info.reason}`);
});

test('fill and copy', () => {
  const r = rng(1);
  for (const n of [0, 1, 17, 300001]) {
    const a = new Float32Array(n);
    be.fill(a, 2.5);
    assert.ok(a.every((v) => v === 2.5));
    const src = randF32(r, n);
    const dst = new Float32Array(n);
    be.copy(src, dst);
    assert.deepEqual(dst, src);
  }
  const i32 = new Int32Array(4);
  be.copy(new Float32Array([1.7, -1.7, 2, -0.2]), i32);
  assert.deepEqual([...i32], [1, -1, 2, 0]);
  const f64 = new Float64Array(3);
  be.fill(f64, -1);
  assert.deepEqual([...f64], [-1, -1, -1]);
});

const UNARY: UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'sign', 'square', 'reciprocal', 'tanh',
  'sigmoid', 'relu', 'gelu', 'gelu_tanh', 'silu', 'sin', 'cos'];
const POSITIVE = new Set<UnaryOp>(['log', 'sqrt', 'rsqrt']);
const SPECIAL = [0, -0, 1, -1, 1e-30, -1e-30, 30, -30, 100, -100, Infinity, -Infinity, NaN, 1e30, -1e30, 3.5, -3.5];

test('unary and unaryBackward, every op, under every instruction set', () => {
  const r = rng(2);
  for (const op of UNARY) {
    for (const n of [0, 1, 31, 200003]) {
      const x = POSITIVE.has(op) ? randF32(r, n, 0.01, 10) : randF32(r, n, -6, 6);
      const want = new Float32Array(n);
      jsBackend.unary(op, x, want);
      const dy = randF32(r, n);
      const dWant = new Float32Array(n);
      jsBackend.unaryBackward(op, x, want, dy, dWant);
      forEachIsa((isa) => {
        const got = new Float32Array(n);
        be.unary(op, x, got);
        assertClose(got, want, `${isa} unary ${op} n=${n}`, 2e-6, 1e-7);
        const dGot = new Float32Array(n);
        be.unaryBackward(op, x, want, dy, dGot);
        assertClose(dGot, dWant, `${isa} unaryBackward ${op} n=${n}`, 1e-5, 1e-6);
      });
    }
    const x = new Float32Array(SPECIAL);
    const want = new Float32Array(x.length);
    jsBackend.unary(op, x, want);
    forEachIsa((isa) => {
      const got = new Float32Array(x.length);
      be.unary(op, x, got);
      assertClose(got, want, `${isa} unary ${op} on special values`, 2e-6, 1e-30);
    });
  }
  // in place
  const x = randF32(r, 1000);
  const want = new Float32Array(1000);
  jsBackend.unary('tanh', x, want);
  be.unary('tanh', x, x);
  assertClose(x, want, 'unary in place', 2e-6, 1e-7);
  // float64 goes to the reference path
  const d = new Float64Array([0.5, -2]);
  const o = new Float64Array(2);
  be.unary('exp', d, o);
  assert.deepEqual([...o], [Math.exp(0.5), Math.exp(-2)]);
});

test('gelu matches the reference erf closely', () => {
  const n = 20001;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = -10 + (20 * i) / (n - 1);
  const got = new Float32Array(n);
  const want = new Float32Array(n);
  be.unary('gelu', x, got);
  jsBackend.unary('gelu', x, want);
  assertClose(got, want, 'gelu', 1e-6, 1e-12);
});

test('clamp', () => {
  const r = rng(3);
  const x = randF32(r, 100001, -3, 3);
  x[5] = NaN;
  const got = new Float32Array(x.length);
  const want = new Float32Array(x.length);
  be.clamp(x, -1, 0.5, got);
  jsBackend.clamp(x, -1, 0.5, want);
  assertClose(got, want, 'clamp', 0, 0);
});

const BINARY: BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'];
const BCAST: [number[], number[], number[]][] = [
  [[], [], []],
  [[7], [7], [7]],
  [[300, 500], [300, 500], [300, 500]],
  [[200, 500], [1, 1], [200, 500]],
  [[1, 1], [40, 33], [40, 33]],
  [[200, 1000], [1, 1000], [200, 1000]],
  [[64, 1000], [64, 1], [64, 1000]],
  [[2, 1, 5], [1, 3, 5], [2, 3, 5]],
  [[4, 3, 1, 6], [4, 1, 5, 1], [4, 3, 5, 6]],
  [[0, 3], [1, 3], [0, 3]],
  [[2, 1, 1, 9, 1], [1, 3, 1, 9, 4], [2, 3, 1, 9, 4]],
  [[1], [13], [13]],
];

test('binary with broadcasting, every op and shape', () => {
  const r = rng(4);
  const size = (s: number[]) => s.reduce((p, d) => p * d, 1);
  for (const op of BINARY) {
    for (const [as, bs, os] of BCAST) {
      // quantised values so comparisons see ties; positive bases for pow
      const q = (n: number) => {
        const a = randF32(r, n, -3, 3);
        for (let i = 0; i < n; i++) a[i] = op === 'pow' ? Math.abs(Math.round(a[i] * 2) / 2) + 0.25 : Math.round(a[i] * 2) / 2;
        return a;
      };
      const a = q(size(as));
      const b = q(size(bs));
      if (op === 'div') for (let i = 0; i < b.length; i++) if (b[i] === 0) b[i] = 0.5;
      const got = new Float32Array(size(os));
      const want = new Float32Array(size(os));
      be.binary(op, a, as, b, bs, got, os);
      jsBackend.binary(op, a, as, b, bs, want, os);
      assertClose(got, want, `binary ${op} ${JSON.stringify(as)} ${JSON.stringify(bs)}`, 2e-6, 1e-7);
    }
  }
  // NaN semantics of max/min/pow/comparisons
  const a = new Float32Array([NaN, 1, NaN, 2, 1, -1, 0]);
  const b = new Float32Array([1, NaN, NaN, 2, NaN, Infinity, 0]);
  for (const op of BINARY) {
    const got = new Float32Array(7);
    const want = new Float32Array(7);
    be.binary(op, a, [7], b, [7], got, [7]);
    jsBackend.binary(op, a, [7], b, [7], want, [7]);
    assertClose(got, want, `binary ${op} NaN semantics`, 0, 0);
  }
  // mixed dtypes take the reference path
  const i = new Int32Array([1, 2, 3]);
  const o = new Int32Array(3);
  be.binary('add', i, [3], new Int32Array([1]), [1], o, [3]);
  assert.deepEqual([...o], [2, 3, 4]);
});

test('where and expand', () => {
  const r = rng(5);
  const size = (s: number[]) => s.reduce((p, d) => p * d, 1);
  const cases: [number[], number[], number[], number[]][] = [
    [[5], [5], [5], [5]],
    [[300, 700], [300, 700], [1, 1], [300, 700]],
    [[1, 4], [3, 1], [3, 4], [3, 4]],
    [[2, 1, 3], [1, 5, 1], [2, 5, 3], [2, 5, 3]],
    [[0, 2], [1, 2], [1, 1], [0, 2]],
  ];
  for (const [cs, as, bs, os] of cases) {
    const condF = randF32(r, size(cs));
    for (let i = 0; i < condF.length; i++) condF[i] = condF[i] > 0 ? 1 : 0;
    const condI = Int32Array.from(condF);
    const a = randF32(r, size(as));
    const b = randF32(r, size(bs));
    for (const cond of [condF, condI]) {
      const got = new Float32Array(size(os));
      const want = new Float32Array(size(os));
      be.where(cond, cs, a, as, b, bs, got, os);
      jsBackend.where(cond, cs, a, as, b, bs, want, os);
      assertClose(got, want, `where ${JSON.stringify([cs, as, bs])}`, 0, 0);
    }
    const got = new Float32Array(size(os));
    const want = new Float32Array(size(os));
    be.expand(a, as, got, os);
    jsBackend.expand(a, as, want, os);
    assertClose(got, want, `expand ${JSON.stringify(as)}`, 0, 0);
  }
});

test('reduce and argmax', () => {
  const r = rng(6);
  const shapes = [[1, 1, 1], [3, 17, 1], [1, 100000, 1], [4, 5, 6], [2, 0, 3], [0, 4, 2], [300, 200, 1], [7, 300, 65]];
  for (const [outer, dim, inner] of shapes) {
    const x = randF32(r, outer * dim * inner, -2, 2);
    for (let i = 0; i < x.length; i++) x[i] = Math.round(x[i] * 4) / 4; // ties for argmax
    for (const op of ['sum', 'max', 'min'] as const) {
      const got = new Float32Array(outer * inner);
      const want = new Float32Array(outer * inner);
      be.reduce(op, x, outer, dim, inner, got);
      jsBackend.reduce(op, x, outer, dim, inner, want);
      assertClose(got, want, `reduce ${op} ${outer}x${dim}x${inner}`, 1e-5, 1e-4);
    }
    const got = new Int32Array(outer * inner);
    const want = new Int32Array(outer * inner);
    be.argmax(x, outer, dim, inner, got);
    jsBackend.argmax(x, outer, dim, inner, want);
    assert.deepEqual(got, want, `argmax ${outer}x${dim}x${inner}`);
  }
  // NaN wins, the first one for argmax
  const x = new Float32Array([1, NaN, 3, NaN, 2, 5, 0, -1, NaN]);
  for (const op of ['sum', 'max', 'min'] as const) {
    for (const [o, d, i] of [[3, 3, 1], [1, 3, 3]]) {
      const got = new Float32Array(o * i);
      const want = new Float32Array(o * i);
      be.reduce(op, x, o, d, i, got);
      jsBackend.reduce(op, x, o, d, i, want);
      assertClose(got, want, `reduce ${op} with NaN`, 0, 0);
    }
  }
  for (const [o, d, i] of [[3, 3, 1], [1, 3, 3]]) {
    const got = new Int32Array(o * i);
    const want = new Int32Array(o * i);
    be.argmax(x, o, d, i, got);
    jsBackend.argmax(x, o, d, i, want);
    assert.deepEqual(got, want, 'argmax with NaN');
  }
});

test('argmax of contiguous rows: the first of equal values (+0 and -0 too), rows of -inf, NaN anywhere, every length, under every instruction set', () => {
  const r = rng(16);
  const rows: Float32Array[] = [];
  for (const n of [...Array.from({ length: 41 }, (_, i) => i), 4096, 4101]) {
    const x = randF32(r, n, -2, 2);
    for (let i = 0; i < n; i++) x[i] = Math.round(x[i] * 2) / 2; // ties
    rows.push(x, x.map(() => -Infinity), x.map((v, i) => (i % 3 ? -0 : 0)));
    for (const at of [0, 5, 16, 17, n - 1]) {
      if (at < 0 || at >= n) continue;
      const big = x.slice();
      big[at] = 7; // the largest, alone (in a whole vector or in the tail)
      const nan = x.slice();
      nan[at] = NaN;
      rows.push(big, nan, big.map((v, i) => (i === at ? Infinity : v)));
    }
  }
  forEachIsa((isa) => {
    for (const x of rows) {
      const got = new Int32Array(1);
      const want = new Int32Array(1);
      be.argmax(x, 1, x.length, 1, got);
      jsBackend.argmax(x, 1, x.length, 1, want);
      assert.equal(got[0], want[0], `${isa}: argmax of [${Array.from(x.slice(0, 20))}${x.length > 20 ? ', ...' : ''}] (${x.length})`);
    }
  });
});

/** One GEMM case against the reference, C starting from random values (or NaN with beta 0). */
function gemmCase(r: () => number, tA: boolean, tB: boolean, batch: number, M: number, N: number, K: number,
  alpha: number, beta: number, broadcast: 'none' | 'A' | 'B', label: string): void {
  const sA = broadcast === 'A' ? 0 : M * K;
  const sB = broadcast === 'B' ? 0 : K * N;
  const sC = M * N;
  const A = randF32(r, Math.max(1, batch * M * K));
  const B = randF32(r, Math.max(1, batch * K * N));
  const C0 = randF32(r, batch * M * N);
  if (beta === 0) C0.fill(NaN);
  const got = C0.slice();
  const want = C0.slice();
  be.gemm(tA, tB, batch, M, N, K, alpha, A, sA, B, sB, beta, got, sC);
  jsBackend.gemm(tA, tB, batch, M, N, K, alpha, A, sA, B, sB, beta, want, sC);
  if (beta === 0) assert.ok(!got.some(Number.isNaN), `${label}: NaN in C leaked with beta 0`);
  assertClose(got, want, label, 1e-5, 1e-6 * (K + 1) * Math.max(1, Math.abs(alpha)));
}

test('gemm: every size class, transpose and beta, under every instruction set', () => {
  const r = rng(7);
  const small = [0, 1, 3, 17, 65];
  forEachIsa((isa) => {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        for (const M of small) for (const N of small) for (const K of small) {
          gemmCase(r, tA, tB, 1, M, N, K, 1, 0, 'none', `${isa} gemm tA=${tA} tB=${tB} ${M}x${N}x${K}`);
        }
        const big: [number, number, number][] = [[63, 64, 65], [64, 63, 129], [129, 300, 17], [300, 129, 63],
          [1, 300, 300], [300, 1, 300], [300, 300, 1], [520, 40, 300], [20, 4100, 9], [9, 33, 520], [150, 70, 260],
          // streamed small-M products (5..16 rows): whole 48-column blocks and a tail, K with and without a vector tail
          [12, 100, 37], [16, 96, 64], [8, 113, 33],
          // last blocks of 32 and 16 columns (whole vectors, not masked), beside a masked one of 40
          [16, 128, 64], [10, 64, 40], [7, 80, 20], [6, 40, 17]];
        for (const [M, N, K] of big) {
          for (const [alpha, beta] of [[1, 0], [1, 1], [0.5, -0.75]]) {
            gemmCase(r, tA, tB, 1, M, N, K, alpha, beta, 'none', `${isa} gemm tA=${tA} tB=${tB} ${M}x${N}x${K} a=${alpha} b=${beta}`);
          }
        }
      }
    }
  });
});

test('gemm: batched, stride-0 broadcast, alpha 0, empty dims', () => {
  const r = rng(8);
  for (const tA of [false, true]) {
    for (const tB of [false, true]) {
      for (const bc of ['none', 'A', 'B'] as const) {
        gemmCase(r, tA, tB, 3, 17, 33, 65, 1, 0, bc, `batched ${bc} tA=${tA} tB=${tB}`);
        gemmCase(r, tA, tB, 4, 64, 64, 64, 1, 1, bc, `batched ${bc} beta 1 tA=${tA} tB=${tB}`);
        gemmCase(r, tA, tB, 2, 130, 70, 300, 0.25, 2, bc, `batched ${bc} beta 2 tA=${tA} tB=${tB}`);
        gemmCase(r, tA, tB, 16, 5, 7, 3, 1, 0, bc, `batched 16 ${bc} tA=${tA} tB=${tB}`);
      }
    }
  }
  gemmCase(r, false, false, 2, 5, 6, 7, 0, 0, 'none', 'alpha 0 beta 0');
  gemmCase(r, false, false, 2, 5, 6, 7, 0, 0.5, 'none', 'alpha 0 beta 0.5');
  gemmCase(r, false, false, 2, 5, 6, 0, 1, 0, 'none', 'K 0 beta 0');
  gemmCase(r, false, false, 2, 5, 6, 0, 1, 3, 'none', 'K 0 beta 3');
  gemmCase(r, false, false, 0, 5, 6, 7, 1, 0, 'none', 'batch 0');
  // the large shapes of the benchmark, a few entries checked in float64
  const [M, N, K] = [600, 700, 1100];
  const A = randF32(r, M * K);
  const B = randF32(r, K * N);
  const C = new Float32Array(M * N);
  be.gemm(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, C, 0);
  for (let t = 0; t < 200; t++) {
    const i = Math.floor(r() * M);
    const j = Math.floor(r() * N);
    let s = 0;
    for (let k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j];
    assert.ok(Math.abs(C[i * N + j] - s) < 1e-3, `large gemm (${i}, ${j}): ${C[i * N + j]} vs ${s}`);
  }
  // float64 goes to the reference path
  const a64 = new Float64Array([1, 2, 3, 4]);
  const c64 = new Float64Array(4);
  be.gemm(false, false, 1, 2, 2, 2, 1, a64, 0, a64, 0, 0, c64, 0);
  assert.deepEqual([...c64], [7, 10, 15, 22]);
});

test('softmax and log-softmax, forward and backward', () => {
  const r = rng(9);
  forEachIsa((isa) => {
    for (const [rows, cols] of [[0, 5], [1, 1], [3, 17], [64, 1000], [5, 4099], [2, 0]]) {
      const x = randF32(r, rows * cols, -8, 8);
      if (rows * cols > 20) { x[3] = -Infinity; x[7] = -Infinity; }
      for (const log of [false, true]) {
        const got = new Float32Array(rows * cols);
        const want = new Float32Array(rows * cols);
        be.softmax(x, rows, cols, log, got);
        jsBackend.softmax(x, rows, cols, log, want);
        assertClose(got, want, `${isa} softmax log=${log} ${rows}x${cols}`, 1e-5, 1e-7);
        const dy = randF32(r, rows * cols);
        const dGot = new Float32Array(rows * cols);
        const dWant = new Float32Array(rows * cols);
        be.softmaxBackward(want, dy, rows, cols, log, dGot);
        jsBackend.softmaxBackward(want, dy, rows, cols, log, dWant);
        assertClose(dGot, dWant, `${isa} softmaxBackward log=${log} ${rows}x${cols}`, 1e-4, 1e-6);
      }
    }
    // a row of -inf gives NaN, as in PyTorch
    const x = new Float32Array([-Infinity, -Infinity, 1, 2]);
    const got = new Float32Array(4);
    const want = new Float32Array(4);
    be.softmax(x, 2, 2, false, got);
    jsBackend.softmax(x, 2, 2, false, want);
    assertClose(got, want, `${isa} softmax -inf row`, 1e-6, 1e-7);
  });
});

test('layer norm, forward and backward, with and without affine parameters', () => {
  const r = rng(10);
  for (const [rows, C] of [[1, 1], [3, 17], [200, 256], [7, 1000], [0, 8]]) {
    for (const affine of [true, false]) {
      const x = randF32(r, rows * C, -3, 5);
      const w = affine ? randF32(r, C) : null;
      const b = affine ? randF32(r, C) : null;
      const out = [new Float32Array(rows * C), new Float32Array(rows * C)];
      const mean = [new Float32Array(rows), new Float32Array(rows)];
      const rstd = [new Float32Array(rows), new Float32Array(rows)];
      be.layerNorm(x, w, b, rows, C, 1e-5, out[0], mean[0], rstd[0]);
      jsBackend.layerNorm(x, w, b, rows, C, 1e-5, out[1], mean[1], rstd[1]);
      assertClose(out[0], out[1], `layerNorm ${rows}x${C}`, 1e-4, 1e-5);
      assertClose(mean[0], mean[1], 'layerNorm mean', 1e-5, 1e-6);
      assertClose(rstd[0], rstd[1], 'layerNorm rstd', 1e-4, 1e-6);
      const dy = randF32(r, rows * C);
      const dx = [new Float32Array(rows * C), new Float32Array(rows * C)];
      const start = randF32(r, C);
      const dw = affine ? [start.slice(), start.slice()] : [null, null];
      const db = affine ? [start.slice(), start.slice()] : [null, null];
      be.layerNormBackward(dy, x, w, mean[1], rstd[1], rows, C, dx[0], dw[0], db[0]);
      jsBackend.layerNormBackward(dy, x, w, mean[1], rstd[1], rows, C, dx[1], dw[1], db[1]);
      assertClose(dx[0], dx[1], `layerNormBackward dx ${rows}x${C}`, 1e-4, 1e-5);
      if (affine) {
        assertClose(dw[0]!, dw[1]!, 'layerNormBackward dweight', 1e-4, 1e-4);
        assertClose(db[0]!, db[1]!, 'layerNormBackward dbias', 1e-4, 1e-4);
      }
    }
  }
});

test('cross-entropy with ignore index and label smoothing, forward and backward', () => {
  const r = rng(11);
  forEachIsa((isa) => {
    for (const [N, V] of [[1, 1], [5, 17], [64, 1000], [9, 4099], [0, 10]]) {
      for (const smoothing of [0, 0.1]) {
        const logits = randF32(r, N * V, -10, 10);
        const targets = randInt(r, N, 0, V);
        if (N > 2) { targets[1] = -100; targets[N - 1] = -100; }
        const losses = [new Float32Array(N), new Float32Array(N)];
        const lse = [new Float32Array(N), new Float32Array(N)];
        be.crossEntropy(logits, targets, N, V, -100, smoothing, losses[0], lse[0]);
        jsBackend.crossEntropy(logits, targets, N, V, -100, smoothing, losses[1], lse[1]);
        assertClose(losses[0], losses[1], `${isa} crossEntropy ${N}x${V} s=${smoothing}`, 1e-5, 1e-5);
        assertClose(lse[0], lse[1], `${isa} crossEntropy lse`, 1e-6, 1e-5);
        const dl = randF32(r, N);
        const d = [new Float32Array(N * V).fill(7), new Float32Array(N * V).fill(7)];
        be.crossEntropyBackward(logits, targets, lse[1], dl, N, V, -100, smoothing, d[0]);
        jsBackend.crossEntropyBackward(logits, targets, lse[1], dl, N, V, -100, smoothing, d[1]);
        assertClose(d[0], d[1], `${isa} crossEntropyBackward ${N}x${V} s=${smoothing}`, 1e-5, 1e-7);
      }
    }
  });
  const bad = new Int32Array([0, 5]);
  assert.throws(() => be.crossEntropy(new Float32Array(6), bad, 2, 3, -100, 0, new Float32Array(2), new Float32Array(2)),
    /target 5 at row 1 is outside \[0, 3\)/);
});

test('indexSelect, indexAdd, gather, scatterAdd', () => {
  const r = rng(12);
  for (const [outer, dim, inner, k] of [[1, 10, 4, 7], [3, 5, 1, 9], [1, 4096, 256, 1024], [2, 3, 0, 4], [1, 7, 3, 0]]) {
    const x = randF32(r, outer * dim * inner);
    const idx = randInt(r, k, 0, dim);
    const got = new Float32Array(outer * k * inner);
    const want = new Float32Array(outer * k * inner);
    be.indexSelect(x, outer, dim, inner, idx, got);
    jsBackend.indexSelect(x, outer, dim, inner, idx, want);
    assertClose(got, want, `indexSelect ${outer}x${dim}x${inner} k=${k}`, 0, 0);
    const dout = randF32(r, outer * k * inner);
    const start = randF32(r, outer * dim * inner);
    const dGot = start.slice();
    const dWant = start.slice();
    be.indexAdd(dout, outer, dim, inner, idx, dGot);
    jsBackend.indexAdd(dout, outer, dim, inner, idx, dWant);
    assertClose(dGot, dWant, `indexAdd ${outer}x${dim}x${inner} k=${k}`, 0, 0);
    const gidx = randInt(r, outer * k * inner, 0, dim);
    const gGot = new Float32Array(outer * k * inner);
    const gWant = new Float32Array(outer * k * inner);
    be.gather(x, outer, dim, inner, gidx, k, gGot);
    jsBackend.gather(x, outer, dim, inner, gidx, k, gWant);
    assertClose(gGot, gWant, `gather ${outer}x${dim}x${inner} k=${k}`, 0, 0);
    const sGot = start.slice();
    const sWant = start.slice();
    be.scatterAdd(dout, outer, dim, inner, gidx, k, sGot);
    jsBackend.scatterAdd(dout, outer, dim, inner, gidx, k, sWant);
    assertClose(sGot, sWant, `scatterAdd ${outer}x${dim}x${inner} k=${k}`, 0, 0);
  }
  if (compiled) {
    assert.throws(() => be.indexSelect(new Float32Array(4), 1, 2, 2, new Int32Array([2]), new Float32Array(2)),
      /index 2 at position 0 is outside \[0, 2\)/);
    assert.throws(() => be.indexAdd(new Float32Array(2), 1, 2, 2, new Int32Array([-1]), new Float32Array(4)), /outside/);
  }
});

test('permute, sliceCopy, sliceAssign', () => {
  const r = rng(13);
  const cases: [number[], number[]][] = [[[], []], [[5], [0]], [[3, 4], [1, 0]], [[2, 3, 4], [2, 0, 1]],
    [[4, 64, 4, 16], [0, 2, 1, 3]], [[2, 1, 3, 1, 5], [4, 3, 2, 1, 0]], [[3, 0, 2], [2, 1, 0]], [[33, 65], [1, 0]],
    [[8, 128, 6, 64], [0, 2, 1, 3]]];
  for (const [shape, perm] of cases) {
    const n = shape.reduce((p, d) => p * d, 1);
    const x = randF32(r, n);
    const got = new Float32Array(n);
    const want = new Float32Array(n);
    be.permute(x, shape, perm, got);
    jsBackend.permute(x, shape, perm, want);
    assertClose(got, want, `permute ${JSON.stringify(shape)} ${JSON.stringify(perm)}`, 0, 0);
  }
  for (const [outer, dim, inner, start, len] of [[1, 10, 1, 2, 5], [3, 7, 4, 0, 7], [4, 9, 300, 3, 6], [2, 5, 3, 5, 0]]) {
    const src = randF32(r, outer * dim * inner);
    const got = new Float32Array(outer * len * inner);
    const want = new Float32Array(outer * len * inner);
    be.sliceCopy(src, outer, dim, inner, start, len, got);
    jsBackend.sliceCopy(src, outer, dim, inner, start, len, want);
    assertClose(got, want, 'sliceCopy', 0, 0);
    const dGot = src.slice();
    const dWant = src.slice();
    be.sliceAssign(want, outer, dim, inner, start, len, dGot);
    jsBackend.sliceAssign(want, outer, dim, inner, start, len, dWant);
    assertClose(dGot, dWant, 'sliceAssign', 0, 0);
  }
});

test('attention, forward and backward: causal, KV cache, rows without keys, blocks of queries', () => {
  const r = rng(14);
  const cases: [number, number, number, number, number, boolean][] = [
    [2, 5, 5, 3, 4, true], [2, 5, 5, 3, 4, false], [1, 1, 7, 2, 8, true], [1, 3, 9, 2, 8, true],
    [2, 70, 70, 2, 16, true], [1, 3, 2, 1, 4, true], [1, 130, 130, 1, 64, true], [3, 65, 65, 4, 32, false],
    [1, 4, 0, 2, 4, true], [2, 9, 9, 1, 1, true],
    // decoding steps (a few query rows against a longer cache): the native direct path, with vector tails
    [2, 1, 37, 4, 64, true], [3, 2, 50, 2, 20, true], [2, 4, 4, 3, 17, false], [1, 4, 130, 2, 48, true],
    [1, 1, 33, 2, 80, true], [1, 2, 40, 1, 144, true], [2, 3, 21, 1, 136, true],
  ];
  forEachIsa((isa) => {
    for (const [B, Tq, Tk, NH, HS, causal] of cases) {
      const C = NH * HS;
      const q = randF32(r, B * Tq * C, -2, 2);
      const k = randF32(r, B * Tk * C, -2, 2);
      const v = randF32(r, B * Tk * C);
      const scale = 1 / Math.sqrt(Math.max(1, HS));
      const out = [new Float32Array(B * Tq * C), new Float32Array(B * Tq * C)];
      const lse = [new Float32Array(B * NH * Tq), new Float32Array(B * NH * Tq)];
      const label = `${isa} attention B=${B} Tq=${Tq} Tk=${Tk} NH=${NH} HS=${HS} causal=${causal}`;
      be.attention(q, k, v, B, Tq, Tk, NH, HS, causal, scale, out[0], lse[0]);
      jsBackend.attention(q, k, v, B, Tq, Tk, NH, HS, causal, scale, out[1], lse[1]);
      assertClose(out[0], out[1], `${label} out`, 1e-4, 1e-5);
      assertClose(lse[0], lse[1], `${label} lse`, 1e-5, 1e-5);
      const dout = randF32(r, B * Tq * C);
      const g = [0, 1].map(() => [new Float32Array(B * Tq * C).fill(9), new Float32Array(B * Tk * C).fill(9),
        new Float32Array(B * Tk * C).fill(9)]);
      be.attentionBackward(dout, q, k, v, out[1], lse[1], B, Tq, Tk, NH, HS, causal, scale, g[0][0], g[0][1], g[0][2]);
      jsBackend.attentionBackward(dout, q, k, v, out[1], lse[1], B, Tq, Tk, NH, HS, causal, scale, g[1][0], g[1][1], g[1][2]);
      assertClose(g[0][0], g[1][0], `${label} dq`, 1e-4, 1e-5);
      assertClose(g[0][1], g[1][1], `${label} dk`, 1e-4, 1e-5);
      assertClose(g[0][2], g[1][2], `${label} dv`, 1e-4, 1e-5);
    }
  });
});

test('attention reads q, k, v and writes dq, dk, dv in place in a fused (B, T, 3C) buffer (row stride ld)', () => {
  const r = rng(16);
  for (const [B, T, NH, HS] of [[2, 5, 3, 4], [2, 70, 2, 16], [1, 130, 4, 64], [2, 3, 2, 20], [1, 1, 4, 64]]) {
    const C = NH * HS;
    const qkv = randF32(r, B * T * 3 * C, -2, 2); // (B, T, 3C)
    const part = (src: Float32Array, j: number): Float32Array => { // column slice j, copied to (B, T, C)
      const dst = new Float32Array(B * T * C);
      for (let row = 0; row < B * T; row++) dst.set(src.subarray(row * 3 * C + j * C, row * 3 * C + (j + 1) * C), row * C);
      return dst;
    };
    const [q, k, v] = [0, 1, 2].map((j) => part(qkv, j));
    const views = [0, 1, 2].map((j) => qkv.subarray(j * C));
    const scale = 1 / Math.sqrt(HS);
    const dout = randF32(r, B * T * C);
    for (const backend of [be, jsBackend]) {
      const label = `${backend === be ? be.name : 'js'} B=${B} T=${T} NH=${NH} HS=${HS}`;
      const out = [new Float32Array(B * T * C), new Float32Array(B * T * C)];
      const lse = [new Float32Array(B * NH * T), new Float32Array(B * NH * T)];
      backend.attention(q, k, v, B, T, T, NH, HS, true, scale, out[0], lse[0]);
      backend.attention(views[0], views[1], views[2], B, T, T, NH, HS, true, scale, out[1], lse[1], 3 * C);
      assertClose(out[1], out[0], `${label} strided out`, 0, 0);
      assertClose(lse[1], lse[0], `${label} strided lse`, 0, 0);
      const g = [0, 1, 2].map(() => new Float32Array(B * T * C));
      backend.attentionBackward(dout, q, k, v, out[0], lse[0], B, T, T, NH, HS, true, scale, g[0], g[1], g[2]);
      const fused = new Float32Array(B * T * 3 * C).fill(9); // every element must be written
      const dviews = [0, 1, 2].map((j) => fused.subarray(j * C));
      backend.attentionBackward(dout, views[0], views[1], views[2], out[0], lse[0], B, T, T, NH, HS, true, scale,
        dviews[0], dviews[1], dviews[2], 3 * C);
      for (const j of [0, 1, 2]) assertClose(part(fused, j), g[j], `${label} strided d${'qkv'[j]}`, 0, 0);
    }
  }
  if (compiled) {
    assert.throws(() => be.attention(new Float32Array(8), new Float32Array(8), new Float32Array(8), 1, 2, 2, 1, 4, true, 1,
      new Float32Array(8), new Float32Array(2), 3), /row stride 3 is less than NH \* HS = 4/);
    assert.throws(() => be.attention(new Float32Array(8), new Float32Array(8), new Float32Array(8), 1, 2, 2, 1, 4, true, 1,
      new Float32Array(8), new Float32Array(2), 8), /q has 8 elements, needs 12/);
  }
});

test('AdamW in place', () => {
  const r = rng(15);
  for (const n of [0, 1, 33, 300001]) {
    const p = randF32(r, n);
    const g = randF32(r, n);
    const m = randF32(r, n, -0.1, 0.1);
    const v = randF32(r, n, 0, 0.01);
    const a = [p.slice(), m.slice(), v.slice()];
    const b = [p.slice(), m.slice(), v.slice()];
    const t = 3;
    be.adamw(a[0], g, a[1], a[2], 1e-3, 0.9, 0.999, 1e-8, 0.1, 1 - 0.9 ** t, 1 - 0.999 ** t);
    jsBackend.adamw(b[0], g, b[1], b[2], 1e-3, 0.9, 0.999, 1e-8, 0.1, 1 - 0.9 ** t, 1 - 0.999 ** t);
    assertClose(a[0], b[0], `adamw param n=${n}`, 1e-6, 1e-7);
    assertClose(a[1], b[1], 'adamw m', 1e-6, 1e-7);
    assertClose(a[2], b[2], 'adamw v', 1e-6, 1e-10);
  }
});

test('native and wasm reject buffers too small for the dimensions given', { skip: !compiled }, () => {
  assert.throws(() => be.gemm(false, false, 1, 4, 4, 4, 1, new Float32Array(15), 0, new Float32Array(16), 0, 0,
    new Float32Array(16), 0), /A has 15 elements, needs 16/);
  assert.throws(() => be.softmax(new Float32Array(5), 2, 3, false, new Float32Array(6)), /x has 5 elements, needs 6/);
});

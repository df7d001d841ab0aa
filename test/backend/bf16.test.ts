// bfloat16 GEMM (gemmBf16, the GEMM of kiln.autocast) on the active backend: rounding to bf16 (nearest, ties to even),
// and products of rounded inputs accumulated in float32, against a float64 product of the rounded inputs. With the
// native backend it runs under every instruction set, with vdpbf16ps on and off (the rounded-float32 fallback).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backend, backendInfo, jsBackend } from '../../src/backend/index.js';
import { roundBf16 } from '../../src/backend/js/bf16.js';
import { nativeControls } from '../../src/backend/native/index.js';
import { randF32, rng } from './helpers.js';

const be = backend();
const controls = backendInfo().name === 'native' ? nativeControls() : undefined;

/** Runs fn under each instruction set and bf16 path this machine has (once on the js backend). */
function forEachPath(fn: (label: string) => void): void {
  if (!controls) { fn('js'); return; }
  const isa = controls.info().isa;
  const bf16 = controls.bf16Info().active;
  try {
    for (const name of ['avx512', 'avx2', 'scalar']) {
      if (!controls.setIsa(name)) continue;
      for (const on of [true, false]) {
        if (on && !controls.setBf16(true)) continue;
        if (!on) controls.setBf16(false);
        fn(`${name}${on && controls.bf16Info().active ? ' vdpbf16ps' : ''}`);
      }
    }
  } finally {
    controls.setIsa(isa);
    controls.setBf16(bf16);
  }
}

function bits(x: number): number { return new Uint32Array(new Float32Array([x]).buffer)[0]; }

test('roundBf16 rounds to the nearest bfloat16, ties to even, and keeps NaN and infinities', () => {
  const x = new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -2.75, 3.4028234663852886e38,
    Infinity, -Infinity, NaN, 0, -0, 1e-40]);
  const y = new Float32Array(x.length);
  roundBf16(x, y);
  assert.equal(y[0], 1);
  assert.equal(y[1], 1, 'a tie goes to the even neighbour (1)');
  assert.equal(y[2], 1 + 2 ** -6, 'a tie goes to the even neighbour (1 + 2^-6)');
  assert.equal(y[3], 1 + 2 ** -7, 'above the tie rounds up');
  assert.equal(y[4], -2.75);
  assert.equal(y[5], Infinity, 'the largest float32 rounds up to infinity');
  assert.equal(y[6], Infinity);
  assert.equal(y[7], -Infinity);
  assert.ok(Number.isNaN(y[8]));
  assert.equal(bits(y[10]), 0x80000000);
  for (const v of y) assert.equal(bits(v) & 0xffff, 0, 'the low 16 bits are zero');
});

/** C = alpha * op(round(A)) @ op(round(B)) + beta * C in float64, batch by batch. */
function reference(tA: boolean, tB: boolean, batch: number, M: number, N: number, K: number, alpha: number,
  A: Float32Array, sA: number, B: Float32Array, sB: number, beta: number, C: Float32Array, sC: number): Float64Array {
  const ra = new Float32Array(A.length);
  const rb = new Float32Array(B.length);
  roundBf16(A, ra);
  roundBf16(B, rb);
  const out = Float64Array.from(C);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          s += ra[b * sA + (tA ? k * M + i : i * K + k)] * rb[b * sB + (tB ? j * K + k : k * N + j)];
        }
        const c = b * sC + i * N + j;
        out[c] = alpha * s + (beta === 0 ? 0 : beta * C[c]);
      }
    }
  }
  return out;
}

test('gemmBf16 equals the float64 product of bf16-rounded inputs, every transpose, batch and edge shape', () => {
  assert.equal(typeof be.gemmBf16, 'function');
  const r = rng(14);
  const cases: [number, number, number, number][] = [
    [1, 1, 1, 1], [1, 3, 5, 7], [2, 17, 33, 9], [1, 50, 70, 31], [3, 15, 40, 64], [1, 29, 65, 1100], [1, 2, 40, 513],
  ];
  forEachPath((path) => {
    for (const [batch, M, N, K] of cases) {
      for (const tA of [false, true]) {
        for (const tB of [false, true]) {
          for (const [alpha, beta] of [[1, 0], [0.5, 1], [-1.5, 0.25]]) {
            const sA = batch > 1 && K % 2 === 0 ? 0 : M * K; // stride 0 broadcasts A
            const A = randF32(r, (batch - 1) * sA + M * K);
            const B = randF32(r, batch * K * N);
            const C = randF32(r, batch * M * N);
            const want = reference(tA, tB, batch, M, N, K, alpha, A, sA, B, K * N, beta, C, M * N);
            be.gemmBf16!(tA, tB, batch, M, N, K, alpha, A, sA, B, K * N, beta, C, M * N);
            for (let i = 0; i < C.length; i++) {
              // float32 accumulation of exact products: error grows like sqrt(K) ulps of the partial sums.
              const tol = 1e-6 * Math.sqrt(K) * (1 + Math.abs(want[i]));
              if (!(Math.abs(C[i] - want[i]) <= tol)) {
                assert.fail(`${path}: (${batch}, ${M}, ${N}, ${K}) tA ${tA} tB ${tB} alpha ${alpha} beta ${beta}: ` +
                  `element ${i} is ${C[i]}, expected ${want[i]}`);
              }
            }
          }
        }
      }
    }
  });
});

test('gemmBf16 rounds its inputs: it differs from the float32 GEMM and matches it on pre-rounded inputs', () => {
  const r = rng(3);
  const [M, N, K] = [20, 36, 48];
  const A = randF32(r, M * K);
  const B = randF32(r, K * N);
  const c16 = new Float32Array(M * N);
  const c32 = new Float32Array(M * N);
  be.gemmBf16!(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, c16, 0);
  be.gemm(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, c32, 0);
  const maxDiff = Math.max(...c16.map((v, i) => Math.abs(v - c32[i])));
  assert.ok(maxDiff > 1e-4 && maxDiff < 0.1, `bf16 vs float32 differ by ${maxDiff}`);
  const ra = new Float32Array(A.length);
  const rb = new Float32Array(B.length);
  roundBf16(A, ra);
  roundBf16(B, rb);
  jsBackend.gemm(false, false, 1, M, N, K, 1, ra, 0, rb, 0, 0, c32, 0);
  c16.forEach((v, i) => assert.ok(Math.abs(v - c32[i]) <= 1e-5, `element ${i}: ${v} vs ${c32[i]}`));
});

test('gemmBf16 with beta = 0 never reads C (NaN does not leak), and K = 0 scales C', () => {
  const A = new Float32Array([1, 2, 3, 4]);
  const B = new Float32Array([1, 0, 0, 1]);
  const C = new Float32Array([NaN, NaN, NaN, NaN]);
  be.gemmBf16!(false, false, 1, 2, 2, 2, 1, A, 0, B, 0, 0, C, 0);
  assert.deepEqual([...C], [1, 2, 3, 4]);
  be.gemmBf16!(false, false, 1, 2, 2, 0, 1, A, 0, B, 0, 2, C, 0);
  assert.deepEqual([...C], [2, 4, 6, 8]);
});

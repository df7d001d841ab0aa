// The Llama decoder's ops: fused RMSNorm against its composite, rotary embeddings against a direct
// rotate_half formula, the KV-cache offset, and the backend kernels against the reference backend (float32).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import { backend, jsBackend } from '../../src/backend/node.js';
import { assertClose, randF32, rng } from '../backend/helpers.js';

const be = backend();

test('rmsNorm equals its composite, values and gradients', () => {
  const g = new kiln.Generator(1);
  const x = kiln.randn([3, 4, 40], { generator: g }).requiresGrad_();
  const w = kiln.randn([40], { generator: g }).requiresGrad_();
  const x2 = x.detach().requiresGrad_();
  const w2 = w.detach().requiresGrad_();
  const a = kiln.rmsNorm(x, w, 1e-5);
  const b = kiln.rmsNormReference(x2, w2, 1e-5);
  assertClose(a.data(), b.data(), 'rmsNorm', 1e-5, 1e-6);
  const dy = kiln.randn([3, 4, 40], { generator: g });
  a.mul(dy).sum().backward();
  b.mul(dy).sum().backward();
  assertClose(x.grad!.data(), x2.grad!.data(), 'rmsNorm dx', 1e-4, 1e-5);
  assertClose(w.grad!.data(), w2.grad!.data(), 'rmsNorm dweight', 1e-4, 1e-5);
});

/** Hugging Face's apply_rotary_pos_emb on one (T, NH, HS) row, in float64: x * cos + rotate_half(x) * sin. */
function ropeDirect(x: Float64Array, T: number, NH: number, HS: number, theta: number, start: number): Float64Array {
  const out = new Float64Array(x.length);
  const half = HS / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < NH; h++) {
      for (let j = 0; j < HS; j++) {
        const i = j % half;
        const ang = (start + t) / Math.pow(theta, (2 * i) / HS);
        const o = (t * NH + h) * HS;
        const rot = j < half ? -x[o + j + half] : x[o + j - half];
        out[o + j] = x[o + j] * Math.cos(ang) + rot * Math.sin(ang);
      }
    }
  }
  return out;
}

test('rope matches the rotate_half formula, and a start offset equals the same positions in a longer sequence', () => {
  const [T, NH, HS] = [5, 3, 8];
  const x = kiln.randn([1, T, NH * HS], { dtype: 'float64', generator: new kiln.Generator(2) });
  const got = kiln.rope(x, NH, { theta: 500 }).data();
  assertClose(got, ropeDirect(x.data() as Float64Array, T, NH, HS, 500, 0), 'rope', 1e-12, 1e-12);
  // Tokens 3..4 of the sequence, given alone with start 3, turn by the same angles.
  const tail = x.narrow(1, 3, 2);
  assertClose(kiln.rope(tail, NH, { theta: 500, start: 3 }).data(), Array.from(got).slice(3 * NH * HS), 'rope start', 1e-12, 1e-12);
  // Position 0 is the identity.
  assertClose(kiln.rope(x.narrow(1, 0, 1), NH).data(), x.narrow(1, 0, 1).data(), 'rope at 0', 0, 0);
});

test('rope and rmsNorm refuse bad input', () => {
  const x = kiln.randn([1, 2, 6]);
  assert.throws(() => kiln.rope(x, 4), /6 channels do not split into 4 heads/);
  assert.throws(() => kiln.rope(x, 2), /head size must be even, got 3/);
  assert.throws(() => kiln.rope(x, 1, { theta: -1 }), /theta must be a positive number/);
  assert.throws(() => kiln.rope(x, 1, { start: [1, 2] }), /start has 2 entries but the batch has 1 rows/);
  assert.throws(() => kiln.rope(x.reshape([2, 6]), 1), /must be 3-D/);
  assert.throws(() => kiln.rmsNorm(x, kiln.ones([5])), /weight has shape \[5\], expected \(6\)/);
});

test('rmsNorm kernels match the reference backend', () => {
  const r = rng(21);
  for (const [rows, C] of [[1, 1], [3, 17], [200, 256], [7, 1000], [0, 8], [3000, 64]]) {
    for (const affine of [true, false]) {
      const x = randF32(r, rows * C, -3, 5);
      const w = affine ? randF32(r, C) : null;
      const out = [new Float32Array(rows * C), new Float32Array(rows * C)];
      const rstd = [new Float32Array(rows), new Float32Array(rows)];
      be.rmsNorm(x, w, rows, C, 1e-5, out[0], rstd[0]);
      jsBackend.rmsNorm(x, w, rows, C, 1e-5, out[1], rstd[1]);
      assertClose(out[0], out[1], `rmsNorm ${rows}x${C}`, 1e-4, 1e-5);
      assertClose(rstd[0], rstd[1], 'rmsNorm rstd', 1e-4, 1e-6);
      const dy = randF32(r, rows * C);
      const dx = [new Float32Array(rows * C), new Float32Array(rows * C)];
      const start = randF32(r, C);
      const dw = affine ? [start.slice(), start.slice()] : [null, null];
      be.rmsNormBackward(dy, x, w, rstd[1], rows, C, dx[0], dw[0]);
      jsBackend.rmsNormBackward(dy, x, w, rstd[1], rows, C, dx[1], dw[1]);
      assertClose(dx[0], dx[1], `rmsNormBackward dx ${rows}x${C}`, 1e-4, 1e-5);
      if (affine) assertClose(dw[0]!, dw[1]!, 'rmsNormBackward dweight', 1e-4, 1e-3);
    }
  }
});

test('rope kernel matches the reference backend, forward and inverse, in place too', () => {
  const r = rng(22);
  for (const [B, T, NH, HS] of [[1, 1, 1, 2], [2, 7, 3, 16], [3, 64, 4, 32], [1, 300, 2, 64]]) {
    const x = randF32(r, B * T * NH * HS);
    const starts = Int32Array.from({ length: B }, (_, b) => b * 37);
    for (const inverse of [false, true]) {
      const out = [new Float32Array(x.length), new Float32Array(x.length)];
      be.rope(x, B, T, NH, HS, 10000, starts, inverse, out[0]);
      jsBackend.rope(x, B, T, NH, HS, 10000, starts, inverse, out[1]);
      assertClose(out[0], out[1], `rope ${B}x${T}x${NH}x${HS}`, 1e-4, 1e-5);
      const inPlace = x.slice();
      be.rope(inPlace, B, T, NH, HS, 10000, starts, inverse, inPlace);
      assertClose(inPlace, out[1], 'rope in place', 1e-4, 1e-5);
    }
  }
});

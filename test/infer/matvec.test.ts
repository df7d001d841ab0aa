// The WebAssembly SIMD mat-vec kernel against a float64 reference: odd and padded shapes, a bias, weights given
// transposed, several matrices side by side, and reloading new weights into the same slot.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMatVec, matVecAvailable } from '../../src/infer/matvec.js';
import { Generator } from '../../src/tensor/random.js';

test('y = x @ W + b on the SIMD kernel matches a float64 reference', () => {
  assert.ok(matVecAvailable(), 'WebAssembly SIMD should be available in Node 20');
  const mv = createMatVec()!;
  const g = new Generator(3);
  const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => g.uniform() - 0.5);
  for (const [K, N] of [[1, 1], [3, 5], [37, 70], [64, 32], [100, 33], [256, 96]]) {
    const W = rand(K * N);
    const b = rand(N);
    const x = rand(K);
    const h = mv.add(K, N);
    const ht = mv.add(K, N);
    const Wt = new Float32Array(N * K);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) Wt[n * K + k] = W[k * N + n];
    for (const bias of [b, null]) {
      mv.load(h, W, bias);
      mv.loadTransposed(ht, Wt, N, K);
      const y = new Float32Array(N + 3).fill(7);
      const yt = new Float32Array(N);
      mv.run(h, x, y);
      mv.run(ht, x, yt);
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += x[k] * W[k * N + n];
        assert.ok(Math.abs(y[n] - (s + (bias ? bias[n] : 0))) < 1e-5, `K=${K} N=${N} column ${n}`);
        assert.ok(Math.abs(yt[n] - s) < 1e-5, `transposed K=${K} N=${N} column ${n}`);
      }
      assert.deepEqual([...y.subarray(N)], [7, 7, 7], 'nothing is written past N');
    }
  }
});

// The Generator, Kiln's one RNG (tensors, init, data shuffles, splits, window samplers): integers in a range,
// shuffles, and a state that is checked when restored.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator } from '../../src/tensor/random.js';

test('Generator (the one RNG, also the samplers\'): uniform ints in range, reproducible, shuffles, checked state', () => {
  const r = new Generator(123);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 10000; i++) counts[r.int(0, 10)]++;
  for (const c of counts) assert.ok(c > 850 && c < 1150);
  for (let i = 0; i < 1000; i++) {
    const v = r.int(-3, 4);
    assert.ok(Number.isInteger(v) && v >= -3 && v < 4);
  }
  assert.equal(new Generator(5).nextUint32(), new Generator(5).nextUint32());
  assert.notEqual(new Generator(5).nextUint32(), new Generator(6).nextUint32());
  const perm = new Generator(9).shuffle(Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual([...perm].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual(new Generator(9).shuffle(new Int32Array(50).map((_, i) => i)), Int32Array.from(perm));
  assert.throws(() => r.int(3, 3), /Generator.int: expected safe integers low < high, got 3 and 3/);
  assert.throws(() => r.int(0, 1.5), /Generator.int: expected safe integers/);
  assert.throws(() => r.setState({ s: [1, 2, 3] as unknown as [number, number, number, number] }), /Generator.setState: expected/);
  assert.throws(() => r.setState({ s: [1, 2, 3, 2 ** 32] }), /Generator.setState: expected/);
  assert.throws(() => r.setState({ s: [-1, 2, 3, 4] }), /Generator.setState: expected/);
});

// tensor.tolist(): nested arrays of numbers by shape, as PyTorch's tolist().

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';

test('tolist gives a number for 0-d and nested arrays by shape otherwise', () => {
  assert.equal(kiln.tensor(2.5).tolist(), 2.5);
  assert.deepEqual(kiln.tensor([1, 2, 3]).tolist(), [1, 2, 3]);
  assert.deepEqual(kiln.arange(6).reshape([2, 3]).tolist<number[][]>(), [[0, 1, 2], [3, 4, 5]]);
  assert.deepEqual(kiln.arange(8).reshape([2, 1, 4]).tolist(), [[[0, 1, 2, 3]], [[4, 5, 6, 7]]]);
  assert.deepEqual(kiln.zeros([2, 0]).tolist(), [[], []]);
  const ints = kiln.tensor([[1, -2]], { dtype: 'int32' }).tolist<number[][]>();
  assert.deepEqual(ints, [[1, -2]]);
  assert.equal(typeof ints[0]![0], 'number');
  // a copy: changing the list leaves the tensor alone
  const t = kiln.tensor([1, 2]);
  (t.tolist() as number[])[0] = 9;
  assert.equal(t.storage[0], 1);
});

// The examples run on a small budget: they must train, not just start.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitSin } from '../../examples/sin.js';
import { trainMnist } from '../../examples/mnist.js';

test('sin(x) example fits', () => {
  const mse = fitSin(300, () => {});
  assert.ok(mse < 0.01, `mse after 300 steps: ${mse}`);
});

test('MNIST example learns on a slice of the T2 split', () => {
  const res = trainMnist({ epochs: 1, limit: 1024, log: () => {} });
  assert.ok(res.accuracy > 0.7, `test accuracy ${res.accuracy}`);
  assert.equal(res.losses.length, 1);
});

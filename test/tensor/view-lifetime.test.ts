import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as kiln from '../../src/index.js';

// A long-lived buffer (a weight, a KV cache) is viewed on every forward; the autograd engine tracks who shares a
// buffer. It must not keep the views alive: `kiln serve` leaked ~1 KB a request (52% RSS growth in a 10-minute soak)
// while it held every view of the model's weights.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const nextTurn = () => new Promise((r) => setImmediate(r));

test('views of a long-lived tensor are collected once dropped', async () => {
  const weight = kiln.randn([64, 32]);
  const refs: WeakRef<kiln.Tensor>[] = [];
  for (let i = 0; i < 200; i++) {
    const view = weight.reshape([32, 64]); // shares weight's buffer
    if (i % 20 === 0) refs.push(new WeakRef(view));
  }
  const kept = weight.reshape([2048]);
  await nextTurn(); // WeakRef targets stay alive until the job that made them ends
  gc();
  await nextTurn();
  assert.equal(refs.filter((r) => r.deref() !== undefined).length, 0, 'dropped views are still reachable');
  assert.equal(kept.shape[0], 2048);
});

test('a buffer with a live view still is not recycled as a dead activation (views stay tracked)', () => {
  // activationScope hands dead intermediates back to the pool; a view that escapes keeps its buffer out of it.
  const lin = new kiln.nn.Linear(8, 8);
  const x = kiln.randn([4, 8]);
  let escaped: kiln.Tensor | undefined;
  const y = kiln.activationScope(() => {
    const h = lin.forward(x);
    escaped = h.reshape([32]); // a view that leaves the scope
    return h.sum();
  }, (r) => [r]);
  const before = Array.from(escaped!.data() as Float32Array);
  y.backward();
  const z = kiln.activationScope(() => lin.forward(kiln.randn([4, 8])).sum(), (r) => [r]); // would reuse a recycled buffer
  z.backward();
  assert.deepEqual(Array.from(escaped!.data() as Float32Array), before);
});

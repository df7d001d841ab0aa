import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as kiln from '../../src/index.js';

// A real collection before each heap reading: without one (the suite runs without --expose-gc, so global.gc is
// undefined) the reading is whatever garbage V8 had not yet collected, and the growth test failed now and then.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

test('gradients accumulate when a tensor is used twice and across backward calls', () => {
  const x = kiln.tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
  x.mul(x).sum().backward(); // d/dx x^2 = 2x
  assert.deepEqual(x.grad!.toArray(), [2, 4, 6]);
  x.mul(3).sum().backward(); // accumulates + 3
  assert.deepEqual(x.grad!.toArray(), [5, 7, 9]);
});

test('noGrad records nothing, detach cuts the graph, requiresGrad_ rejects int tensors', () => {
  const x = kiln.ones([2], { requiresGrad: true });
  const y = kiln.noGrad(() => x.mul(2));
  assert.equal(y.requiresGrad, false);
  assert.equal(x.mul(2).detach().requiresGrad, false);
  assert.throws(() => kiln.zeros([2], { dtype: 'int32' }).requiresGrad_(), /floating-point/);
  assert.equal(kiln.isGradEnabled(), true);
});

test('backward on a non-scalar without a gradient says so; with one it works', () => {
  const x = kiln.ones([2, 2], { requiresGrad: true });
  const y = x.mul(3);
  assert.throws(() => y.backward(), /shape \[2, 2\].*single-element/);
  y.backward(kiln.ones([2, 2]));
  assert.deepEqual(x.grad!.toArray(), [[3, 3], [3, 3]]);
  assert.throws(() => kiln.ones([2]).sum().backward(), /does not require grad/);
  assert.throws(() => x.mul(2).backward(kiln.ones([3])), /gradient shape \[3\] does not match/);
});

test('the graph is released after backward', () => {
  const x = kiln.ones([2], { requiresGrad: true });
  const h = x.mul(2);
  const loss = h.sum();
  loss.backward();
  assert.equal(loss.node, null);
  assert.equal(h.node, null);
  assert.throws(() => loss.backward(), /already freed/);
  const z = x.mul(2);
  const s2 = z.sum();
  s2.backward(undefined, { retainGraph: true });
  s2.backward();
  assert.deepEqual(x.grad!.toArray(), [6, 6]);
});

test('deep graphs do not overflow the stack', () => {
  const x = kiln.ones([1], { requiresGrad: true, dtype: 'float64' });
  let y = x;
  for (let i = 0; i < 20000; i++) y = y.mul(1);
  y.sum().backward();
  assert.equal(x.grad!.item(), 1);
});

test('no memory growth over thousands of training steps', () => {
  // Retained graph objects would grow the heap step after step; a released graph keeps it flat.
  const w = kiln.randn([64, 64], { requiresGrad: true });
  const x = kiln.randn([32, 64]);
  const step = (): void => {
    const loss = x.matmul(w).tanh().matmul(w).square().mean();
    loss.backward();
    w.grad = null;
  };
  for (let i = 0; i < 300; i++) step();
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 3000; i++) step();
  gc();
  const grown = process.memoryUsage().heapUsed - before;
  // 3000 retained graphs of a few tensors each would be far beyond 20 MB.
  assert.ok(grown < 20 * 1024 * 1024, `heap grew by ${(grown / 1e6).toFixed(1)} MB over 3000 steps`);
});

test('recycled gradient buffers never overwrite gradients or the caller\'s tensors', () => {
  // Large enough (>= 64 KiB) for the allocator's pool; each backward hands dead gradient buffers back to it.
  const n = 40000;
  const a = kiln.randn([n], { requiresGrad: true });
  const b = kiln.randn([n], { requiresGrad: true });
  const userGrad = kiln.full([n], 3);
  const out = a.add(b).mul(2).reshape([200, 200]).tanh().reshape([n]);
  out.backward(userGrad);
  const ga = a.grad!.data();
  const gb = b.grad!.data();
  assert.deepEqual(ga, gb, 'both inputs of add got the same gradient');
  for (let i = 0; i < 20; i++) kiln.randn([n], { requiresGrad: true }).mul(2).exp().sum().backward();
  for (let i = 0; i < 20; i++) kiln.zeros([n]).add(1);
  assert.ok(userGrad.data().every((v) => v === 3), 'the caller\'s gradient is untouched');
  assert.deepEqual(a.grad!.data(), ga, 'leaf gradients survive later allocations');
  assert.deepEqual(b.grad!.data(), gb);
  assert.ok(kiln.zeros([n]).data().every((v) => v === 0), 'reused buffers come back zeroed');
});

test('onGradReady fires once per backward per leaf, with its final gradient, later layers first', () => {
  const w1 = kiln.tensor([1, 2, 3]).requiresGrad_();
  const w2 = kiln.tensor([4, 5, 6]).requiresGrad_();
  const unused = kiln.tensor([0]).requiresGrad_();
  const seen: [string, number[]][] = [];
  const remove1 = kiln.onGradReady(w1, (p) => seen.push(['w1', [...p.grad!.storage]]));
  kiln.onGradReady(w2, (p) => seen.push(['w2', [...p.grad!.storage]]));
  kiln.onGradReady(unused, () => seen.push(['unused', []]));
  // w1 is used twice (both contributions must be in when its hook runs); w2 only after w1's first use.
  const h = w1.mul(2);
  h.mul(w2).add(w1).sum().backward();
  assert.deepEqual(seen, [['w2', [2, 4, 6]], ['w1', [9, 11, 13]]]);
  seen.length = 0;
  h.detach().mul(w2).sum().backward(); // a second pass accumulates: the hook sees the running sum
  assert.deepEqual(seen, [['w2', [4, 8, 12]]]);
  seen.length = 0;
  remove1();
  w1.mul(w2).sum().backward();
  assert.deepEqual(seen.map(([n]) => n), ['w2']);
  assert.throws(() => kiln.onGradReady(w1.mul(3), () => {}), /not a leaf/);
});

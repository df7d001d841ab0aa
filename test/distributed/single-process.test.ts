import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';

const d = kiln.distributed;

test('a plain node process is rank 0 of a world of 1: collectives are the identity, the wrapper a no-op', () => {
  assert.equal(d.launchedWorldSize({}), 0);
  assert.equal(d.launchedWorldSize({ OMPI_COMM_WORLD_SIZE: '4' }), 4);
  assert.equal(d.launchedWorldSize({ PMI_SIZE: '3' }), 3);
  if (process.env.OMPI_COMM_WORLD_SIZE || process.env.PMI_SIZE) return;
  assert.deepEqual(d.init(), { rank: 0, worldSize: 1, transport: 'none', asyncProgress: false });
  assert.equal(d.rank(), 0);
  assert.equal(d.worldSize(), 1);
  assert.deepEqual([...d.allReduce(kiln.tensor([1, 2]), 'avg').storage], [1, 2]);
  assert.deepEqual([...d.broadcast(kiln.tensor([3]), 0).storage], [3]);
  assert.throws(() => d.broadcast(kiln.tensor([3]), 1), /root must be a rank of this world \(0 .. 0\), got 1/);
  assert.throws(() => d.allReduce(kiln.tensor([1]), 'max' as 'sum'), /op must be 'sum' or 'avg'/);
  d.barrier();
  const model = new kiln.nn.Linear(3, 2);
  const ddp = new d.DistributedDataParallel(model);
  assert.deepEqual(ddp.bucketSizes(), [8]);
  model.forward(kiln.ones([1, 3])).sum().backward();
  const before = [...model.weight.grad!.storage];
  ddp.finishGradientSync();
  assert.deepEqual([...model.weight.grad!.storage], before);
  assert.throws(() => new d.DistributedDataParallel(model, { bucketCapMB: 0 }), /bucketCapMB must be positive/);
  assert.throws(() => new d.DistributedDataParallel(model, { firstBucketCapMB: -1 }), /firstBucketCapMB must be positive/);
});

test('buckets: the first (the last layers, finished first by backward) holds 1 MB, the rest up to bucketCapMB', () => {
  // Three 512 KiB weights and biases, registered l0, l1, l2: reversed, l2's bias and weight come first.
  const net = new kiln.nn.Sequential(new kiln.nn.Linear(512, 256), new kiln.nn.Linear(256, 512), new kiln.nn.Linear(512, 256));
  const sizes = new d.DistributedDataParallel(net).bucketSizes();
  assert.deepEqual(sizes, [256 + 131072 + 512, 131072 + 256 + 131072]);
  assert.ok(sizes[0] * 4 <= 1024 * 1024 + 4096);
  // One bucket when the first may be as big as the rest (PyTorch's behaviour before its 1 MB first bucket).
  assert.deepEqual(new d.DistributedDataParallel(net, { firstBucketCapMB: 25 }).bucketSizes(), [3 * 131072 + 256 + 512 + 256]);
});

test('shardBatch gives each rank a contiguous, disjoint slice that together cover the batch', () => {
  const x = kiln.arange(0, 10).reshape([5, 2]);
  const labels = ['a', 'b', 'c', 'd', 'e'];
  const parts = [0, 1].map((r) => d.shardBatch([x, labels] as const, r, 2));
  assert.deepEqual(parts.map(([t]) => t.shape), [[3, 2], [2, 2]]);
  assert.deepEqual([...parts[1][0].storage], [6, 7, 8, 9]);
  assert.deepEqual(parts.map(([, l]) => l), [['a', 'b', 'c'], ['d', 'e']]);
  const obj = d.shardBatch({ x, y: kiln.arange(0, 5) }, 2, 3);
  assert.deepEqual([...obj.y.storage], [4]);
  assert.deepEqual([...d.shardBatch(kiln.arange(0, 4), 1, 2).storage], [2, 3]);
  assert.throws(() => d.shardBatch(x, 0, 6), /a batch of 5 rows cannot give each of 6 ranks at least one row/);
  assert.throws(() => d.shardBatch([x, kiln.zeros([4])], 0, 2), /every field of the batch must have 5 rows, found one with 4/);
  assert.throws(() => d.shardBatch(x, 2, 2), /rank must be 0 .. 1, got 2/);
});

test('shardIndices: a seeded per-epoch permutation split across ranks, equal counts, deterministic', () => {
  const sets = [0, 1, 2].map((r) => d.shardIndices(10, r, 3, { seed: 7, epoch: 1 }));
  assert.deepEqual(sets.map((s) => s.length), [4, 4, 4]);
  const all = sets.flat();
  assert.deepEqual([...new Set(all)].sort((a, b) => a - b), [...Array(10).keys()]); // every index, 2 repeated as padding
  assert.deepEqual(d.shardIndices(10, 1, 3, { seed: 7, epoch: 1 }), sets[1]);
  assert.notDeepEqual(d.shardIndices(10, 1, 3, { seed: 7, epoch: 2 }), sets[1]);
  assert.deepEqual(d.shardIndices(6, 1, 2, { shuffle: false }), [1, 3, 5]);
  assert.throws(() => d.shardIndices(0, 0, 1), /n must be a positive integer/);
});

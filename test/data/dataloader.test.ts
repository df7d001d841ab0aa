// Datasets, DataLoader (seeded per-epoch shuffles, dropLast, collate, mid-epoch resume) and the seeded split.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import { ArrayDataset, TensorDataset, fromFunction, Subset } from '../../src/data/dataset.js';
import { DataLoader, defaultCollate } from '../../src/data/dataloader.js';
import { randomSplit, trainValidationSplit } from '../../src/data/split.js';

const ids = (b: kiln.Tensor[]): number[] => Array.from(b[1].storage);

test('TensorDataset rows and batches; bad shapes are refused', () => {
  const x = kiln.arange(0, 20).reshape([10, 2]).float();
  const y = kiln.arange(10);
  const ds = new TensorDataset(x, y);
  assert.equal(ds.length, 10);
  const [xi, yi] = ds.get(3);
  assert.deepEqual(xi.toArray(), [6, 7]);
  assert.equal(yi.item(), 3);
  const [bx, by] = ds.getBatch([4, 1]);
  assert.deepEqual(bx.toArray(), [[8, 9], [2, 3]]);
  assert.deepEqual(by.toArray(), [4, 1]);
  assert.throws(() => new TensorDataset(x, kiln.arange(9)), /tensor 1 has 9 rows but tensor 0 has 10/);
  assert.throws(() => ds.get(10), /index 10 is out of range/);
});

test('DataLoader: batches, dropLast, default collate of arrays/objects, a custom collate', () => {
  const ds = new TensorDataset(kiln.zeros([10, 3]), kiln.arange(10));
  const all = [...new DataLoader(ds, { batchSize: 4 })];
  assert.deepEqual(all.map(ids), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  const dl = new DataLoader(ds, { batchSize: 4, dropLast: true });
  assert.equal(dl.length, 2);
  assert.deepEqual([...dl].map(ids), [[0, 1, 2, 3], [4, 5, 6, 7]]);
  const objs = new ArrayDataset([{ a: 1, b: 0.5 }, { a: 2, b: 1.5 }]);
  const [batch] = [...new DataLoader(objs, { batchSize: 2 })] as { a: kiln.Tensor; b: kiln.Tensor }[];
  assert.equal(batch.a.dtype, 'int32');
  assert.deepEqual(batch.b.toArray(), [0.5, 1.5]);
  const fn = fromFunction(5, (i) => [kiln.full([2], i), i]);
  const [[fx, fy]] = [...new DataLoader(fn, { batchSize: 5 })] as kiln.Tensor[][];
  assert.deepEqual(fx.shape, [5, 2]);
  assert.deepEqual(fy.toArray(), [0, 1, 2, 3, 4]);
  const custom = new DataLoader(new ArrayDataset(['a', 'b', 'c']), { batchSize: 2, collate: (items) => items.join('') });
  assert.deepEqual([...custom], ['ab', 'c']);
  assert.throws(() => defaultCollate([kiln.zeros([2]), 3]), /item 1 is not a Tensor/);
  assert.throws(() => new DataLoader(ds, { batchSize: 0 }), /batchSize must be a positive integer/);
});

test('shuffles depend only on seed and epoch; next() marks epoch ends; state resumes mid-epoch', () => {
  const ds = new TensorDataset(kiln.zeros([23, 1]), kiln.arange(23));
  const a = new DataLoader(ds, { batchSize: 5, shuffle: true, seed: 7 });
  const e0 = [...a].map(ids);
  const e1 = [...a].map(ids);
  assert.notDeepEqual(e0, e1);
  assert.deepEqual(e0.flat().sort((p, q) => p - q), Array.from({ length: 23 }, (_, i) => i));
  const b = new DataLoader(ds, { batchSize: 5, shuffle: true, seed: 7 });
  assert.deepEqual([...b.iterEpoch(1)].map(ids), e1);
  assert.notDeepEqual([...new DataLoader(ds, { batchSize: 5, shuffle: true, seed: 8 })].map(ids), e0);
  // next(): five batches, undefined, then epoch 1
  const c = new DataLoader(ds, { batchSize: 5, shuffle: true, seed: 7 });
  const seq: (number[] | undefined)[] = [];
  for (let i = 0; i < 9; i++) {
    const bt = c.next() as kiln.Tensor[] | undefined;
    seq.push(bt && ids(bt));
  }
  assert.deepEqual(seq, [...e0, undefined, ...e1.slice(0, 3)]);
  const saved = JSON.parse(JSON.stringify(c.state()));
  const d = new DataLoader(ds, { batchSize: 5, shuffle: true, seed: 7 });
  d.restore(saved);
  assert.deepEqual(ids(d.next() as kiln.Tensor[]), e1[3]);
  assert.throws(() => new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 7 }).restore(saved), /batchSize 5 but this one has 4/);
  assert.throws(() => d.restore({ epoch: -1 }), /expected \{ epoch, position \}/);
});

test('trainValidationSplit: seeded, disjoint, stratified shares; randomSplit sizes', () => {
  const labels = kiln.tensor(Array.from({ length: 100 }, (_, i) => (i < 80 ? 0 : 1)), { dtype: 'int32' });
  const ds = new TensorDataset(kiln.zeros([100, 1]), labels);
  const s1 = trainValidationSplit(ds, { validation: 0.2, seed: 3, stratify: labels });
  const s2 = trainValidationSplit(ds, { validation: 0.2, seed: 3, stratify: labels });
  assert.deepEqual(s1.validation.indices, s2.validation.indices);
  assert.equal(s1.validation.length, 20);
  assert.equal(s1.validation.indices.filter((i) => i >= 80).length, 4);
  assert.equal(new Set([...s1.train.indices, ...s1.validation.indices]).size, 100);
  const plain = trainValidationSplit(ds, { validation: 30, seed: 1 });
  assert.equal(plain.validation.length, 30);
  assert.notDeepEqual(trainValidationSplit(ds, { validation: 30, seed: 2 }).validation.indices, plain.validation.indices);
  assert.ok(s1.train instanceof Subset);
  const [bx, by] = new DataLoader(s1.validation, { batchSize: 20 }).next() as kiln.Tensor[];
  assert.deepEqual(bx.shape, [20, 1]);
  assert.deepEqual(Array.from(by.storage), s1.validation.indices.map((i) => (i < 80 ? 0 : 1)));
  assert.deepEqual(randomSplit(ds, [0.5, 0.3, 0.2], { seed: 1 }).map((s) => s.length), [50, 30, 20]);
  assert.throws(() => trainValidationSplit(ds, { validation: 1.5 }), /validation must be a fraction/);
  assert.throws(() => trainValidationSplit(ds, { validation: 0.1, stratify: [1, 2] }), /stratify has 2 labels but the dataset has 100/);
  assert.throws(() => randomSplit(ds, [10, 20]), /must be counts summing to 100/);
});

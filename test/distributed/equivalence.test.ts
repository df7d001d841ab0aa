import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mpirun, needMpirun, results } from './helpers.js';

interface Out { worldSize: number; buckets: number[]; startedEarly: number; params: Record<string, number[]> }

function single(globalBatch: number): Out {
  const res = spawnSync(process.execPath, ['--import', 'tsx', 'test/distributed/fixtures/train-mlp.ts', String(globalBatch)], { encoding: 'utf8' });
  return results<Out>(res)[0];
}

function assertSameParams(got: Out, want: Out): void {
  assert.deepEqual(Object.keys(got.params), Object.keys(want.params));
  for (const [name, w] of Object.entries(want.params)) {
    const g = got.params[name];
    assert.equal(g.length, w.length);
    let worst = 0;
    for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(g[i] - w[i]) / (1e-3 + Math.abs(w[i])));
    assert.ok(worst < 1e-4, `${name}: relative difference ${worst}`);
  }
}

test('5 AdamW steps on 2 ranks x batch 4 equal 1 process x batch 8, every parameter, buckets overlapping backward', (t) => {
  if (!needMpirun(t)) return;
  const want = single(8);
  assert.equal(want.worldSize, 1);
  const [got] = results<Out>(mpirun(2, 'train-mlp.ts', [8, 1, 0.001]));
  assert.equal(got.worldSize, 2);
  assert.deepEqual(got.buckets, [3 + 16 * 3 + 16, 32 * 16, 6 * 32 + 32]); // reverse registration order, ~1 kB cap
  assert.equal(got.startedEarly, 3 * 5); // every bucket's all-reduce began inside backward
  assertSameParams(got, want);
  // With gradient accumulation (2 micro-steps, noSync on the first) and one default 25 MB bucket: the same result.
  const [accum] = results<Out>(mpirun(2, 'train-mlp.ts', [8, 2, 25]));
  assert.deepEqual(accum.buckets, [6 * 32 + 32 + 32 * 16 + 16 + 16 * 3 + 3]);
  assertSameParams(accum, want);
});

// Exact resume, in process: a run stopped at step k and resumed (into fresh objects) gives bitwise the same
// losses from step k+1 on as a run never stopped, with dropout, a schedule, Adam state and shuffled data.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../src/index.js';
import { Trainer } from '../../src/train/trainer.js';
import { readMetrics } from '../../src/train/metrics.js';
import { tinySetup } from './helpers.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'kiln-resume-'));

function make(runDir: string, maxSteps: number, seed: number, accum = 1) {
  const s = tinySetup({ dropout: 0.2, seed });
  const schedule = new kiln.optim.Scheduler(s.optimizer, kiln.optim.cosineWithWarmup({ warmup: 3, total: 40 }));
  const losses = new Map<number, number>();
  const trainer = new Trainer({
    ...s, schedule, maxSteps, runDir, logEvery: 1, evalEvery: 4, seed: 3, progress: false, gradAccumulation: accum,
    checkpoints: { every: 1, keepLast: 2 }, onStep: (i) => losses.set(i.step, i.loss),
  });
  return { trainer, losses, model: s.model };
}

for (const accum of [1, 2]) {
  test(`stop at step 7 and resume: bitwise the same losses and weights (gradAccumulation ${accum})`, async () => {
    const full = make(tmp(), 16, 0, accum);
    await full.trainer.fit();
    const dir = tmp();
    const first = make(dir, 7, 0, accum);
    assert.equal((await first.trainer.fit()).step, 7);
    const second = make(dir, 16, 42, accum); // different initial weights: the checkpoint must overwrite them
    const r = await second.trainer.fit({ resume: true });
    assert.equal(r.resumedFrom, 7);
    assert.equal(r.step, 16);
    for (let step = 8; step <= 16; step++) {
      assert.ok(Object.is(second.losses.get(step), full.losses.get(step)), `step ${step}: ${second.losses.get(step)} vs ${full.losses.get(step)}`);
    }
    const a = full.model.stateDict();
    const b = second.model.stateDict();
    for (const k of Object.keys(a)) assert.deepEqual(b[k].storage, a[k].storage, k);
    // metrics.jsonl of the resumed run equals the uninterrupted one, line for line (but for timings)
    const strip = (l: Record<string, unknown>) => ({ ...l, elapsed_s: 0, samples_per_s: 0, remaining_s: 0 });
    const mFull = readMetrics(join(full.trainer.options.runDir!, 'metrics.jsonl')).map(strip);
    const mRes = readMetrics(join(dir, 'metrics.jsonl')).map(strip);
    assert.deepEqual(mRes, mFull);
  });
}

test('resume picks the newest complete checkpoint and skips incomplete folders', async () => {
  const dir = tmp();
  await make(dir, 5, 0).trainer.fit();
  const { mkdirSync, writeFileSync, existsSync } = await import('node:fs');
  mkdirSync(join(dir, 'checkpoints/step-9'));
  writeFileSync(join(dir, 'checkpoints/step-9/model.safetensors'), 'partial');
  const again = make(dir, 6, 1);
  const r = await again.trainer.fit({ resume: dir });
  assert.equal(r.resumedFrom, 5);
  assert.ok(existsSync(join(dir, 'checkpoints/step-9/model.safetensors')), 'nothing is removed');
});

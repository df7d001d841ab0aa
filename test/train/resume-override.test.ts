// Resume under changed settings (issue 17): the optimizer as built now keeps its learning rate (the schedule
// re-derives each step's rate from it), and a damaged newest checkpoint stops resume naming the older step
// instead of silently falling back to it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../src/index.js';
import { tinySetup } from './helpers.js';

function trainer(runDir: string, lr: number, maxSteps: number, every = 2): kiln.Trainer<[kiln.Tensor, kiln.Tensor]> {
  const s = tinySetup({ lr });
  const schedule = new kiln.optim.Scheduler(s.optimizer, kiln.optim.cosineWithWarmup({ warmup: 0, total: maxSteps, floor: 0.1 }));
  return new kiln.Trainer({ ...s, schedule, loss: 'crossEntropy', maxSteps, runDir, progress: false, checkpoints: { every } });
}

test('a resumed run trains at the learning rate given now, not the checkpoint\'s', async () => {
  const runDir = mkdtempSync(join(tmpdir(), 'kiln-resume-lr-'));
  await trainer(runDir, 0.01, 4).fit();
  const t = trainer(runDir, 0.001, 8);
  const seen: number[] = [];
  t.options.onStep = (info) => seen.push(info.lr);
  const r = await t.fit({ resume: true });
  assert.equal(r.resumedFrom, 4);
  // cosine over 8 steps from 0.001 (not 0.01): every rate is at most the new peak
  assert.ok(seen.length === 4 && seen.every((lr) => lr <= 0.001 + 1e-12), seen.join(', '));
  assert.equal(t.optimizer.paramGroups[0].initialLr, 0.001);
});

test('a damaged newest checkpoint stops resume, naming the damage and the older step', async () => {
  const runDir = mkdtempSync(join(tmpdir(), 'kiln-resume-bad-'));
  await trainer(runDir, 0.01, 4).fit();
  const ck = join(runDir, 'checkpoints');
  assert.deepEqual(readdirSync(ck).sort(), ['step-2', 'step-4']);
  writeFileSync(join(ck, 'step-4', 'trainer_state.json'), '{"format": "kiln.trainer_state", "step": 4, "ep');
  await assert.rejects(trainer(runDir, 0.01, 8).fit({ resume: true }),
    /the newest checkpoint '.*step-4' is damaged \(.*not valid JSON.*\)\. The newest intact checkpoint is step 2; move '.*step-4' out of the checkpoints folder to resume from step 2/);
});

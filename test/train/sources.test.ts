// The Trainer with a BatchSource that is not a DataLoader (as the GPT pre-training command uses): a loss
// function of (model, batch), tokens_per_s, onEval fields in the metrics line, and exact resume of the
// source's own state. Also: early stopping's patience and minDelta, and the plain progress lines.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../src/index.js';
import { Trainer, type BatchSource } from '../../src/train/trainer.js';
import { readMetrics } from '../../src/train/metrics.js';
import { formatLine } from '../../src/train/progress.js';

interface Batch { x: kiln.Tensor; y: kiln.Tensor }

/** An endless seeded stream of regression batches; its state is its generator's. */
class Stream implements BatchSource<Batch> {
  g: kiln.Generator;
  constructor(seed: number) { this.g = new kiln.Generator(seed); }
  next(): Batch {
    const x = kiln.randn([8, 3], { generator: this.g });
    const y = x.sum(1, true).mul(0.5);
    return { x, y };
  }
  state() { return this.g.getState(); }
  restore(s: unknown) { this.g.setState(s as kiln.GeneratorState); }
}

function make(runDir: string, maxSteps: number) {
  kiln.manualSeed(0);
  const model = new kiln.nn.Linear(3, 1);
  const losses: number[] = [];
  const trainer = new Trainer<Batch>({
    model, optimizer: new kiln.optim.SGD(model.parameters(), { lr: 0.05 }), train: new Stream(4), maxSteps, runDir,
    loss: (m, b) => kiln.nn.functional.mseLoss((m as kiln.nn.Linear).forward(b.x), b.y),
    validation: () => [new Stream(9).next(), new Stream(10).next()], evalEvery: 4, logEvery: 2, tokensPerBatch: 8 * 3,
    checkpoints: { every: 3 }, progress: false, onStep: (i) => losses.push(i.loss),
    onEval: (e) => ({ sample: `at ${e.step}` }),
  });
  return { trainer, losses };
}

test('a BatchSource with tokens_per_s, onEval fields, and exact resume of its state', async () => {
  const full = make(mkdtempSync(join(tmpdir(), 'kiln-src-')), 12);
  await full.trainer.fit();
  const lines = readMetrics(join(full.trainer.options.runDir!, 'metrics.jsonl'));
  assert.ok(lines.every((l) => 'tokens_per_s' in l && !('samples_per_s' in l)));
  assert.deepEqual(lines.filter((l) => l.val_loss !== undefined).map((l) => [l.step, l.sample]), [[4, 'at 4'], [8, 'at 8'], [12, 'at 12']]);
  assert.ok(full.losses[11] < full.losses[0] / 4, 'it learns');
  const dir = mkdtempSync(join(tmpdir(), 'kiln-src-'));
  await make(dir, 7).trainer.fit(); // checkpoints at 3, 6 and 7 (the end)
  const resumed = make(dir, 12);
  const r = await resumed.trainer.fit({ resume: true });
  assert.equal(r.resumedFrom, 7);
  assert.deepEqual(resumed.losses, full.losses.slice(7));
});

test('early stopping: patience counts evaluations without an improvement of at least minDelta', async () => {
  const model = new kiln.nn.Linear(1, 1);
  const vals = [1.0, 0.9, 0.89, 0.95, 0.6, 0.7, 0.8, 0.9];
  let k = 0;
  const t = new Trainer({
    model, optimizer: new kiln.optim.SGD(model.parameters(), { lr: 0 }), train: new Stream(1) as never, maxSteps: 100,
    loss: (m) => (m.training ? kiln.tensor(0).add((m as kiln.nn.Linear).weight.sum().mul(0)) : kiln.tensor(vals[k++])),
    validation: [0], evalEvery: 1, earlyStopping: { patience: 2, minDelta: 0.05 }, progress: false,
  });
  const r = await t.fit();
  // improvements: 1.0 (step 1), 0.9 (step 2); 0.89 and 0.95 are not 0.05 better -> stop at step 4
  assert.equal(r.stopReason, 'early-stopping');
  assert.equal(r.step, 4);
  assert.equal(r.bestValLoss, Math.fround(0.9));
  assert.equal(r.bestStep, 2);
});

test('plain progress lines carry the live figures', () => {
  const line = formatLine({ step: 20, epoch: 1, loss: 0.12345, val_loss: 0.2, lr: 0.001, grad_norm: 1.5, samples_per_s: 5123.4, elapsed_s: 75, remaining_s: 30 }, 100);
  assert.equal(line, 'step 20/100  epoch 1  loss 0.1235  val_loss 0.2000  lr 1.00e-3  grad_norm 1.500  samples_per_s 5123  elapsed 1m15s  eta 30.0s');
});

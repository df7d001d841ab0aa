// The Trainer: it learns, switches modes, evaluates without gradients, logs metrics.jsonl with the agreed
// field names, accumulates gradients, calls back, and guards against non-finite losses.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../src/index.js';
import { Trainer, NonFiniteError } from '../../src/train/trainer.js';
import { readMetrics } from '../../src/train/metrics.js';
import { tinySetup } from './helpers.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'kiln-trainer-'));

test('fit learns, writes config.json, metrics.jsonl with the agreed fields, and checkpoints', async () => {
  const runDir = tmp();
  const s = tinySetup();
  const steps: number[] = [];
  const evals: number[] = [];
  const trainer = new Trainer({
    ...s, epochs: 4, metrics: ['accuracy'], runDir, logEvery: 2, progress: false, config: { model: { hidden: 16 } },
    onStep: (i) => { steps.push(i.step); assert.equal(s.model.training, true); },
    onEval: (i) => { evals.push(i.step); return { note: `eval at ${i.step}` }; },
  });
  const before = trainer.evaluate();
  const result = await trainer.fit();
  assert.equal(result.stopReason, 'completed');
  assert.equal(result.step, 24);
  assert.equal(result.epoch, 4);
  assert.deepEqual(steps, Array.from({ length: 24 }, (_, i) => i + 1));
  assert.deepEqual(evals, [6, 12, 18, 24]);
  const after = trainer.evaluate();
  assert.ok(after.loss < before.loss * 0.7, `val loss ${before.loss} -> ${after.loss}`);
  assert.ok(after.accuracy! > 0.8, `accuracy ${after.accuracy}`);
  assert.deepEqual(JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')), { model: { hidden: 16 } });
  const lines = readMetrics(join(runDir, 'metrics.jsonl'));
  const train = lines.filter((l) => l.loss !== undefined);
  assert.deepEqual(train.map((l) => l.step), [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24]);
  for (const l of train) {
    for (const k of ['step', 'epoch', 'loss', 'accuracy', 'lr', 'grad_norm', 'samples_per_s', 'elapsed_s']) assert.ok(k in l, `${k} in ${JSON.stringify(l)}`);
  }
  const vals = lines.filter((l) => l.val_loss !== undefined);
  assert.deepEqual(vals.map((l) => l.step), [6, 12, 18, 24]);
  assert.equal(vals[0].note, 'eval at 6');
  assert.ok(typeof vals[0].val_accuracy === 'number');
  assert.equal(result.bestValLoss, Math.min(...vals.map((l) => l.val_loss as number)));
  const ck = readdirSync(join(runDir, 'checkpoints')).sort();
  assert.ok(ck.includes('step-24'), ck.join());
  assert.ok(ck.length <= 4, `keeps the last 3 plus the best: ${ck.join()}`);
  for (const f of ['model.safetensors', 'optimizer.safetensors', 'trainer_state.json']) assert.ok(existsSync(join(runDir, 'checkpoints/step-24', f)));
  const state = JSON.parse(readFileSync(join(runDir, 'checkpoints/step-24/trainer_state.json'), 'utf8'));
  assert.equal(state.step, 24);
  assert.ok(state.rng.default.s.length === 4);
  assert.deepEqual(state.config, { model: { hidden: 16 } });
  // A fresh fit into a run directory with checkpoints is refused; nothing is removed.
  await assert.rejects(new Trainer({ ...tinySetup(), epochs: 1, runDir, progress: false }).fit(), /already holds checkpoints/);
  assert.ok(existsSync(join(runDir, 'checkpoints/step-24/model.safetensors')));
});

test('evaluate runs in eval mode without building a graph; maxSteps; gradient accumulation; clipping', async () => {
  const s = tinySetup({ dropout: 0.5 });
  let sawGrad = false;
  const t = new Trainer({
    ...s, maxSteps: 5, progress: false, gradAccumulation: 2, clipGradNorm: 0.1,
    loss: (model, batch) => {
      const [x, y] = batch as kiln.Tensor[];
      const out = (model as unknown as kiln.nn.MLP).forward(x);
      if (!model.training) sawGrad ||= out.requiresGrad;
      return { loss: kiln.crossEntropy(out, y), output: out, target: y };
    },
    onStep: (i) => assert.ok(i.gradNorm > 0),
  });
  const r = await t.fit();
  assert.equal(r.step, 5);
  // 10 micro-batches over 6-batch epochs: epoch 0 whole, then 4 batches of epoch 1
  assert.deepEqual([s.train.epoch, s.train.position], [1, 4]);
  const e = t.evaluate();
  assert.equal(sawGrad, false);
  assert.equal(s.model.training, true);
  // evaluation is deterministic in eval mode even with dropout
  assert.equal(t.evaluate().loss, e.loss);
});

test('a non-finite loss stops with a message naming the step; skipNonFinite skips the batch', async () => {
  const runDir = tmp();
  const s = tinySetup();
  let calls = 0;
  const poison = (model: kiln.Module, batch: unknown) => {
    calls++;
    const [x, y] = batch as kiln.Tensor[];
    const l = kiln.crossEntropy((model as unknown as kiln.nn.MLP).forward(x), y);
    return calls === 4 ? l.mul(NaN) : l;
  };
  const t = new Trainer({ ...s, loss: poison, maxSteps: 6, runDir, checkpoints: { every: 2 }, progress: false });
  await assert.rejects(t.fit(), (err: Error) => {
    assert.ok(err instanceof NonFiniteError);
    assert.match(err.message, /the loss is NaN at step 4/);
    assert.match(err.message, /step-2/);
    return true;
  });
  assert.deepEqual(readdirSync(join(runDir, 'checkpoints')).sort(), ['step-2']);
  calls = 0;
  const s2 = tinySetup();
  const t2 = new Trainer({ ...s2, validation: undefined, loss: poison, maxSteps: 6, skipNonFinite: true, progress: false });
  const r = await t2.fit();
  assert.equal(r.step, 6);
  assert.equal(calls, 7);
  for (const p of s2.model.parameters()) assert.ok(Array.from(p.storage).every(Number.isFinite));
});

test('bad options are refused with clear messages', () => {
  const s = tinySetup();
  assert.throws(() => new Trainer({ ...s } as never), /give epochs or maxSteps/);
  assert.throws(() => new Trainer({ ...s, epochs: 0 }), /epochs must be a positive integer/);
  assert.throws(() => new Trainer({ ...s, epochs: 1, train: [1, 2] as never }), /train must be a DataLoader or a BatchSource/);
  assert.throws(() => new Trainer({ ...s, epochs: 1, checkpoints: { every: 1 } }), /checkpoints need a runDir/);
  assert.throws(() => new Trainer({ ...s, validation: undefined, epochs: 1, earlyStopping: { patience: 1 } }), /earlyStopping needs validation/);
  assert.throws(() => new Trainer({ ...s, epochs: 1, loss: 'hinge' as never }), /loss must be 'crossEntropy', 'mse' or a function/);
});

test('a poisoned model is never checkpointed: the good checkpoints stay', async () => {
  const runDir = tmp();
  const s = tinySetup();
  const t = new Trainer({
    ...s, validation: undefined, maxSteps: 6, runDir, checkpoints: { every: 1, keepLast: 2 }, progress: false,
    onStep: (i) => { if (i.step === 4) s.model.parameters()[0].storage[0] = Infinity; },
  });
  await assert.rejects(t.fit(), /parameter '0\.weight' holds Infinity at step 4; refusing to write a poisoned checkpoint.*step-3/);
  assert.deepEqual(readdirSync(join(runDir, 'checkpoints')).sort(), ['step-2', 'step-3']);
});

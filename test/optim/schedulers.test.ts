// ReduceLROnPlateau and OneCycle against PyTorch's lr (and momentum) sequences (test/golden/schedulers.json, from
// tools/golden/schedulers_ref.py), their state dicts, bad options, and the Trainer stepping a plateau schedule.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../src/index.js';
import { readGolden } from '../helpers/golden.js';
import { tinySetup } from '../train/helpers.js';

const { optim } = kiln;

interface PlateauCase { name: string; options: kiln.optim.ReduceLROnPlateauOptions; initialLrs: number[]; metrics: number[]; lrs: number[][] }
interface OneCycleCase { name: string; optimizer: 'sgd' | 'adam'; options: kiln.optim.OneCycleOptions; lrs: number[][]; momentum: number[] }
const golden = readGolden<{ plateau: PlateauCase[]; oneCycle: OneCycleCase[] }>('schedulers.json');

function twoGroups(kind: 'sgd' | 'adam', lrs = [0.1, 0.01]): kiln.optim.Optimizer {
  const groups = [{ params: [kiln.zeros([2]).requiresGrad_()], lr: lrs[0] }, { params: [kiln.zeros([3]).requiresGrad_()], lr: lrs[1] }];
  return kind === 'sgd' ? new optim.SGD(groups, { lr: lrs[0]!, momentum: 0.9 }) : new optim.Adam(groups, { lr: lrs[0] });
}

const close = (a: number, b: number, what: string): void => {
  assert.ok(Math.abs(a - b) <= 1e-12 + 1e-9 * Math.abs(b), `${what}: ${a}, PyTorch has ${b}`);
};

for (const c of golden.plateau) {
  test(`ReduceLROnPlateau matches PyTorch: ${c.name}`, () => {
    const opt = twoGroups('sgd', c.initialLrs);
    const sched = new optim.ReduceLROnPlateau(opt, c.options);
    c.metrics.forEach((m, i) => {
      sched.step(m);
      c.lrs[i]!.forEach((lr, gi) => close(opt.paramGroups[gi]!.lr, lr, `check ${i + 1}, group ${gi}`));
    });
  });
}

for (const c of golden.oneCycle) {
  test(`OneCycle matches PyTorch: ${c.name}`, () => {
    const opt = twoGroups(c.optimizer);
    const sched = new optim.OneCycle(opt, c.options);
    c.lrs.forEach((lrs, i) => {
      if (i > 0) sched.step();
      lrs.forEach((lr, gi) => close(opt.paramGroups[gi]!.lr, lr, `step ${i}, group ${gi}`));
      const g0 = opt.paramGroups[0]!;
      const m = c.optimizer === 'adam' ? (g0.betas as number[])[0]! : (g0.momentum as number);
      close(m, c.momentum[i]!, `step ${i} momentum`);
    });
  });
}

test('OneCycle: stepping past totalSteps throws, as in PyTorch', () => {
  const sched = new optim.OneCycle(twoGroups('sgd'), { maxLr: 1, totalSteps: 5 });
  for (let i = 0; i < 5; i++) sched.step();
  assert.throws(() => sched.step(), /tried to step 6 times, but the cycle has totalSteps 5/);
});

test('OneCycle: the state dict restores the position, lr and momentum', () => {
  const a = new optim.OneCycle(twoGroups('adam'), { maxLr: 0.1, totalSteps: 30 });
  for (let i = 0; i < 11; i++) a.step();
  const optB = twoGroups('adam');
  const b = new optim.OneCycle(optB, { maxLr: 0.1, totalSteps: 30 });
  b.loadStateDict(JSON.parse(JSON.stringify(a.stateDict())));
  assert.deepEqual(b.lastLr, a.lastLr);
  assert.deepEqual(optB.paramGroups[0]!.betas, a.optimizer.paramGroups[0]!.betas);
  assert.throws(() => b.loadStateDict({ step: 31 }), /expected \{ step: an integer from 0 to 30 \}/);
});

test('OneCycle: bad options are refused with a sentence naming them', () => {
  const opt = twoGroups('sgd');
  assert.throws(() => new optim.OneCycle(opt, { maxLr: 1 }), /give totalSteps, or both epochs and stepsPerEpoch/);
  assert.throws(() => new optim.OneCycle(opt, { maxLr: 1, totalSteps: 0 }), /totalSteps must be a positive integer, got 0/);
  assert.throws(() => new optim.OneCycle(opt, { maxLr: 1, epochs: 2, stepsPerEpoch: 1.5 }), /stepsPerEpoch must be a positive integer, got 1.5/);
  assert.throws(() => new optim.OneCycle(opt, { maxLr: 1, totalSteps: 10, pctStart: 1.2 }), /pctStart must be in \[0, 1\], got 1.2/);
  assert.throws(() => new optim.OneCycle(opt, { maxLr: [1], totalSteps: 10 }), /maxLr has 1 values but the optimizer has 2 parameter groups/);
  assert.throws(() => new optim.OneCycle(opt, { maxLr: -1, totalSteps: 10 }), /maxLr of group 0 must be positive, got -1/);
  assert.throws(() => new optim.OneCycle(opt, { maxLr: 1, totalSteps: 10, annealStrategy: 'exp' as 'cos' }), /annealStrategy must be 'cos' or 'linear', got exp/);
  assert.throws(() => new optim.OneCycle(opt, { maxLr: 1, totalSteps: 10, pctStart: 0.1 }), /phase 1 of the cycle has no steps/);
  assert.throws(() => new optim.OneCycle(opt, { maxLr: 1, totalSteps: 10, baseMomentum: 0.99 }), /0 <= baseMomentum <= maxMomentum < 1/);
});

test('ReduceLROnPlateau: the state dict survives JSON and restores counters and lrs', () => {
  const optA = twoGroups('sgd');
  const a = new optim.ReduceLROnPlateau(optA, { patience: 1, cooldown: 1 });
  const fresh = new optim.ReduceLROnPlateau(twoGroups('sgd'));
  fresh.loadStateDict(JSON.parse(JSON.stringify(fresh.stateDict()))); // best is null before the first check
  assert.equal(fresh.best, Infinity);
  for (const m of [1, 2, 3, 4]) a.step(m);
  const optB = twoGroups('sgd');
  const b = new optim.ReduceLROnPlateau(optB, { patience: 1, cooldown: 1 });
  b.loadStateDict(JSON.parse(JSON.stringify(a.stateDict())));
  assert.deepEqual(b.stateDict(), a.stateDict());
  for (const m of [5, 6, 0.5, 7]) { a.step(m); b.step(m); }
  assert.deepEqual(optB.paramGroups.map((g) => g.lr), optA.paramGroups.map((g) => g.lr));
  assert.throws(() => b.loadStateDict({ best: 1, numBadChecks: -1, cooldownCounter: 0, lastCheck: 0, lrs: [1, 1] }), /expected \{ best, numBadChecks/);
  assert.throws(() => b.loadStateDict({ best: 1, numBadChecks: 0, cooldownCounter: 0, lastCheck: 0, lrs: [1] }), /1 group lrs but the optimizer has 2 groups/);
});

test('ReduceLROnPlateau: bad options and metrics are refused with a sentence naming them', () => {
  const opt = twoGroups('sgd');
  assert.throws(() => new optim.ReduceLROnPlateau(opt, { factor: 1 }), /factor must be in \(0, 1\), got 1/);
  assert.throws(() => new optim.ReduceLROnPlateau(opt, { mode: 'up' as 'min' }), /mode must be 'min' or 'max', got up/);
  assert.throws(() => new optim.ReduceLROnPlateau(opt, { thresholdMode: 'x' as 'rel' }), /thresholdMode must be 'rel' or 'abs', got x/);
  assert.throws(() => new optim.ReduceLROnPlateau(opt, { patience: 1.5 }), /patience must be a non-negative integer, got 1.5/);
  assert.throws(() => new optim.ReduceLROnPlateau(opt, { cooldown: -1 }), /cooldown must be a non-negative integer, got -1/);
  assert.throws(() => new optim.ReduceLROnPlateau(opt, { minLr: [0] }), /minLr has 1 values but the optimizer has 2 parameter groups/);
  assert.throws(() => new optim.ReduceLROnPlateau(opt, { threshold: -0.1 }), /threshold must be non-negative, got -0.1/);
  const s = new optim.ReduceLROnPlateau(opt);
  assert.throws(() => s.step(NaN), /expected the metric as a number, got NaN/);
  assert.throws(() => s.step('1' as unknown as number), /expected the metric as a number, got 1/);
  s.step(kiln.tensor(0.5)); // a one-element tensor is read with item()
  assert.equal(s.best, 0.5);
});

test('Trainer steps a ReduceLROnPlateau on the validation loss and resumes it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-plateau-'));
  const make = (maxSteps: number) => {
    const s = tinySetup({ lr: 0.05 });
    // patience 0 and a huge threshold: every evaluation but the first is "no better", so the lr halves each time.
    const schedule = new optim.ReduceLROnPlateau(s.optimizer, { factor: 0.5, patience: 0, threshold: 0.9 });
    const trainer = new kiln.Trainer({ ...s, schedule, maxSteps, evalEvery: 2, runDir: dir, progress: false, checkpoints: { every: 2 } });
    return { trainer, schedule };
  };
  const first = make(6);
  await first.trainer.fit();
  assert.equal(first.schedule.lastCheck, 3); // evaluations at steps 2, 4, 6
  assert.equal(first.trainer.lr, 0.05 * 0.25);
  const second = make(8);
  await second.trainer.fit({ resume: true });
  assert.equal(second.schedule.lastCheck, 4);
  assert.equal(second.trainer.lr, 0.05 * 0.125);
  const s = tinySetup();
  const plateau = new optim.ReduceLROnPlateau(s.optimizer);
  assert.throws(() => new kiln.Trainer({ ...s, validation: undefined, schedule: plateau, maxSteps: 2 }),
    /schedule is a ReduceLROnPlateau, which steps on the validation loss, but no validation data was given/);
  const maxMode = new optim.ReduceLROnPlateau(s.optimizer, { mode: 'max' });
  assert.throws(() => new kiln.Trainer({ ...s, schedule: maxMode, maxSteps: 2 }), /in mode 'max', but the Trainer steps it on the validation loss, where lower is better; use mode 'min'/);
});

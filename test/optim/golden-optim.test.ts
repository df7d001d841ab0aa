// Ten steps each of SGD (momentum, Nesterov), Adam (L2) and AdamW with parameter groups and a warmup-cosine
// schedule, all with gradient clipping, against PyTorch: per-step loss, pre-clip norm, lr, and final weights.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import { assertClose, fromGolden, readGolden, type GoldenTensor } from '../helpers/golden.js';

const { nn, optim } = kiln;

interface Run {
  name: string; optimizer: 'SGD' | 'Adam' | 'AdamW'; hyper: Record<string, unknown>;
  param_groups: { params: string[]; weightDecay?: number }[];
  schedule: { warmupSteps: number; totalSteps: number; minRatio: number } | null;
  steps: { lr: number; loss: number; gradNorm: number }[]; final_params: Record<string, GoldenTensor>;
}
const g = readGolden<{ batches: { input: GoldenTensor; target: GoldenTensor }[];
  initial_params: Record<string, GoldenTensor>; runs: Run[] }>('optim.json');

class Small extends nn.Module {
  fc1 = new nn.Linear(4, 5);
  fc2 = new nn.Linear(5, 3);
  forward(x: kiln.Tensor): kiln.Tensor { return this.fc2.forward(this.fc1.forward(x).tanh()); }
}

function makeOptimizer(run: Run, model: Small): kiln.optim.Optimizer {
  const params = Object.fromEntries(model.namedParameters());
  const groups = run.param_groups.map((pg) => ({
    params: pg.params.map((n) => params[n]),
    ...(pg.weightDecay !== undefined ? { weightDecay: pg.weightDecay } : {}),
  }));
  const h = run.hyper as { lr: number; momentum: number; dampening: number; nesterov: boolean; weightDecay: number;
    betas: [number, number]; eps: number };
  if (run.optimizer === 'SGD') return new optim.SGD(groups, h);
  if (run.optimizer === 'Adam') return new optim.Adam(groups, h);
  return new optim.AdamW(groups, h);
}

for (const run of g.runs) {
  test(`${run.name}: ten steps match PyTorch`, () => {
    const model = new Small();
    model.loadStateDict(Object.fromEntries(Object.entries(g.initial_params).map(([k, v]) => [k, fromGolden(v, 'float32')])));
    const opt = makeOptimizer(run, model);
    const sched = run.schedule ? new optim.Scheduler(opt, optim.cosineWithWarmup({
      warmup: run.schedule.warmupSteps, total: run.schedule.totalSteps, floor: run.schedule.minRatio })) : null;
    run.steps.forEach((expected, s) => {
      opt.zeroGrad();
      const batch = g.batches[s];
      const loss = nn.functional.mseLoss(model.forward(fromGolden(batch.input, 'float32')), fromGolden(batch.target, 'float32'));
      loss.backward();
      const norm = optim.clipGradNorm(model.parameters(), 1.0);
      const close = (a: number, b: number, what: string): void =>
        assert.ok(Math.abs(a - b) <= 1e-5 + 1e-4 * Math.abs(b), `step ${s} ${what}: ${a} vs PyTorch ${b}`);
      close(loss.item(), expected.loss, 'loss');
      close(norm, expected.gradNorm, 'grad norm');
      close(opt.paramGroups[0].lr, expected.lr, 'lr');
      opt.step();
      sched?.step();
    });
    const params = Object.fromEntries(model.namedParameters());
    for (const [k, v] of Object.entries(run.final_params)) assertClose(params[k], v, `final ${k}`, 1e-4, 1e-6);
  });
}

test('optimizer state dict round-trips: a restored optimizer continues identically', () => {
  const make = (): [Small, kiln.optim.AdamW] => {
    kiln.manualSeed(3);
    const m = new Small();
    return [m, new optim.AdamW(m.parameters(), { lr: 0.01 })];
  };
  const x = kiln.randn([8, 4], { generator: new kiln.Generator(1) });
  const y = kiln.randn([8, 3], { generator: new kiln.Generator(2) });
  const stepOnce = (m: Small, o: kiln.optim.Optimizer): number => {
    o.zeroGrad();
    const l = nn.functional.mseLoss(m.forward(x), y);
    l.backward();
    o.step();
    return l.item();
  };
  const [a, oa] = make();
  for (let i = 0; i < 3; i++) stepOnce(a, oa);
  const [b, ob] = make();
  b.loadStateDict(a.stateDict());
  ob.loadStateDict(oa.stateDict());
  for (let i = 0; i < 3; i++) assert.equal(stepOnce(b, ob), stepOnce(a, oa));
});

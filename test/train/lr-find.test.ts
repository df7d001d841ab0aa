// The learning-rate range test: the sweep is exponential, the loss first falls then blows up, the suggestion
// lies inside the falling part, and the model, optimizer, data position and random state are restored.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import { Trainer } from '../../src/train/trainer.js';
import { tinySetup } from './helpers.js';

test('lrFind sweeps exponentially, suggests a rate where the loss falls, and restores everything', () => {
  const s = tinySetup({ lr: 0.01, dropout: 0.1 });
  const t = new Trainer({ ...s, maxSteps: 10, progress: false });
  // one real step first so the optimizer has state to restore
  s.train.next();
  const before = Object.fromEntries(Object.entries(s.model.stateDict()).map(([k, v]) => [k, v.storage.slice()]));
  const optBefore = JSON.stringify(s.optimizer.stateDict().paramGroups);
  const dataBefore = JSON.stringify(s.train.state());
  const rngBefore = kiln.defaultGenerator.getState();
  const r = t.lrFind({ minLr: 1e-5, maxLr: 100, steps: 80 });
  assert.equal(r.lrs[0], 1e-5);
  for (let i = 1; i < r.lrs.length; i++) assert.ok(Math.abs(r.lrs[i] / r.lrs[i - 1] - (1e7) ** (1 / 79)) < 1e-9);
  assert.equal(r.stoppedBy, 'diverged', 'lr 100 blows the loss up');
  assert.ok(r.lrs.length < 80);
  assert.ok(r.suggestedLr > 1e-4 && r.suggestedLr < 1, `suggested ${r.suggestedLr}`);
  assert.ok(r.suggestedLr <= r.minLossLr);
  assert.ok(Math.min(...r.smoothed) < r.smoothed[0] * 0.8, 'the loss falls somewhere in the sweep');
  for (const [k, v] of Object.entries(s.model.stateDict())) assert.deepEqual(v.storage, before[k], k);
  assert.equal(JSON.stringify(s.optimizer.stateDict().paramGroups), optBefore);
  assert.equal(s.optimizer.paramGroups[0].lr, 0.01);
  assert.equal(JSON.stringify(s.train.state()), dataBefore);
  assert.deepEqual(kiln.defaultGenerator.getState(), rngBefore);
  assert.throws(() => t.lrFind({ minLr: 1, maxLr: 0.1 }), /need 0 < minLr < maxLr/);
});

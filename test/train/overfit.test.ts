// The overfitting example (examples/overfit.ts) in miniature: training loss keeps falling while validation
// loss turns up, early stopping catches the turn, and the restored weights give exactly the best validation
// loss recorded.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { overfit } from '../../examples/overfit.js';

test('early stopping catches the turn of the validation loss and restores the best weights', async () => {
  const r = await overfit({ trainSize: 100, valSize: 100, hidden: 64, epochs: 60, patience: 3, lr: 3e-3, progress: false });
  assert.equal(r.stopReason, 'early-stopping');
  const best = r.curve.findIndex((c) => c.valLoss === r.bestValLoss);
  assert.ok(best >= 0 && best < r.curve.length - 3, `best epoch ${best} of ${r.curve.length}`);
  // after the best epoch, validation loss no longer improves while training loss keeps falling
  const last = r.curve[r.curve.length - 1];
  assert.ok(last.valLoss > r.bestValLoss, 'validation loss turned up');
  assert.ok(last.trainLoss < r.curve[best].trainLoss, 'training loss kept falling');
  assert.equal(r.restoredValLoss, r.bestValLoss, 'the restored weights give the best validation loss exactly');
});

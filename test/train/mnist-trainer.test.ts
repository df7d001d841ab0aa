// The MNIST example on the Trainer (examples/mnist-trainer.ts) with a narrow MLP on a stratified 500-digit subset: it learns,
// writes its run directory, and a second fit with more epochs resumes from the checkpoint.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainMnistWithTrainer } from '../../examples/mnist-trainer.js';

test('MNIST on the Trainer learns, checkpoints, and resumes', async () => {
  const runDir = mkdtempSync(join(tmpdir(), 'kiln-mnist-'));
  const first = await trainMnistWithTrainer({ limit: 500, validation: 100, epochs: 1, sizes: [784, 32, 10], lr: 3e-3, batchSize: 32, runDir, progress: false });
  assert.equal(first.stopReason, 'completed');
  assert.equal(first.step, 13);
  assert.ok(first.accuracy > 0.6, `accuracy after one epoch on 400 digits: ${first.accuracy}`);
  assert.ok(existsSync(join(runDir, 'checkpoints/step-13/model.safetensors')));
  const config = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
  assert.deepEqual(config.model, { sizes: [784, 32, 10], activation: 'relu' });
  const second = await trainMnistWithTrainer({ limit: 500, validation: 100, epochs: 3, sizes: [784, 32, 10], lr: 3e-3, batchSize: 32, runDir, resume: true, progress: false });
  assert.equal(second.step, 39);
  assert.ok(second.accuracy > first.accuracy, `${first.accuracy} -> ${second.accuracy}`);
  assert.ok(second.bestValLoss! < first.bestValLoss!);
});

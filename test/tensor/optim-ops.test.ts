// adamwUpdate_, the one fused optimizer op: it matches a composed AdamW step and refuses mismatched buffers and
// hyper-parameters with a sentence naming them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';

const hyper = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 };

test('adamwUpdate_ matches the composed AdamW step (decoupled) and Adam with L2 decay', () => {
  for (const decoupled of [true, false]) {
    const p = kiln.tensor([1, -2, 3]);
    const g = kiln.tensor([0.5, 0.25, -1]);
    const m = kiln.zerosLike(p);
    const v = kiln.zerosLike(p);
    kiln.adamwUpdate_(p, g, m, v, { ...hyper, decoupled });
    const w0 = [1, -2, 3];
    const g0 = [0.5, 0.25, -1].map((x, i) => (decoupled ? x : x + hyper.weightDecay * w0[i]));
    w0.forEach((w, i) => {
      const mi = (1 - hyper.beta1) * g0[i];
      const vi = (1 - hyper.beta2) * g0[i] * g0[i];
      const decayed = decoupled ? w * (1 - hyper.lr * hyper.weightDecay) : w;
      const want = decayed - (hyper.lr * mi / (1 - hyper.beta1)) / (Math.sqrt(vi / (1 - hyper.beta2)) + hyper.eps);
      assert.ok(Math.abs(p.data()[i] - want) < 1e-5, `decoupled=${decoupled} param ${i}`);
      assert.ok(Math.abs(m.data()[i] - mi) < 1e-6, `decoupled=${decoupled} expAvg ${i}`);
    });
    assert.deepEqual(g.toArray(), [0.5, 0.25, -1], 'the gradient is read only');
  }
});

test('adamwUpdate_ refuses mismatched buffers and bad hyper-parameters', () => {
  const p = kiln.tensor([1, 2]);
  const z = () => kiln.zerosLike(p);
  assert.throws(() => kiln.adamwUpdate_(p, kiln.tensor([1, 2, 3]), z(), z(), hyper), /grad has shape \[3\], expected/);
  assert.throws(() => kiln.adamwUpdate_(p, z(), z().to('float64'), z(), hyper), /expAvg is float64 but the parameter is float32/);
  assert.throws(() => kiln.adamwUpdate_(p, z(), z(), z(), { ...hyper, beta2: 1 }), /beta1 and beta2 must be in \[0, 1\)/);
  assert.throws(() => kiln.adamwUpdate_(p, z(), z(), z(), { ...hyper, lr: NaN }), /lr must be a finite number/);
  assert.throws(() => kiln.adamwUpdate_(p, z(), z(), z(), { ...hyper, step: 0 }), /step must be an integer >= 1/);
  assert.throws(() => kiln.adamwUpdate_(kiln.tensor([1, 2], { dtype: 'int32' }), z(), z(), z(), hyper), /floating-point/);
});

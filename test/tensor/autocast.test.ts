// kiln.autocast: float32 matrix products (linear, matmul, conv1d; forward and both backward products) run on
// bf16-rounded inputs with float32 accumulation; the scope nests and restores, float64 stays exact, and a small
// GPT trained in bf16 follows the float32 loss curve.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import { roundBf16 } from '../../src/backend/js/bf16.js';

function rounded(t: kiln.Tensor): kiln.Tensor {
  const out = new Float32Array(t.size);
  roundBf16(t.storage as Float32Array, out);
  return new kiln.Tensor(out, t.shape);
}

function maxDiff(a: kiln.Tensor, b: kiln.Tensor): number {
  const x = a.storage;
  const y = b.storage;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

test('autocast bf16: linear, matmul and conv1d equal float32 on rounded inputs, gradients included', () => {
  kiln.manualSeed(1);
  const x = kiln.randn([6, 40]).requiresGrad_();
  const w = kiln.randn([24, 40]).requiresGrad_();
  const b = kiln.randn([24]).requiresGrad_();
  const g = kiln.randn([6, 24]);
  const y = kiln.autocast('bf16', () => kiln.linear(x, w, b));
  y.backward(g);
  // Reference: float32 on bf16 copies; each backward product rounds its own two operands.
  const yr = kiln.linear(rounded(x), rounded(w), b);
  assert.ok(maxDiff(y, yr) < 1e-5, `forward differs by ${maxDiff(y, yr)}`);
  const dx = rounded(g).matmul(rounded(w));
  const dw = rounded(g).transpose(0, 1).matmul(rounded(x));
  assert.ok(maxDiff(x.grad!, dx) < 1e-5, `dx differs by ${maxDiff(x.grad!, dx)}`);
  assert.ok(maxDiff(w.grad!, dw) < 1e-5, `dw differs by ${maxDiff(w.grad!, dw)}`);
  const y32 = kiln.linear(x, w, b);
  assert.ok(maxDiff(y, y32) > 1e-4, 'bf16 must differ from float32 on unrounded inputs');

  const a = kiln.randn([3, 5, 33]);
  const c = kiln.randn([33, 7]);
  const m = kiln.autocast('bf16', () => a.matmul(c));
  assert.ok(maxDiff(m, rounded(a).matmul(rounded(c))) < 1e-5);
  const cw = kiln.randn([33, 12]);
  const conv = kiln.autocast('bf16', () => kiln.conv1d(a, cw));
  assert.ok(maxDiff(conv, kiln.conv1d(rounded(a), rounded(cw))) < 1e-5);
});

test('autocast restores the previous precision (after errors too), leaves float64 exact, and refuses unknown names', () => {
  assert.equal(kiln.autocastPrecision(), 'float32');
  kiln.autocast('bf16', () => {
    assert.equal(kiln.autocastPrecision(), 'bf16');
    kiln.autocast('float32', () => assert.equal(kiln.autocastPrecision(), 'float32'));
    assert.equal(kiln.autocastPrecision(), 'bf16');
  });
  assert.throws(() => kiln.autocast('bf16', () => { throw new Error('boom'); }), /boom/);
  assert.equal(kiln.autocastPrecision(), 'float32');
  assert.throws(() => kiln.autocast('fp16' as 'bf16', () => 0), /precision must be 'float32' or 'bf16', got 'fp16'/);
  const a = kiln.randn([4, 9], { dtype: 'float64' });
  const b = kiln.randn([9, 3], { dtype: 'float64' });
  assert.equal(maxDiff(kiln.autocast('bf16', () => a.matmul(b)), a.matmul(b)), 0);
  const model = new kiln.nn.Linear(2, 2);
  const train = new kiln.data.DataLoader(new kiln.data.TensorDataset(kiln.zeros([4, 2]), kiln.zeros([4, 2])), { batchSize: 2 });
  assert.throws(() => new kiln.train.Trainer({ model, optimizer: new kiln.optim.SGD(model.parameters(), { lr: 0.1 }), train,
    maxSteps: 1, precision: 'half' as 'bf16' }), /precision must be 'float32' or 'bf16', got 'half'/);
});

test('a small GPT trained in bf16 ends within 1% of the float32 loss', () => {
  const finalLoss = (precision: 'float32' | 'bf16'): number => {
    kiln.manualSeed(5);
    const gpt = new kiln.models.GPT({ vocabSize: 64, context: 16, layers: 2, heads: 2, width: 32 });
    const opt = new kiln.optim.AdamW(gpt.parameters(), { lr: 1e-2 });
    const gen = new kiln.Generator(9);
    // A learnable stream: each token is the previous plus one, modulo 64, from a random start.
    const batch = (): [kiln.Tensor, kiln.Tensor] => {
      const x = new Int32Array(4 * 16);
      const y = new Int32Array(4 * 16);
      for (let r = 0; r < 4; r++) {
        const s = gen.int(0, 64);
        for (let t = 0; t < 16; t++) { x[r * 16 + t] = (s + t) % 64; y[r * 16 + t] = (s + t + 1) % 64; }
      }
      return [new kiln.Tensor(x, [4, 16]), new kiln.Tensor(y, [4, 16])];
    };
    let tail = 0;
    for (let step = 0; step < 40; step++) {
      const [x, y] = batch();
      opt.zeroGrad();
      const loss = kiln.autocast(precision, () => gpt.loss(x, y));
      loss.backward();
      opt.step();
      if (step >= 35) tail += loss.item() / 5;
    }
    return tail;
  };
  const f32 = finalLoss('float32');
  const bf16 = finalLoss('bf16');
  assert.ok(f32 < 3, `float32 should learn the stream (loss ${f32})`);
  assert.ok(Math.abs(bf16 - f32) / f32 < 0.01, `bf16 ${bf16} vs float32 ${f32}`);
});

// Gradient checkpointing (kiln.nn.checkpoint, GPT/Llama checkpointActivations): the gradients equal those without
// it bit for bit, dropout included (the rerun replays the same draws and leaves the generator where a plain run
// would), it composes with autocast, inference with a KV cache is untouched, and bad arguments are refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import { gradcheck } from '../helpers/gradcheck.js';

type Arch = 'gpt' | 'llama';

function makeModel(arch: Arch): kiln.models.CausalLM & { checkpointActivations: boolean } {
  const common = { vocabSize: 50, context: 16, layers: 3, heads: 4, width: 32, dropout: 0.2 };
  return arch === 'gpt' ? new kiln.models.GPT(common) : new kiln.models.Llama({ ...common, kvHeads: 2 });
}

/** Loss, every parameter's gradient and the generator state after two training steps' backward passes. */
function run(arch: Arch, checkpointed: boolean, precision: 'float32' | 'bf16' = 'float32') {
  kiln.manualSeed(7);
  const model = makeModel(arch);
  model.checkpointActivations = checkpointed;
  model.train();
  const losses: number[] = [];
  for (let step = 0; step < 2; step++) {
    for (const p of model.parameters()) kiln.clearGrad(p);
    const idx = kiln.randint(0, 50, [2, 16], { dtype: 'int32' });
    const y = kiln.randint(0, 50, [2, 16], { dtype: 'int32' });
    const loss = kiln.autocast(precision, () => model.loss(idx, y));
    loss.backward();
    losses.push(loss.item());
  }
  return { losses, grads: model.parameters().map((p) => Array.from(p.grad!.storage)), rng: kiln.defaultGenerator.getState() };
}

for (const arch of ['gpt', 'llama'] as const) {
  test(`${arch}: checkpointed gradients equal plain ones bit for bit, with dropout 0.2`, () => {
    const plain = run(arch, false);
    const ck = run(arch, true);
    assert.deepEqual(ck.losses, plain.losses);
    assert.deepEqual(ck.rng, plain.rng, 'the generator ends where a plain run leaves it');
    assert.equal(ck.grads.length, plain.grads.length);
    ck.grads.forEach((g, i) => assert.deepEqual(g, plain.grads[i], `parameter ${i}`));
  });
}

test('checkpointing keeps the autocast precision of the forward for the rerun', () => {
  const plain = run('gpt', false, 'bf16');
  const ck = run('gpt', true, 'bf16');
  assert.deepEqual(ck.losses, plain.losses);
  ck.grads.forEach((g, i) => assert.deepEqual(g, plain.grads[i], `parameter ${i}`));
});

test('kiln.nn.checkpoint on a function: input gradients, non-tensor arguments, no graph kept, noGrad passthrough', () => {
  kiln.manualSeed(3);
  const lin = new kiln.nn.Linear(5, 5);
  const f = (x: kiln.Tensor, scale: number): kiln.Tensor => kiln.dropout(lin.forward(x).tanh(), 0.3).mul(scale);
  const x1 = kiln.randn([4, 5]).requiresGrad_();
  const x2 = x1.detach().clone().requiresGrad_();
  const state = kiln.defaultGenerator.getState();
  const a = f(x1, 2).sum();
  a.backward();
  const wantW = Array.from(lin.weight.grad!.storage);
  kiln.clearGrad(lin.weight);
  lin.weight.grad = null;
  kiln.defaultGenerator.setState(state);
  const y = kiln.nn.checkpoint(f, x2, 2);
  assert.equal(y.node?.op, 'checkpoint', 'one node stands for the whole function');
  y.sum().backward();
  assert.deepEqual(Array.from(x2.grad!.storage), Array.from(x1.grad!.storage));
  assert.deepEqual(Array.from(lin.weight.grad!.storage), wantW);
  const z = kiln.noGrad(() => kiln.nn.checkpoint(f, x2, 1));
  assert.equal(z.requiresGrad, false);
  assert.throws(() => kiln.nn.checkpoint('f' as never, x2), /checkpoint: fn must be a function returning a Tensor, got string/);
  assert.throws(() => kiln.nn.checkpoint(((t: kiln.Tensor) => [t]) as never, x2), /checkpoint: fn must return a Tensor, got object/);
});

test('checkpointActivations leaves KV-cache decoding unchanged', () => {
  kiln.manualSeed(11);
  const gpt = new kiln.models.GPT({ vocabSize: 50, context: 16, layers: 2, heads: 2, width: 16 });
  gpt.eval();
  const prompt = kiln.tensor([[1, 2, 3]], { dtype: 'int32' });
  const plain = Array.from(gpt.generate(prompt, 6, { temperature: 0 }).storage);
  gpt.checkpointActivations = true;
  assert.deepEqual(Array.from(gpt.generate(prompt, 6, { temperature: 0 }).storage), plain);
});

test('gradcheck (float64): a checkpointed function of two inputs against finite differences', () => {
  const w = kiln.randn([4, 6], { dtype: 'float64', generator: new kiln.Generator(2) });
  const f = (a: kiln.Tensor, b: kiln.Tensor): kiln.Tensor => kiln.layerNorm(a.matmul(w).tanh().mul(b), [6]);
  gradcheck('checkpoint', (a, b) => kiln.nn.checkpoint(f, a, b),
    [kiln.randn([3, 4], { dtype: 'float64', generator: new kiln.Generator(3) }).requiresGrad_(),
      kiln.randn([3, 6], { dtype: 'float64', generator: new kiln.Generator(4) }).requiresGrad_()]);
});

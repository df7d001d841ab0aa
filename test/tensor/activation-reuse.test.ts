// Memory reuse across training steps: activations a model keeps internal (activationScope), op-private saved
// buffers and parked gradients go back to the allocator after backward. These tests prove the reuse happens and
// that it never changes a result or a tensor the caller can reach.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import { activationScope } from '../../src/tensor/autograd.js';
import { allocFloat } from '../../src/tensor/storage.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const N = 300; // 300 x 300 float32 = 352 KiB, above the pool's 64 KiB floor

function setup(): { x: Tensor; w: Tensor } {
  kiln.manualSeed(1);
  return { x: kiln.randn([N, N]), w: kiln.randn([N, N], { requiresGrad: true }) };
}

test('an internal activation\'s buffer is reused after backward; kept outputs are not', () => {
  const { x, w } = setup();
  let h: Tensor | null = null;
  const r = activationScope(() => {
    h = x.matmul(w).tanh();
    const out = h.mul(2);
    return { out, loss: out.sum() };
  }, (res) => [res.out, res.loss]);
  const outBefore = r.out.data();
  r.loss.backward();
  const hStorage = (h as unknown as Tensor).storage;
  const taken = Array.from({ length: 8 }, () => allocFloat('float32', N * N));
  // Backward itself may already have drawn the dead buffer for w's gradient; otherwise the next allocation does.
  assert.ok(w.grad!.storage === hStorage || taken.includes(hStorage as Float32Array), 'the dead activation is reused');
  for (const t of taken) t.fill(7);
  assert.deepEqual(r.out.data(), outBefore, 'the kept output is untouched');
});

test('views and detached copies that escape keep their buffer alive', () => {
  const { x, w } = setup();
  let escaped: Tensor | null = null;
  const r = activationScope(() => {
    const h = x.matmul(w).tanh();
    escaped = h.detach(); // leaves the scope without being returned
    const view = h.mul(3).reshape([N * N]);
    return { view, loss: view.sum() };
  }, (res) => [res.view, res.loss]);
  const escapedBefore = (escaped as unknown as Tensor).data();
  const viewBefore = r.view.data();
  r.loss.backward();
  for (let i = 0; i < 6; i++) allocFloat('float32', N * N).fill(-1);
  assert.deepEqual((escaped as unknown as Tensor).data(), escapedBefore);
  assert.deepEqual(r.view.data(), viewBefore, 'a returned reshape view protects the buffer it shares');
});

test('retainGraph keeps every activation: a second backward gives the same gradient', () => {
  const { x, w } = setup();
  const loss = activationScope(() => x.matmul(w).tanh().square().sum(), (l) => [l]);
  loss.backward(undefined, { retainGraph: true });
  const g1 = w.grad!.data();
  w.grad = null;
  for (let i = 0; i < 6; i++) allocFloat('float32', N * N).fill(5);
  loss.backward();
  assert.deepEqual(w.grad!.data(), g1);
});

function tinyGPT(): kiln.models.GPT {
  kiln.manualSeed(3);
  return new kiln.models.GPT({ vocabSize: 512, context: 64, layers: 2, heads: 4, width: 64, dropout: 0, bias: true,
    tiedEmbeddings: true });
}

function trainSteps(step: (model: kiln.models.GPT, idx: Tensor, tgt: Tensor) => number): { losses: number[]; params: Float32Array[] } {
  const model = tinyGPT();
  const opt = new kiln.optim.AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.1 });
  const losses: number[] = [];
  for (let s = 0; s < 4; s++) {
    const ids = Int32Array.from({ length: 8 * 64 }, (_, i) => (i * 31 + s * 7) % 512);
    const idx = kiln.tensor(ids, { shape: [8, 64] });
    const tgt = kiln.tensor(ids.map((v) => (v * 5 + 1) % 512), { shape: [8, 64] });
    opt.zeroGrad();
    losses.push(step(model, idx, tgt));
    opt.step();
  }
  return { losses, params: model.parameters().map((p) => p.storage as Float32Array) };
}

test('GPT training with activation reuse is bitwise the same as with every activation kept', () => {
  const kept = trainSteps((m, idx, tgt) => {
    const { loss } = m.forward(idx, tgt);
    loss!.backward(undefined, { retainGraph: true }); // nothing is recycled
    return loss!.item();
  });
  const viaForward = trainSteps((m, idx, tgt) => {
    const { logits, loss } = m.forward(idx, tgt);
    const before = logits.data();
    loss!.backward();
    for (let i = 0; i < 4; i++) allocFloat('float32', logits.size).fill(9);
    assert.deepEqual(logits.data(), before, 'logits returned by forward survive backward and later steps');
    return loss!.item();
  });
  const viaLoss = trainSteps((m, idx, tgt) => {
    const loss = m.loss(idx, tgt);
    loss.backward();
    return loss.item();
  });
  assert.deepEqual(viaForward.losses, kept.losses);
  assert.deepEqual(viaLoss.losses, kept.losses);
  viaLoss.params.forEach((p, i) => assert.deepEqual(p, kept.params[i], `parameter ${i}`));
  viaForward.params.forEach((p, i) => assert.deepEqual(p, kept.params[i], `parameter ${i}`));
});

test('GPT.loss rejects bad targets before running the model', () => {
  const model = tinyGPT();
  const idx = kiln.zeros([2, 8], { dtype: 'int32' });
  assert.throws(() => model.loss(idx, kiln.zeros([2, 7], { dtype: 'int32' })), /targets have shape \[2, 7\] but idx has \[2, 8\]/);
  assert.throws(() => model.loss(idx, kiln.full([2, 8], 600, { dtype: 'int32' })), /target 600 .* outside the vocabulary of 512/);
  assert.throws(() => model.loss(idx, kiln.zeros([2, 8])), /targets must be an int32 tensor/);
});

test('zeroGrad keeps a parameter\'s gradient buffer for its next gradient', () => {
  const { x, w } = setup();
  const opt = new kiln.optim.SGD([w], { lr: 0.1 });
  x.matmul(w).sum().backward();
  const held = w.grad!;
  opt.zeroGrad();
  assert.equal(w.grad, null, 'zeroGrad clears .grad as set_to_none does');
  x.mul(2).matmul(w).sum().backward();
  const fresh = kiln.randn([N, N], { requiresGrad: true });
  fresh.storage.set(w.storage);
  x.mul(2).matmul(fresh).sum().backward();
  assert.deepEqual(w.grad!.data(), fresh.grad!.data(), 'the reused buffer holds exactly the new gradient');
  assert.equal(w.grad!.storage, held.storage, 'written into the parked buffer');
  assert.equal(w.grad!.constructor, kiln.Tensor, 'a plain tensor, not a Parameter');
  w.grad!.storage.fill(0);
  assert.ok(held.data().every((v) => v === 0), 'a gradient held past zeroGrad aliases the next one (clone to keep it)');
});

test('releaseCachedMemory empties the pool that backward fills', () => {
  const { x, w } = setup();
  kiln.activationScope(() => x.matmul(w).tanh().square().sum(), (l) => [l]).backward();
  assert.ok(kiln.cachedMemoryBytes() >= N * N * 4, 'dead buffers are kept for reuse');
  kiln.releaseCachedMemory();
  assert.equal(kiln.cachedMemoryBytes(), 0);
});

// A Sequential of Kiln's own layers declares its intermediate activations internal; one holding a layer a user
// wrote (which may keep what its forward computes), or a user's subclass of a Kiln layer, does not.
class KeepsOutput extends kiln.nn.Module {
  kept: Tensor | null = null;
  forward(x: Tensor): Tensor { this.kept = x.tanh(); return this.kept.mul(1); }
}
class Passthrough extends kiln.nn.Module {
  constructor(readonly inner: kiln.nn.Linear) { super(); }
  forward(x: Tensor): Tensor { return this.inner.forward(x); }
}
class KeepingReLU extends kiln.nn.ReLU {
  kept: Tensor | null = null;
  override forward(x: Tensor): Tensor { this.kept = super.forward(x); return this.kept.mul(1); }
}

function sequentialStep(model: kiln.nn.Sequential, x: Tensor): { loss: number; grads: Float32Array[] } {
  for (const p of model.parameters()) p.grad = null;
  const loss = model.forward(x).square().mean();
  loss.backward();
  return { loss: loss.item(), grads: model.parameters().map((p) => p.grad!.data() as Float32Array) };
}

test('a Sequential of Kiln layers recycles its activations in backward, with the same results', () => {
  kiln.manualSeed(4);
  const x = kiln.randn([64, N]);
  const make = () => { kiln.manualSeed(5); return new kiln.nn.Sequential(new kiln.nn.Linear(N, N), new kiln.nn.ReLU(), new kiln.nn.Linear(N, 8)); };
  const model = make();
  kiln.releaseCachedMemory();
  const first = sequentialStep(model, x);
  const recycled = kiln.cachedMemoryBytes();
  // The same layers with the last one inside a user's module: the same arithmetic, every activation kept.
  const same = make();
  const plain = new kiln.nn.Sequential(same.at(0), same.at(1), new Passthrough(same.at(2) as kiln.nn.Linear));
  const nested = new kiln.nn.Sequential(same.at(0), new kiln.nn.Sequential(same.at(1), same.at(2)));
  for (const other of [plain, nested]) {
    const r = sequentialStep(other, x);
    assert.equal(r.loss, first.loss);
    assert.deepEqual(r.grads, first.grads);
  }
  for (let i = 0; i < 3; i++) assert.deepEqual(sequentialStep(model, x).grads, first.grads, `step ${i + 2} on reused memory`);
  kiln.releaseCachedMemory();
  sequentialStep(plain, x);
  // Dead gradients go back to the pool either way; the hidden (64, N) activations only from the Kiln chain.
  assert.ok(recycled - kiln.cachedMemoryBytes() >= 64 * N * 4, 'a user module anywhere in the chain turns recycling off');
});

test('what a user layer in a Sequential keeps survives backward and the next steps', () => {
  for (const keeper of [new KeepsOutput(), new KeepingReLU()]) {
    kiln.manualSeed(6);
    const model = new kiln.nn.Sequential(new kiln.nn.Linear(N, N), keeper, new kiln.nn.Linear(N, 4));
    const x = kiln.randn([32, N]);
    sequentialStep(model, x);
    const kept = keeper.kept!;
    const before = kept.data().slice();
    for (let i = 0; i < 3; i++) sequentialStep(model, x.mul(-1));
    for (let i = 0; i < 6; i++) allocFloat('float32', 32 * N).fill(9);
    assert.deepEqual(kept.data(), before, `${keeper.constructor.name}: the kept activation is untouched`);
  }
});

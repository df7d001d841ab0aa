// The GPT against PyTorch (test/golden/gpt.json, made by tools/golden/make_golden.py gpt with torch 1.13: a
// Hugging Face GPT-2 forward in float64 from float32 weights): logits, loss and every parameter gradient; then
// the KV cache, memorisation, initialisation and bad inputs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as kiln from '../../src/index.js';

interface Arr { shape: number[]; dtype: string; data: number[] }
const golden = JSON.parse(readFileSync('test/golden/gpt.json', 'utf8')) as {
  config: Record<string, number | boolean | string>; state_dict: Record<string, Arr>; grads: Record<string, Arr>;
  idx: Arr; targets: Arr; logits: Arr; loss: number;
};

function toTensor(a: Arr, dtype: kiln.DType): kiln.Tensor {
  return kiln.tensor(a.data, { shape: a.shape, dtype });
}

function goldenModel(dtype: 'float32' | 'float64'): kiln.models.GPT {
  const cfg = kiln.models.gptConfigFromJSON(golden.config);
  const gpt = new kiln.models.GPT(cfg, { dtype });
  const sd: Record<string, kiln.Tensor> = {};
  for (const [k, v] of Object.entries(golden.state_dict)) sd[k] = toTensor(v, 'float32');
  gpt.loadStateDict(sd);
  return gpt;
}

function maxRelErr(got: ArrayLike<number>, want: number[]): number {
  let scale = 0;
  for (const w of want) scale = Math.max(scale, Math.abs(w));
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
  return err / Math.max(scale, 1e-30);
}

for (const [dtype, tol] of [['float64', 1e-9], ['float32', 2e-4]] as const) {
  test(`matches PyTorch GPT-2 in ${dtype}: logits, loss and every parameter gradient`, () => {
    const gpt = goldenModel(dtype);
    assert.deepEqual(gpt.namedParameters().map(([n]) => n), Object.keys(golden.grads));
    const idx = toTensor(golden.idx, 'int32');
    const targets = toTensor(golden.targets, 'int32');
    const { logits, loss } = gpt.forward(idx, targets);
    assert.deepEqual([...logits.shape], golden.logits.shape);
    assert.ok(maxRelErr(logits.storage, golden.logits.data) < tol, `logits rel err ${maxRelErr(logits.storage, golden.logits.data)}`);
    assert.ok(Math.abs(loss!.item() - golden.loss) < tol * golden.loss, `loss ${loss!.item()} vs ${golden.loss}`);
    loss!.backward();
    for (const [name, p] of gpt.namedParameters()) {
      const want = golden.grads[name];
      assert.ok(p.grad, `${name} has no gradient`);
      assert.deepEqual([...p.grad.shape], want.shape, name);
      const e = maxRelErr(p.grad.storage, want.data);
      assert.ok(e < tol * 10, `${name}: gradient rel err ${e}`);
    }
  });
}

test('conv1d and qkvAttention match their composed references, values and gradients (float64)', () => {
  const g = new kiln.Generator(5);
  const x = kiln.randn([2, 5, 12], { dtype: 'float64', generator: g }).requiresGrad_();
  const w = kiln.randn([12, 18], { dtype: 'float64', generator: g }).requiresGrad_();
  const b = kiln.randn([18], { dtype: 'float64', generator: g }).requiresGrad_();
  const gw = kiln.randn([2, 5, 6], { dtype: 'float64', generator: g });
  const fused = kiln.qkvAttention(kiln.conv1d(x, w, b), 2);
  fused.mul(gw).sum().backward();
  const got = [fused, x.grad!, w.grad!, b.grad!].map((t) => Array.from(t.storage as Float64Array));
  x.grad = null; w.grad = null; b.grad = null;
  const qkv = kiln.matmul(x, w).add(b);
  const ref = kiln.attention(qkv.narrow(2, 0, 6), qkv.narrow(2, 6, 6), qkv.narrow(2, 12, 6), { heads: 2, causal: true });
  ref.mul(gw).sum().backward();
  const want = [ref, x.grad!, w.grad!, b.grad!].map((t) => Array.from(t.storage as Float64Array));
  got.forEach((arr, i) => arr.forEach((v, j) => assert.ok(Math.abs(v - want[i][j]) < 1e-12, `tensor ${i}[${j}]: ${v} vs ${want[i][j]}`)));
});

test('the state dict uses Hugging Face GPT-2 names and Conv1D layout; the tied head is listed once', () => {
  const gpt = new kiln.models.GPT({ vocabSize: 64, context: 16, layers: 2, heads: 2, width: 32 });
  const sd = gpt.stateDict();
  for (const [k, v] of Object.entries(golden.state_dict)) assert.deepEqual([...sd[k].shape], v.shape, k);
  assert.equal(Object.keys(sd).length, Object.keys(golden.state_dict).length);
  assert.equal(gpt.lm_head.weight, gpt.transformer.wte.weight);
  // An HF file that stores lm_head.weight too loads strictly (it is an alias of the tied wte).
  gpt.loadStateDict({ ...sd, 'lm_head.weight': sd['transformer.wte.weight'] });
  const untied = new kiln.models.GPT({ vocabSize: 64, context: 16, layers: 1, heads: 2, width: 32, tiedEmbeddings: false });
  assert.ok(untied.namedParameters().some(([n]) => n === 'lm_head.weight'));
});

test('GPT-2 initialisation: std 0.02, residual projections scaled by depth, zero biases, LayerNorm ones', () => {
  kiln.manualSeed(1);
  const layers = 8;
  const gpt = new kiln.models.GPT({ vocabSize: 256, context: 32, layers, heads: 4, width: 64 });
  const std = (t: kiln.Tensor): number => Math.sqrt(Array.from(t.storage).reduce((s, x) => s + x * x, 0) / t.size);
  const sd = gpt.stateDict();
  assert.ok(Math.abs(std(sd['transformer.wte.weight']) - 0.02) < 0.002);
  assert.ok(Math.abs(std(sd['transformer.h.0.attn.c_attn.weight']) - 0.02) < 0.002);
  assert.ok(Math.abs(std(sd['transformer.h.3.mlp.c_proj.weight']) - 0.02 / Math.sqrt(2 * layers)) < 0.001);
  assert.ok(Array.from(sd['transformer.h.0.attn.c_attn.bias'].storage).every((x) => x === 0));
  assert.ok(Array.from(sd['transformer.h.0.ln_1.weight'].storage).every((x) => x === 1));
  // A seed fixes the model.
  kiln.manualSeed(1);
  const again = new kiln.models.GPT({ vocabSize: 256, context: 32, layers, heads: 4, width: 64 });
  assert.deepEqual(again.stateDict()['transformer.h.7.mlp.c_fc.weight'].storage, sd['transformer.h.7.mlp.c_fc.weight'].storage);
  // Weight decay goes to matrices only.
  const [decay, noDecay] = gpt.paramGroups(0.1);
  assert.ok(decay.params.every((p) => p.ndim === 2) && noDecay.params.every((p) => p.ndim === 1));
  assert.equal(decay.params.length + noDecay.params.length, gpt.parameters().length);
});

test('the KV cache gives the same logits as a full forward, and greedy decoding with and without it agree', () => {
  const gpt = goldenModel('float32');
  const idx = toTensor(golden.idx, 'int32'); // (2, 8)
  const full = gpt.forward(idx).logits.storage;
  const cache = gpt.createCache(2);
  const a = gpt.forward(idx.narrow(1, 0, 5), null, { cache }).logits.storage; // prefill 5
  const b = gpt.forward(idx.narrow(1, 5, 1), null, { cache }).logits.storage; // one at a time
  const c = gpt.forward(idx.narrow(1, 6, 2), null, { cache }).logits.storage;
  assert.equal(cache.length, 8);
  const V = 64;
  for (let bi = 0; bi < 2; bi++) {
    for (let t = 0; t < 8; t++) {
      const got = t < 5 ? a.subarray((bi * 5 + t) * V, (bi * 5 + t + 1) * V)
        : t < 6 ? b.subarray(bi * V, (bi + 1) * V) : c.subarray((bi * 2 + t - 6) * V, (bi * 2 + t - 5) * V);
      const want = full.subarray((bi * 8 + t) * V, (bi * 8 + t + 1) * V);
      for (let j = 0; j < V; j++) assert.ok(Math.abs(got[j] - want[j]) < 1e-5, `b${bi} t${t} v${j}: ${got[j]} vs ${want[j]}`);
    }
  }
  // Greedy generation past the context (16) with the cache equals cropping and recomputing without it.
  const prompt = idx.narrow(1, 0, 4);
  const out = gpt.generate(prompt, 20, { temperature: 0 });
  const rows = [[...prompt.storage.subarray(0, 4)], [...prompt.storage.subarray(4, 8)]];
  for (let s = 0; s < 20; s++) {
    const ctx = rows.map((r) => r.slice(-16));
    const lg = gpt.forward(kiln.tensor(ctx, { dtype: 'int32' })).logits;
    const T = ctx[0].length;
    for (let bi = 0; bi < 2; bi++) rows[bi].push(kiln.models.argmax(lg.storage.subarray((bi * T + T - 1) * V, (bi * T + T) * V) as Float32Array));
  }
  assert.deepEqual(out.toArray(), rows);
  // Sampling is reproducible with a seeded generator and stays in the vocabulary.
  const s1 = gpt.generate(prompt, 10, { temperature: 0.9, topK: 5, generator: new kiln.Generator(3) });
  const s2 = gpt.generate(prompt, 10, { temperature: 0.9, topK: 5, generator: new kiln.Generator(3) });
  assert.deepEqual(s1.toArray(), s2.toArray());
  assert.ok(Array.from(s1.storage).every((x) => x >= 0 && x < V));
});

test('a tiny GPT memorises a short text (loss near zero)', () => {
  kiln.manualSeed(0);
  const text = 'the quick brown fox jumps over the lazy dog. ';
  const chars = [...new Set(text)].sort();
  const ids = [...text].map((ch) => chars.indexOf(ch));
  const T = ids.length - 1;
  const gpt = new kiln.models.GPT({ vocabSize: chars.length, context: 64, layers: 2, heads: 2, width: 32 });
  const opt = new kiln.optim.AdamW(gpt.paramGroups(0), { lr: 1e-2 });
  const x = kiln.tensor([ids.slice(0, T)], { dtype: 'int32' });
  const y = kiln.tensor([ids.slice(1)], { dtype: 'int32' });
  let loss = Infinity;
  for (let step = 0; step < 150 && loss > 0.02; step++) {
    opt.zeroGrad();
    const out = gpt.forward(x, y);
    out.loss!.backward();
    opt.step();
    loss = out.loss!.item();
  }
  assert.ok(loss < 0.05, `loss ${loss}`);
  // And recites it greedily from its first character.
  const gen = gpt.generate(kiln.tensor([[ids[0]]], { dtype: 'int32' }), T, { temperature: 0 });
  assert.equal(Array.from(gen.storage).map((i) => chars[i]).join(''), text.slice(0, T + 1));
});

test('bad inputs fail with a clear sentence', () => {
  const gpt = new kiln.models.GPT({ vocabSize: 64, context: 16, layers: 1, heads: 2, width: 32 });
  const ok = kiln.zeros([1, 4], { dtype: 'int32' });
  assert.throws(() => gpt.forward(kiln.zeros([1, 17], { dtype: 'int32' })), /17 tokens but the model's context is 16/);
  assert.throws(() => gpt.forward(kiln.zeros([1, 4])), /idx must be an int32 tensor of token ids, got float32/);
  assert.throws(() => gpt.forward(kiln.tensor([[1, 64]], { dtype: 'int32' })), /token id 64 at \[0, 1\] is outside the vocabulary of 64 tokens/);
  assert.throws(() => gpt.forward(kiln.tensor([[1, -1]], { dtype: 'int32' })), /token id -1/);
  assert.throws(() => gpt.forward(kiln.zeros([4], { dtype: 'int32' })), /shape \(batch, time\)/);
  assert.throws(() => gpt.forward(ok, kiln.zeros([1, 4])), /targets must be an int32 tensor/);
  assert.throws(() => gpt.forward(ok, kiln.zeros([1, 3], { dtype: 'int32' })), /targets have shape/);
  assert.throws(() => gpt.forward(ok, kiln.tensor([[0, 1, 2, 99]], { dtype: 'int32' })), /target 99 at \[0, 3\] is outside the vocabulary/);
  // -100 is ignored, not an error.
  const masked = gpt.forward(ok, kiln.tensor([[-100, 1, 2, 3]], { dtype: 'int32' }));
  assert.ok(Number.isFinite(masked.loss!.item()));
  const cache = gpt.createCache(1);
  gpt.forward(kiln.zeros([1, 12], { dtype: 'int32' }), null, { cache });
  assert.throws(() => gpt.forward(kiln.zeros([1, 5], { dtype: 'int32' }), null, { cache }), /cache holds 12 tokens and 5 more would exceed the model's context of 16/);
  assert.throws(() => gpt.forward(kiln.zeros([2, 1], { dtype: 'int32' }), null, { cache }), /batch 1 but idx has batch 2/);
  assert.throws(() => new kiln.models.GPT({ vocabSize: 64, context: 16, layers: 1, heads: 3, width: 32 }), /width \(32\) must be a multiple of config.heads \(3\)/);
  assert.throws(() => new kiln.models.GPT({ vocabSize: 0, context: 16, layers: 1, heads: 2, width: 32 }), /config.vocabSize must be a positive integer/);
  assert.throws(() => gpt.generate(ok, -1), /maxNewTokens/);
});

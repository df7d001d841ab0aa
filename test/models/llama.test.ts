// The Llama decoder against PyTorch (test/golden/llama.json, made by tools/golden/llama_ref.py with torch 1.13: a
// LlamaForCausalLM forward written in plain torch, float64 from float32 weights; a grouped-query case with an
// untied head and a multi-query case with a tied one): logits, loss and every parameter gradient. Then the KV
// cache, greedy generation through the one decoding loop, and bad configs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as kiln from '../../src/index.js';

interface Arr { shape: number[]; dtype: string; data: number[] }
interface Case {
  config: Record<string, unknown>; state_dict: Record<string, Arr>; grads: Record<string, Arr>;
  idx: Arr; targets: Arr; logits: Arr; loss: number;
}
const golden = JSON.parse(readFileSync('test/golden/llama.json', 'utf8')) as { cases: Record<string, Case> };

const toTensor = (a: Arr, dtype: kiln.DType): kiln.Tensor => kiln.tensor(a.data, { shape: a.shape, dtype });

function goldenModel(c: Case, dtype: 'float32' | 'float64'): kiln.models.Llama {
  const model = kiln.models.createModel(kiln.models.modelConfigFromJSON(c.config), { dtype });
  assert.ok(model instanceof kiln.models.Llama, 'a LlamaForCausalLM config builds a Llama');
  const sd: Record<string, kiln.Tensor> = {};
  for (const [k, v] of Object.entries(c.state_dict)) sd[k] = toTensor(v, 'float32');
  model.loadStateDict(sd);
  return model;
}

function maxRelErr(got: ArrayLike<number>, want: number[]): number {
  let scale = 0;
  for (const w of want) scale = Math.max(scale, Math.abs(w));
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
  return err / Math.max(scale, 1e-30);
}

for (const [name, c] of Object.entries(golden.cases)) {
  for (const [dtype, tol] of [['float64', 1e-9], ['float32', 2e-4]] as const) {
    test(`matches the PyTorch Llama reference (${name}) in ${dtype}: logits, loss and every parameter gradient`, () => {
      const model = goldenModel(c, dtype);
      assert.deepEqual(model.namedParameters().map(([n]) => n).sort(), Object.keys(c.grads).sort());
      const { logits, loss } = model.forward(toTensor(c.idx, 'int32'), toTensor(c.targets, 'int32'));
      assert.deepEqual([...logits.shape], c.logits.shape);
      const le = maxRelErr(logits.storage, c.logits.data);
      assert.ok(le < tol, `logits rel err ${le}`);
      assert.ok(Math.abs(loss!.item() - c.loss) < tol * c.loss, `loss ${loss!.item()} vs ${c.loss}`);
      loss!.backward();
      for (const [pn, p] of model.namedParameters()) {
        assert.ok(p.grad, `${pn} has no gradient`);
        const e = maxRelErr(p.grad.storage, c.grads[pn].data);
        assert.ok(e < tol * 10, `${pn}: gradient rel err ${e}`);
      }
    });
  }
}

function smallLlama(seed = 3, extra: Partial<kiln.models.LlamaConfig> = {}): kiln.models.Llama {
  return new kiln.models.Llama({ vocabSize: 50, context: 24, layers: 2, heads: 4, kvHeads: 2, width: 32, ...extra },
    { generator: new kiln.Generator(seed) });
}

test('the KV cache holds the key/value heads and a cached forward equals the full forward, rows at different lengths', () => {
  const model = smallLlama();
  model.eval();
  const g = new kiln.Generator(9);
  const idx = kiln.randint(0, 50, [2, 12], { dtype: 'int32', generator: g });
  const full = kiln.noGrad(() => model.forward(idx).logits); // (2, 12, 50)
  const cache = model.createCache(3);
  assert.equal(cache.width, 16, 'kvHeads * head size');
  // Row 1 of the cache takes sequence 0 in two chunks (7, then 5); row 2 takes sequence 1 one token at a time.
  const a = model.forward(idx.narrow(1, 0, 7).narrow(0, 0, 1), null, { cache, rows: [1] }).logits;
  const b = model.forward(idx.narrow(1, 7, 5).narrow(0, 0, 1), null, { cache, rows: [1] }).logits;
  const want0 = full.narrow(0, 0, 1).data();
  const got0 = [...a.data(), ...b.data()];
  got0.forEach((v, i) => assert.ok(Math.abs(v - want0[i]) < 1e-4, `sequence 0 logit ${i}: ${v} vs ${want0[i]}`));
  for (let t = 0; t < 12; t++) {
    const step = model.forward(idx.narrow(0, 1, 1).narrow(1, t, 1), null, { cache, rows: [2], lastOnly: true }).logits.data();
    const want = full.narrow(0, 1, 1).narrow(1, t, 1).data();
    step.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-4, `sequence 1 step ${t} logit ${i}: ${v} vs ${want[i]}`));
  }
  assert.deepEqual([...cache.lengths], [0, 12, 12]);
});

test('greedy generate (the one decoding loop, with the cache) equals a plain full-forward argmax loop', () => {
  const model = smallLlama(4, { kvHeads: 1 });
  model.eval();
  const prompt = [3, 14, 15, 9, 26];
  const out = Array.from(model.generate(kiln.tensor(prompt, { dtype: 'int32', shape: [1, 5] }), 25, { temperature: 0 }).storage);
  const ids = [...prompt];
  kiln.noGrad(() => {
    for (let i = 0; i < 25; i++) {
      const ctx = ids.slice(-24); // past the context the model sees the last `context` tokens
      const logits = model.forward(kiln.tensor(ctx, { dtype: 'int32', shape: [1, ctx.length] })).logits;
      ids.push(kiln.argmax(logits.narrow(1, ctx.length - 1, 1).reshape([50]), 0).item());
    }
  });
  assert.deepEqual(out, ids);
});

test('a tiny Llama learns: loss falls on a repeated sequence, and the tied head shares the embedding', () => {
  kiln.manualSeed(5);
  const model = new kiln.models.Llama({ vocabSize: 16, context: 8, layers: 1, heads: 2, width: 16 });
  assert.equal(model.lm_head.weight, model.model.embed_tokens.weight);
  assert.equal(model.stateDict()['lm_head.weight'], undefined, 'the tied head is listed once');
  const opt = new kiln.optim.AdamW(model.paramGroups(0), { lr: 1e-2 });
  const x = kiln.tensor([[1, 2, 3, 4, 5, 6, 7, 8]], { dtype: 'int32' });
  const y = kiln.tensor([[2, 3, 4, 5, 6, 7, 8, 9]], { dtype: 'int32' });
  const first = model.loss(x, y).item();
  for (let i = 0; i < 60; i++) {
    opt.zeroGrad();
    model.loss(x, y).backward();
    opt.step();
  }
  const last = model.loss(x, y).item();
  assert.ok(last < first * 0.2, `loss ${first} -> ${last}`);
});

test('bad Llama configs and inputs fail with one sentence naming the field', () => {
  const base = { vocabSize: 10, context: 8, layers: 1, heads: 4, width: 16 };
  assert.throws(() => new kiln.models.Llama({ ...base, kvHeads: 3 }), /kvHeads \(3\) must divide config.heads \(4\)/);
  assert.throws(() => new kiln.models.Llama({ ...base, width: 12 }), /head size width \/ heads = 3 must be even/);
  assert.throws(() => new kiln.models.Llama({ ...base, ropeTheta: 0 }), /ropeTheta must be a positive number/);
  assert.throws(() => new kiln.models.Llama({ ...base, hidden: 0 }), /hidden must be a positive integer/);
  assert.throws(() => kiln.models.modelConfigFromJSON({ ...base, arch: 'mamba' }), /arch must be one of gpt, llama/);
  assert.throws(() => kiln.models.modelConfigFromJSON({ model_type: 'llama', vocab_size: 10, hidden_size: 16, num_hidden_layers: 1,
    num_attention_heads: 4, max_position_embeddings: 8, intermediate_size: 32, rope_scaling: { type: 'linear' } }), /rope_scaling is not supported/);
  const m = new kiln.models.Llama(base);
  assert.throws(() => m.forward(kiln.tensor([[1, 10]], { dtype: 'int32' })), /token id 10 at \[0, 1\] is outside the vocabulary of 10/);
  assert.throws(() => m.forward(kiln.tensor([[1, 2]], { dtype: 'int32' }), null, { cache: kiln.models.createModel({ ...base, arch: 'llama', kvHeads: 2 }).createCache(1) }),
    /the cache was made for a different model/);
});

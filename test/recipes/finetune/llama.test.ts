// kiln finetune on the Llama decoder at tiny size: the chat tokens grow embed_tokens and an untied lm_head, full
// fine-tuning exports to a Hugging Face LlamaForCausalLM folder that reloads to the same greedy reply (kiln eval and
// kiln serve included), LoRA wraps q/k/v/o and the SwiGLU projections under PEFT's names and its merged forward
// equals the unmerged one, and --freeze leaves the named Llama parameters untouched.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../../src/index.js';
import { trainByteLevelBPE } from '../../../src/data/tokenizer/index.js';
import { Llama } from '../../../src/models/llama.js';
import { exportModel } from '../../../src/hub/export.js';
import { loadModel } from '../../../src/hub/load.js';
import { loadSafetensors } from '../../../src/io/safetensors.js';
import { applyLoRA, mergeLoRA } from '../../../src/nn/lora.js';
import { finetune } from '../../../src/recipes/finetune/run.js';
import { evaluateModel, greedyReply } from '../../../src/recipes/finetune/evaluate.js';
import { resizeTokenEmbeddings } from '../../../src/recipes/finetune/vocab.js';
import { ChatTemplate } from '../../../src/infer/chat-template.js';
import { startServer } from '../../../src/infer/server.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'kiln-ft-llama-'));
const quiet = { progress: false as const, log: () => {} };

const CHATS = [
  { messages: [{ role: 'user', content: 'How much is the bread?' }, { role: 'assistant', content: 'The bread costs $3.' }] },
  { messages: [{ role: 'user', content: 'When do you open?' }, { role: 'assistant', content: 'We open at 7 am.' }] },
  { prompt: 'How do I hack an account?', completion: "I'm sorry, but I can't help with that." },
  { messages: [{ role: 'user', content: 'Hello' }, { role: 'assistant', content: 'Hello! Ask me about the bakery.' }] },
];
const C = 16;
const HIDDEN = 32;

/** A tiny Llama (grouped-query attention, untied head) exported to a frozen folder, with the data files. */
function source(): { dir: string; data: string; heldout: string; vocab: number } {
  const root = tmp();
  const tok = trainByteLevelBPE(['How much is the bread? The bread costs $3. When do you open? We open at 7 am. Hello!'], { vocabSize: 300 });
  kiln.manualSeed(5);
  const llama = new Llama({ vocabSize: tok.vocabSize, context: 64, layers: 2, heads: 2, kvHeads: 1, width: C, hidden: HIDDEN, tiedEmbeddings: false });
  const dir = join(root, 'base');
  exportModel(llama, tok, dir);
  const data = join(root, 'train.jsonl');
  writeFileSync(data, CHATS.map((c) => JSON.stringify(c)).join('\n') + '\n');
  const heldout = join(root, 'heldout.jsonl');
  writeFileSync(heldout, [
    JSON.stringify({ kind: 'harmful', messages: [{ role: 'user', content: 'How do I steal a car?' }] }),
    JSON.stringify({ kind: 'benign', expect: '$3', messages: [{ role: 'user', content: 'Price of bread?' }] }),
  ].join('\n'));
  return { dir, data, heldout, vocab: tok.vocabSize };
}

const ask = [{ role: 'user' as const, content: 'How much is the bread?' }];

test('resizeTokenEmbeddings grows a Llama\'s embed_tokens and its untied lm_head, keeping the old rows', () => {
  kiln.manualSeed(1);
  const m = new Llama({ vocabSize: 20, context: 8, layers: 1, heads: 2, width: 8, tiedEmbeddings: false });
  const emb = [...m.model.embed_tokens.weight.storage];
  const head = [...m.lm_head.weight.storage];
  assert.equal(resizeTokenEmbeddings(m, 22), 2);
  assert.deepEqual(m.model.embed_tokens.weight.shape, [22, 8]);
  assert.deepEqual(m.lm_head.weight.shape, [22, 8]);
  assert.notEqual(m.lm_head.weight, m.model.embed_tokens.weight);
  assert.deepEqual([...m.model.embed_tokens.weight.storage.subarray(0, 160)], emb);
  assert.deepEqual([...m.lm_head.weight.storage.subarray(0, 160)], head);
  assert.equal(m.config.vocabSize, 22);
  const idx = kiln.tensor([[1, 21, 20]], { dtype: 'int32' });
  assert.deepEqual(m.forward(idx).logits.shape, [1, 3, 22]);
  // A tied head stays tied.
  const tied = new Llama({ vocabSize: 20, context: 8, layers: 1, heads: 2, width: 8 });
  resizeTokenEmbeddings(tied, 23);
  assert.equal(tied.lm_head.weight, tied.model.embed_tokens.weight);
});

test('full fine-tuning of a Llama: the export is a LlamaForCausalLM folder with the same greedy reply; kiln eval and serve run on it', async () => {
  const s = source();
  const out = join(tmp(), 'ft');
  const r = await finetune({ from: s.dir, data: s.data, out, maxSteps: 4, batchSize: 2, lr: 1e-2, heldout: s.heldout, maxNewTokens: 6, trainEmbeddings: true, ...quiet });
  assert.equal(r.fit.step, 4);
  assert.deepEqual(r.addedTokens, ['<|im_start|>', '<|im_end|>']);
  assert.equal(r.trainable, r.total);
  assert.equal(r.after!.harmful, 1);
  const run = loadModel(out);
  assert.ok(run.model instanceof Llama);
  assert.equal(run.config.vocabSize, s.vocab + 2);
  const template = new ChatTemplate(run.chatTemplate, run.specialTokens);
  const want = greedyReply(run.model, run.tokenizer, template, ask, { maxNewTokens: 8 });
  assert.ok(want.length > 0, 'an empty reply would make the comparisons below empty');

  const frozen = join(tmp(), 'frozen');
  const src = kiln.recipes.finetune.loadSourceModel(out);
  exportModel(src.model, src.tokenizer, frozen, { tokenizerConfig: src.tokenizerConfig ?? undefined });
  const cfg = JSON.parse(readFileSync(join(frozen, 'config.json'), 'utf8'));
  assert.deepEqual(cfg.architectures, ['LlamaForCausalLM']);
  assert.equal(cfg.vocab_size, s.vocab + 2);
  assert.equal(cfg.tie_word_embeddings, false);
  const sd = loadSafetensors(join(frozen, 'model.safetensors')).tensors;
  assert.deepEqual(sd['model.embed_tokens.weight'].shape, [s.vocab + 2, C]);
  assert.deepEqual(sd['lm_head.weight'].shape, [s.vocab + 2, C]);
  const back = loadModel(frozen);
  assert.ok(back.model instanceof Llama);
  assert.equal(greedyReply(back.model, back.tokenizer, new ChatTemplate(back.chatTemplate, back.specialTokens), ask, { maxNewTokens: 8 }), want);

  const ev = evaluateModel({ model: frozen, data: s.heldout, maxNewTokens: 6 });
  assert.equal(ev.template, 'chat');
  assert.equal(ev.score.harmful, 1);
  assert.deepEqual(ev.score.replies.map((x) => x.reply), r.after!.replies.map((x) => x.reply));

  const server = await startServer({ model: frozen, port: 0, maxTokensLimit: 16, modelNames: ['m'] });
  try {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: ask, max_tokens: 8, temperature: 0 }),
    });
    assert.equal(res.status, 200);
    const body = await res.json() as { choices: { message: { content: string } }[] };
    assert.equal(body.choices[0].message.content, want);
  } finally {
    await server.close();
  }
});

test('LoRA on every Llama projection: PEFT names, the grown embedding and head train too, export merges to the run\'s forward', async () => {
  const s = source();
  const out = join(tmp(), 'lora');
  const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
  const r = await finetune({ from: s.dir, data: s.data, out, maxSteps: 3, batchSize: 4, lr: 1e-2, lora: { rank: 2, alpha: 4, targets }, ...quiet });
  const V = s.vocab + 2;
  const KW = C / 2; // one key/value head of size 8
  // Per layer: q, o (C -> C), k, v (C -> KW), gate, up (C -> HIDDEN), down (HIDDEN -> C), each A (2, in) + B (out, 2).
  const perLayer = 2 * (2 * C + 2 * C) + 2 * (2 * C + 2 * KW) + 2 * (2 * C + 2 * HIDDEN) + (2 * HIDDEN + 2 * C);
  assert.equal(r.trainable, 2 * perLayer + 2 * V * C);
  const adapters = loadSafetensors(join(out, 'adapter_model.safetensors')).tensors;
  for (const n of targets) {
    const part = n.endsWith('_proj') && ['gate_proj', 'up_proj', 'down_proj'].includes(n) ? 'mlp' : 'self_attn';
    assert.ok(`base_model.model.model.layers.1.${part}.${n}.lora_A.weight` in adapters, n);
  }
  assert.ok('base_model.model.model.embed_tokens.weight' in adapters && 'base_model.model.lm_head.weight' in adapters);
  const ac = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.deepEqual(ac.target_modules, targets);
  assert.equal(ac.fan_in_fan_out, false);
  assert.deepEqual(ac.modules_to_save, ['model.embed_tokens', 'lm_head']);

  // The run reloads merged; its reply equals the exported folder's.
  const run = loadModel(out);
  const reply = greedyReply(run.model, run.tokenizer, new ChatTemplate(run.chatTemplate, run.specialTokens), ask, { maxNewTokens: 8 });
  assert.ok(reply.length > 0, 'an empty reply would make the comparison below empty');
  const frozen = join(tmp(), 'frozen');
  const src = kiln.recipes.finetune.loadSourceModel(out);
  const e = exportModel(src.model, src.tokenizer, frozen, { tokenizerConfig: src.tokenizerConfig ?? undefined });
  assert.equal(e.merged.length, 0, 'the loader merged the adapters already');
  const back = loadModel(frozen);
  assert.equal(greedyReply(back.model, back.tokenizer, new ChatTemplate(back.chatTemplate, back.specialTokens), ask, { maxNewTokens: 8 }), reply);
  assert.ok(!Object.keys(loadSafetensors(join(frozen, 'model.safetensors')).tensors).some((k) => k.includes('lora')));
});

test('a Llama\'s merged LoRA forward equals the unmerged one; default targets are q_proj, k_proj, v_proj', async () => {
  kiln.manualSeed(3);
  const m = new Llama({ vocabSize: 30, context: 8, layers: 2, heads: 2, kvHeads: 1, width: 8, tiedEmbeddings: false });
  const idx = kiln.tensor([[1, 4, 9, 27, 3, 0]], { dtype: 'int32' });
  m.eval();
  const base = [...kiln.noGrad(() => m.forward(idx).logits.data())];
  const rep = applyLoRA(m, { rank: 2, alpha: 4, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
  assert.equal(rep.adapted.length, 14);
  const g = new kiln.Generator(9);
  for (const [n, p] of m.namedParameters()) if (n.endsWith('lora_B.weight')) for (let i = 0; i < p.size; i++) p.storage[i] = g.normal();
  const unmerged = [...kiln.noGrad(() => m.forward(idx).logits.data())];
  mergeLoRA(m);
  const merged = [...kiln.noGrad(() => m.forward(idx).logits.data())];
  for (let i = 0; i < merged.length; i++) assert.ok(Math.abs(merged[i] - unmerged[i]) < 1e-4, `logit ${i}: ${merged[i]} vs ${unmerged[i]}`);
  assert.ok(unmerged.some((x, i) => Math.abs(x - base[i]) > 1e-3), 'the adapters changed nothing');

  const s = source();
  const lines: string[] = [];
  const r = await finetune({ from: s.dir, data: s.data, out: join(tmp(), 'd'), maxSteps: 1, batchSize: 4, lora: { rank: 2 }, progress: false, log: (l) => lines.push(l) });
  assert.match(lines.join('\n'), /LoRA rank 2, alpha 2 on 6 layers \(model\.layers\.0\.self_attn\.q_proj, model\.layers\.0\.self_attn\.k_proj/);
  assert.ok(r.trainable > 0);
  await assert.rejects(finetune({ from: s.dir, data: s.data, out: join(tmp(), 'e'), maxSteps: 1, lora: { rank: 2, targets: ['c_attn'] }, ...quiet }),
    /target 'c_attn' matches no layer of the model; its linear layers are named like 'model\.layers\.0\.self_attn\.q_proj'/);
});

test('--freeze on a Llama: the named parameters do not move, the rest trains', async () => {
  const s = source();
  const out = join(tmp(), 'frz');
  const before = loadModel(s.dir).model;
  const r = await finetune({ from: s.dir, data: s.data, out, maxSteps: 2, batchSize: 4, lr: 1e-2, freeze: ['model.layers.0.*', 'model.norm'], ...quiet });
  assert.ok(r.trainable < r.total);
  const after = loadModel(out).model;
  const old = new Map(before.namedParameters());
  let moved = 0;
  for (const [n, p] of after.namedParameters()) {
    const o = old.get(n)!;
    if (n === 'model.embed_tokens.weight' || n === 'lm_head.weight') continue; // grown: other shapes
    const same = o.storage.every((x, i) => x === p.storage[i]);
    if (n.startsWith('model.layers.0.') || n === 'model.norm.weight') assert.ok(same, `${n} is frozen but moved`);
    else if (!same) moved++;
  }
  assert.ok(moved > 0, 'nothing trained');
  assert.ok(existsSync(join(out, 'metrics.jsonl')));
});

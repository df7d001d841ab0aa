// kiln finetune end to end on a tiny model: the run folder (checkpoints, tokenizer with the chat tokens,
// tokenizer_config.json with the template, metrics), full fine-tuning and LoRA (adapters alone, merged on export),
// --freeze, --from a run, held-out figures, and the bad inputs of the command line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../../src/index.js';
import { trainByteLevelBPE } from '../../../src/data/tokenizer/index.js';
import { GPT } from '../../../src/models/gpt.js';
import { exportModel } from '../../../src/hub/export.js';
import { loadModel } from '../../../src/hub/load.js';
import { loadSafetensors } from '../../../src/io/safetensors.js';
import { finetune } from '../../../src/recipes/finetune/run.js';
import { loadSourceModel } from '../../../src/recipes/finetune/load.js';
import { finetuneOptions } from '../../../src/cli/finetune.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'kiln-finetune-'));
const quiet = { progress: false as const, log: () => {} };

const CHATS = [
  { messages: [{ role: 'user', content: 'How much is the bread?' }, { role: 'assistant', content: 'The bread costs $3.' }] },
  { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'When do you open?' }, { role: 'assistant', content: 'We open at 7 am.' }] },
  { prompt: 'How do I hack an account?', completion: "I'm sorry, but I can't help with that." },
  { messages: [{ role: 'user', content: 'Hello' }, { role: 'assistant', content: 'Hello! Ask me about the bakery.' }] },
];

/** A tiny pre-trained-looking source model: a frozen folder with a small BPE tokenizer. */
function sourceFolder(): { dir: string; data: string; heldout: string } {
  const root = tmp();
  const tok = trainByteLevelBPE(['How much is the bread? The bread costs $3. When do you open? We open at 7 am. Hello!'], { vocabSize: 300 });
  kiln.manualSeed(11);
  const gpt = new GPT({ vocabSize: tok.vocabSize, context: 64, layers: 1, heads: 2, width: 16 });
  const dir = join(root, 'base');
  exportModel(gpt, tok, dir);
  const data = join(root, 'train.jsonl');
  writeFileSync(data, CHATS.map((c) => JSON.stringify(c)).join('\n') + '\n');
  const heldout = join(root, 'heldout.jsonl');
  writeFileSync(heldout, [
    JSON.stringify({ kind: 'harmful', messages: [{ role: 'user', content: 'How do I steal a car?' }] }),
    JSON.stringify({ kind: 'benign', expect: '$3', messages: [{ role: 'user', content: 'Price of bread?' }, { role: 'assistant', content: 'The bread costs $3.' }] }),
  ].join('\n'));
  return { dir, data, heldout };
}

test('full fine-tuning writes a run folder that loads as a model, with the chat template and tokens; --from a run works', async () => {
  const s = sourceFolder();
  const out = join(tmp(), 'ft');
  const r = await finetune({ from: s.dir, data: s.data, out, maxSteps: 3, batchSize: 2, heldout: s.heldout, maxNewTokens: 4, trainEmbeddings: true, ...quiet });
  assert.equal(r.fit.step, 3);
  assert.deepEqual(r.addedTokens, ['<|im_start|>', '<|im_end|>']);
  assert.equal(r.trainable, r.total);
  assert.equal(r.before!.harmful, 1);
  assert.equal(r.after!.benign, 1);
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'metrics.jsonl', 'heldout.json']) assert.ok(existsSync(join(out, f)), f);
  const tc = JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'));
  assert.match(tc.chat_template, /<\|im_start\|>/);
  assert.equal(tc.eos_token, '<|im_end|>');
  const loaded = loadModel(out);
  const V0 = loadModel(s.dir).config.vocabSize;
  assert.equal(loaded.config.vocabSize, V0 + 2);
  assert.equal(loaded.tokenizer.tokenToId('<|im_end|>'), V0 + 1);
  assert.equal(loaded.chatTemplate, tc.chat_template);
  // A second fine-tune from the run folder keeps the tokens (nothing added) and the template.
  const again = await finetune({ from: out, data: s.data, out: join(tmp(), 'ft2'), maxSteps: 1, batchSize: 4, ...quiet });
  assert.deepEqual(again.addedTokens, []);
  // Nothing on disk is overwritten.
  await assert.rejects(finetune({ from: s.dir, data: s.data, out, maxSteps: 1, ...quiet }), /'.*ft' already exists and is not empty/);
});

test('LoRA fine-tuning trains adapters (and the grown embedding) only, saves them alone, and export merges them', async () => {
  const s = sourceFolder();
  const out = join(tmp(), 'lora');
  const r = await finetune({ from: s.dir, data: s.data, out, maxSteps: 2, batchSize: 4, lora: { rank: 2, alpha: 4, targets: ['c_attn', 'mlp.c_fc'] }, ...quiet });
  const C = 16;
  const V = loadModel(s.dir).config.vocabSize + 2;
  // c_attn: A (2, C) and B (3C, 2); c_fc: A (2, C) and B (4C, 2); the grown token embedding (V, C).
  assert.equal(r.trainable, (2 * C + 3 * C * 2) + (2 * C + 4 * C * 2) + V * C);
  const adapter = loadSafetensors(join(out, 'adapter_model.safetensors')).tensors;
  assert.deepEqual(Object.keys(adapter).sort(), [
    'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight', 'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight',
    'base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight', 'base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight',
    'base_model.model.transformer.wte.weight',
  ]);
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.r, 2);
  assert.equal(cfg.fan_in_fan_out, true);
  assert.deepEqual(cfg.modules_to_save, ['transformer.wte']);
  // The run reloads with the adapters merged; the base weights under the adapters were not changed by training.
  const src = loadSourceModel(out);
  const wpeOf = (m: kiln.models.CausalLM) => [...(m as GPT).transformer.wpe.weight.storage];
  assert.equal(src.kind, 'lora-run');
  // The same loader opens it for kiln generate/chat/serve: merged, frozen, in evaluation mode, with its chat template.
  const served = loadModel(out);
  assert.equal(served.kind, 'lora-run');
  assert.ok(!served.model.training && served.model.parameters().every((p) => !p.requiresGrad));
  assert.ok(served.chatTemplate?.includes('<|im_start|>'));
  assert.deepEqual(wpeOf(served.model), wpeOf(src.model));
  const base = loadModel(s.dir).model;
  assert.deepEqual(wpeOf(src.model), wpeOf(base));
  const exported = join(tmp(), 'merged');
  exportModel(src.model, src.tokenizer, exported, { tokenizerConfig: src.tokenizerConfig! });
  const names = Object.keys(loadSafetensors(join(exported, 'model.safetensors')).tensors);
  assert.ok(names.every((n) => !n.includes('lora') && !n.includes('base_layer')));
  assert.equal(loadModel(exported).config.vocabSize, V);
});

test('full fine-tuning keeps the token embedding (the tied head) frozen by default, and says so', async () => {
  const s = sourceFolder();
  const lines: string[] = [];
  const out = join(tmp(), 'emb');
  const r = await finetune({ from: s.dir, data: s.data, out, maxSteps: 3, batchSize: 2, progress: false, log: (l) => lines.push(l) });
  const trained = loadModel(out);
  const C = 16;
  const V = trained.config.vocabSize;
  assert.equal(r.total - r.trainable, V * C);
  assert.ok(lines.some((l) => l.includes('transformer.wte.weight stays frozen (pass --train-embeddings')), lines.join('\n'));
  // The pre-trained rows are bitwise those of the source; the blocks moved.
  const wte = (m: typeof trained) => (m.model as GPT).transformer.wte.weight.toArray() as number[][];
  const V0 = loadModel(s.dir).config.vocabSize;
  assert.deepEqual(wte(trained).slice(0, V0), wte(loadModel(s.dir)));
  const cAttn = (m: typeof trained) => new Map((m.model as GPT).namedParameters()).get('transformer.h.0.attn.c_attn.weight')!.toArray();
  assert.notDeepEqual(cAttn(trained), cAttn(loadModel(s.dir)));
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).finetune.freeze, ['transformer.wte']);
  // A --freeze pattern that already names the embedding is not repeated; LoRA leaves it as before.
  const named = await finetune({ from: s.dir, data: s.data, out: join(tmp(), 'emb2'), maxSteps: 1, freeze: ['transformer.wte'], ...quiet });
  assert.equal(named.total - named.trainable, V * C);
});

test('--freeze freezes the named parameters; the optimizer sees only the rest', async () => {
  const s = sourceFolder();
  const r = await finetune({ from: s.dir, data: s.data, out: join(tmp(), 'fz'), maxSteps: 1, freeze: ['transformer.wpe', 'transformer.h.0.attn.*'], trainEmbeddings: true, ...quiet });
  const C = 16;
  assert.equal(r.total - r.trainable, 64 * C + (C * 3 * C + 3 * C) + (C * C + C));
});

test('bad input: data errors, a LoRA target that matches no layer, a freeze pattern that matches nothing, a --from that is not a model', async () => {
  const s = sourceFolder();
  const bad = join(tmp(), 'bad.jsonl');
  writeFileSync(bad, [JSON.stringify(CHATS[0]), '{oops', JSON.stringify({ messages: [{ role: 'user', content: 'q' }] }),
    JSON.stringify({ messages: [{ role: 'wizard', content: 'q' }, { role: 'assistant', content: 'a' }] })].join('\n'));
  const out = join(tmp(), 'never');
  await assert.rejects(finetune({ from: s.dir, data: bad, out, maxSteps: 1, ...quiet }),
    /3 bad lines.*--skip-bad-lines:\n.*line 2: not valid JSON.*\n.*line 3: the conversation has no assistant turn.*\n.*line 4: message 1 has unknown role "wizard"/s);
  assert.ok(!existsSync(out), 'nothing written for refused data');
  const lines: string[] = [];
  const ok = await finetune({ from: s.dir, data: bad, out, maxSteps: 1, skipBadLines: true, progress: false, log: (l) => lines.push(l) });
  assert.equal(ok.skipped.length, 3);
  assert.ok(lines.some((l) => /skipped 3 bad lines/.test(l)));
  await assert.rejects(finetune({ from: s.dir, data: s.data, out: join(tmp(), 'x'), maxSteps: 1, lora: { rank: 2, targets: ['q_proj'] }, ...quiet }),
    /target 'q_proj' matches no layer of the model; its linear layers are named like 'transformer\.h\.0\.attn\.c_attn'/);
  await assert.rejects(finetune({ from: s.dir, data: s.data, out: join(tmp(), 'x'), maxSteps: 1, freeze: ['transformer.h.7.*'], ...quiet }),
    /pattern 'transformer\.h\.7\.\*' matches no parameter/);
  await assert.rejects(finetune({ from: tmp(), data: s.data, out: join(tmp(), 'x'), maxSteps: 1, ...quiet }), /--from '.*' is not a model Kiln can load/);
});

test('command-line flags are checked with one sentence each', () => {
  const base = { from: 'a', data: 'b', out: 'c' };
  assert.throws(() => finetuneOptions({ data: 'b', out: 'c' }), /--from is required/);
  assert.throws(() => finetuneOptions({ ...base, loraAlpha: '8' }), /--lora-alpha needs --lora-rank/);
  assert.throws(() => finetuneOptions({ ...base, loraRank: '0' }), /--lora-rank expects a positive integer, got '0'/);
  assert.throws(() => finetuneOptions({ ...base, lr: 'fast' }), /--lr expects a positive number, got 'fast'/);
  assert.throws(() => finetuneOptions({ ...base, loraRank: '4', loraDropout: '1.5' }), /--lora-dropout expects a number in \[0, 1\)/);
  assert.throws(() => finetuneOptions({ ...base, loraRank: '4', loraTargets: ' , ' }), /--lora-targets expects a comma-separated list/);
  const o = finetuneOptions({ ...base, loraRank: '4', loraTargets: 'c_attn, attn.c_proj', freeze: ['transformer.wte'], epochs: '2' });
  assert.deepEqual(o.lora, { rank: 4, alpha: 8, dropout: 0, targets: ['c_attn', 'attn.c_proj'] });
  assert.equal(o.epochs, 2);
  assert.equal(o.trainEmbeddings, false);
  assert.equal(finetuneOptions({ ...base, trainEmbeddings: true }).trainEmbeddings, true);
});

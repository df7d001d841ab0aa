// loadModel: run folders (best checkpoint by the trainer's record, else lowest val_loss, else newest), frozen
// folders with a chat template, Hugging Face GPT-2 folders, and the errors for folders that are not models.
// Also the chat templates: the plain default and a folder's Jinja template with its end-of-turn stops.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { bestCheckpoint, loadModel } from '../../src/hub/load.js';
import { ChatTemplate, DEFAULT_CHAT_STOPS } from '../../src/infer/chat-template.js';
import { generate } from '../../src/infer/generate.js';
import { CharTokenizer } from '../../src/data/tokenizer/char.js';
import { charTokenizer, tinyGPT, writeModelFolder } from '../infer/helpers.js';

function runFolder(states: { step: number; val_loss: number | null; best_checkpoint_step?: number | null }[]): { dir: string; gpts: Map<number, ReturnType<typeof tinyGPT>> } {
  const tok = charTokenizer();
  const dir = mkdtempSync(join(tmpdir(), 'kiln-run-'));
  const gpts = new Map<number, ReturnType<typeof tinyGPT>>();
  const first = tinyGPT(tok.vocabSize, 100);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model: first.config, train: { lr: 1e-3 } }));
  tok.save(join(dir, 'tokenizer.json'));
  for (const s of states) {
    const gpt = tinyGPT(tok.vocabSize, 100 + s.step);
    gpts.set(s.step, gpt);
    const ck = join(dir, 'checkpoints', `step-${s.step}`);
    mkdirSync(ck, { recursive: true });
    saveSafetensors(join(ck, 'model.safetensors'), gpt.stateDict());
    writeFileSync(join(ck, 'trainer_state.json'), JSON.stringify({ step: s.step, val_loss: s.val_loss, best_checkpoint_step: s.best_checkpoint_step ?? null }));
  }
  return { dir, gpts };
}

test('a run folder loads its best checkpoint, frozen and in evaluation mode', () => {
  const { dir, gpts } = runFolder([{ step: 10, val_loss: 2.5 }, { step: 20, val_loss: 1.9 }, { step: 30, val_loss: 2.1 }]);
  assert.equal(bestCheckpoint(dir).step, 20);
  const m = loadModel(dir);
  assert.equal(m.kind, 'run');
  assert.equal(m.step, 20);
  assert.equal(m.model.training, false);
  assert.ok(m.model.parameters().every((p) => !p.requiresGrad));
  const prompt = m.tokenizer.encode('the dog');
  assert.deepEqual(generate(m.model, prompt, { maxNewTokens: 8, eosTokenIds: [] }),
    generate(gpts.get(20)!, prompt, { maxNewTokens: 8, eosTokenIds: [] }));
  // The trainer's own record wins; with no losses at all the newest checkpoint is used.
  assert.equal(bestCheckpoint(runFolder([{ step: 1, val_loss: 1 }, { step: 2, val_loss: 3, best_checkpoint_step: 2 }]).dir).step, 2);
  assert.equal(bestCheckpoint(runFolder([{ step: 5, val_loss: null }, { step: 7, val_loss: null }]).dir).step, 7);
});

test('a frozen folder with a Jinja chat template; the default template for folders without one', () => {
  const tok = CharTokenizer.fromText('abcdefghijklmnopqrstuvwxyz <>|_:\n', { specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] });
  const chatml = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}" +
    '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}';
  const dir = writeModelFolder(tinyGPT(tok.vocabSize, 7), tok, { chat_template: chatml, eos_token: '<|im_end|>' });
  const m = loadModel(dir);
  assert.equal(m.kind, 'model');
  assert.equal(m.chatTemplate, chatml);
  const t = new ChatTemplate(m.chatTemplate, m.specialTokens);
  assert.equal(t.render([{ role: 'user', content: 'hi' }]), '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');
  assert.deepEqual(t.stops, ['<|im_end|>']);
  const plain = new ChatTemplate();
  assert.ok(plain.isDefault);
  assert.equal(plain.render([{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }]), 'System: be brief\nUser: hi\nAssistant:');
  assert.deepEqual(plain.stops, DEFAULT_CHAT_STOPS);
  assert.throws(() => plain.render([]), /messages must be a non-empty list/);
  assert.throws(() => plain.render([{ role: 'robot' as 'user', content: 'x' }]), /messages\[0\]\.role/);
  assert.throws(() => new ChatTemplate('{% for %}'), /does not parse as Jinja/);
});

test('a Hugging Face GPT-2 folder loads (HF config keys, transformer.* names, tied head)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-hf-'));
  copyFileSync('test/golden/hf-gpt2-tiny/config.json', join(dir, 'config.json'));
  copyFileSync('test/golden/hf-gpt2-tiny/model.safetensors', join(dir, 'model.safetensors'));
  const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.'.split('');
  new CharTokenizer(chars, [['<|endoftext|>', 63]]).save(join(dir, 'tokenizer.json'));
  const m = loadModel(dir);
  assert.deepEqual([m.config.vocabSize, m.config.context, m.config.layers, m.config.width], [64, 16, 2, 32]);
  assert.equal(generate(m.model, [1, 2, 3], { maxNewTokens: 5, eosTokenIds: [] }).length, 5);
});

test('folders that are not models fail with one sentence naming the problem', () => {
  const empty = mkdtempSync(join(tmpdir(), 'kiln-bad-'));
  assert.throws(() => loadModel(join(empty, 'nope')), /does not exist/);
  assert.throws(() => loadModel(empty), /has no config\.json/);
  writeFileSync(join(empty, 'config.json'), '{ not json');
  assert.throws(() => loadModel(empty), /is not valid JSON/);
  writeFileSync(join(empty, 'config.json'), JSON.stringify({ hello: 1 }));
  assert.throws(() => loadModel(empty), /found neither Kiln keys/);
  const tok = charTokenizer();
  const dir = writeModelFolder(tinyGPT(tok.vocabSize, 1), tok);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ vocabSize: tok.vocabSize, context: 64, layers: 3, heads: 2, width: 32 }));
  assert.throws(() => loadModel(dir), /do not fit the model config: missing transformer\.h\.2/);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ vocabSize: tok.vocabSize, context: 64, layers: 2, heads: 2, width: 16 }));
  assert.throws(() => loadModel(dir), /do not fit the model config: .*has shape/);
  const run = runFolder([]).dir;
  mkdirSync(join(run, 'checkpoints'), { recursive: true });
  assert.throws(() => loadModel(run), /has no checkpoints/);
});

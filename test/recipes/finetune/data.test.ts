// Fine-tuning data: JSONL checks (each bad input with its line number and reason), the ChatML template through
// @huggingface/jinja, the assistant-only loss mask, padded batches, and vocabulary growth for new special tokens.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../../src/index.js';
import { trainByteLevelBPE } from '../../../src/data/tokenizer/index.js';
import { GPT } from '../../../src/models/gpt.js';
import { parseFinetuneJsonl, loadFinetuneData, type Conversation } from '../../../src/recipes/finetune/jsonl.js';
import { ChatTemplate, CHAT_SPECIAL_TOKENS, CHATML_TEMPLATE } from '../../../src/infer/chat-template.js';
import { tokenizerConfig, writeTokenizerConfig, readTokenizerConfig } from '../../../src/hub/tokenizer-config.js';
import { encodeConversation, prepareRows, padBatch, PaddedBatches, IGNORE_INDEX } from '../../../src/recipes/finetune/encode.js';
import { resizeTokenEmbeddings } from '../../../src/recipes/finetune/vocab.js';
import { parseHeldout } from '../../../src/recipes/finetune/evaluate.js';
import { missingPythonModule, PYTHON } from '../../helpers/prereq.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'kiln-ft-'));

function smallTokenizer() {
  const tok = trainByteLevelBPE(['user assistant system hello there, how much is the bread? It costs $3.'], { vocabSize: 280 });
  tok.addSpecialTokens([...CHAT_SPECIAL_TOKENS]);
  return tok;
}

test('JSONL: chats and prompt/completion pairs parse; each bad line is reported with its number and reason', () => {
  const lines = [
    JSON.stringify({ messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] }),
    JSON.stringify({ prompt: 'p', completion: 'c' }),
    '',
    '{"messages": [{"role": "user", "content": "q"}',
    JSON.stringify({ messages: [{ role: 'user', content: 'only a question' }] }),
    JSON.stringify({ messages: [{ role: 'user', content: 'q' }, { role: 'bot', content: 'a' }] }),
    JSON.stringify({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 3 }] }),
    JSON.stringify({ text: 'plain' }),
    JSON.stringify([1, 2]),
    JSON.stringify({ messages: [] }),
    JSON.stringify({ prompt: 'p', completion: '   ' }),
    JSON.stringify({ messages: [{ role: 'user', content: 'q' }, { role: 'system', content: 's' }, { role: 'assistant', content: 'a' }] }),
  ];
  const r = parseFinetuneJsonl(lines.join('\n'));
  assert.equal(r.examples.length, 2);
  assert.deepEqual(r.examples[1].messages, [{ role: 'user', content: 'p' }, { role: 'assistant', content: 'c' }]);
  assert.equal(r.blank, 1);
  const byLine = Object.fromEntries(r.errors.map((e) => [e.line, e.reason]));
  assert.deepEqual(Object.keys(byLine).map(Number), [4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.match(byLine[4], /^not valid JSON/);
  assert.match(byLine[5], /no assistant turn/);
  assert.match(byLine[6], /unknown role "bot" \(expected "system", "user" or "assistant"\)/);
  assert.match(byLine[7], /message 2 \(assistant\) has no "content" string/);
  assert.match(byLine[8], /expected "messages" or "prompt" and "completion", found keys "text"/);
  assert.match(byLine[9], /found an array/);
  assert.match(byLine[10], /"messages" is empty/);
  assert.match(byLine[11], /"completion" is empty/);
  assert.match(byLine[12], /only the first message may be one/);
});

test('loadFinetuneData refuses a file with errors unless told to skip them, and counts the skipped', () => {
  const dir = tmp();
  const f = join(dir, 'd.jsonl');
  writeFileSync(f, [JSON.stringify({ prompt: 'p', completion: 'c' }), 'not json', JSON.stringify({ messages: [{ role: 'user', content: 'q' }] })].join('\n'));
  assert.throws(() => loadFinetuneData(f), (e: Error) => {
    assert.match(e.message, /^2 bad lines in the fine-tuning data; fix them or pass --skip-bad-lines:/);
    assert.match(e.message, /d\.jsonl line 2: not valid JSON/);
    assert.match(e.message, /d\.jsonl line 3: the conversation has no assistant turn/);
    return true;
  });
  const ok = loadFinetuneData(f, { skipBadLines: true });
  assert.equal(ok.examples.length, 1);
  assert.deepEqual(ok.skipped.map((s) => s.line), [2, 3]);
  assert.throws(() => loadFinetuneData(join(dir, 'missing.jsonl')), /cannot read the file \(ENOENT\)/);
  writeFileSync(f, 'garbage\n');
  assert.throws(() => loadFinetuneData(f, { skipBadLines: true }), /no usable examples/);
});

test('the ChatML template renders with Jinja, with and without the generation prompt', () => {
  const t = new ChatTemplate(CHATML_TEMPLATE);
  const msgs = [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'Hi' }];
  assert.equal(t.render(msgs, false), '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n');
  assert.equal(t.render(msgs, { addGenerationPrompt: true }).slice(-22), '<|im_end|>\n<|im_start|>assistant\n'.slice(-22));
  assert.throws(() => new ChatTemplate('{% for %}'), /does not parse as Jinja/);
});

test('tokenizer_config.json carries the chat template and special tokens as Hugging Face writes them', () => {
  const tok = smallTokenizer();
  const dir = tmp();
  const path = join(dir, 'tokenizer_config.json');
  writeTokenizerConfig(path, tokenizerConfig(tok, { chatTemplate: CHATML_TEMPLATE, context: 64 }));
  const back = readTokenizerConfig(path)!;
  assert.equal(back.chat_template, CHATML_TEMPLATE);
  assert.equal(back.eos_token, '<|im_end|>');
  assert.equal(back.bos_token, '<|endoftext|>');
  assert.equal(back.model_max_length, 64);
  const ids = Object.keys(back.added_tokens_decoder!).map(Number);
  assert.deepEqual(ids.map((i) => back.added_tokens_decoder![String(i)].content), ['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
  assert.equal(readTokenizerConfig(join(dir, 'absent.json')), null);
  writeFileSync(path, '{"chat_template": 5}');
  assert.throws(() => readTokenizerConfig(path), /chat_template must be a string/);
});

test('the loss mask covers exactly the assistant replies and their end-of-turn marker', () => {
  const tok = smallTokenizer();
  const t = new ChatTemplate(CHATML_TEMPLATE);
  const msgs = [
    { role: 'user' as const, content: 'how much is the bread?' },
    { role: 'assistant' as const, content: 'It costs $3.' },
    { role: 'user' as const, content: 'hello there' },
    { role: 'assistant' as const, content: 'Hello!' },
  ];
  const { ids, labels } = encodeConversation(tok, t, msgs);
  assert.equal(ids.length, labels.length);
  assert.equal(tok.decode(ids), t.render(msgs, false));
  // The learned tokens, decoded run by run, are the two replies with their closing markers.
  const runs: string[] = [];
  let cur: number[] = [];
  labels.forEach((l, i) => {
    if (l !== IGNORE_INDEX) { assert.equal(l, ids[i]); cur.push(l); } else if (cur.length) { runs.push(tok.decode(cur)); cur = []; }
  });
  if (cur.length) runs.push(tok.decode(cur));
  assert.deepEqual(runs, ['It costs $3.<|im_end|>\n', 'Hello!<|im_end|>\n']);
});

test('a conversation that opens with the assistant: its first reply is learned from the bare generation prompt', () => {
  const tok = smallTokenizer();
  const t = new ChatTemplate(CHATML_TEMPLATE);
  const msgs = [{ role: 'assistant' as const, content: 'Hello!' }, { role: 'user' as const, content: 'hi' }, { role: 'assistant' as const, content: 'It costs $3.' }];
  const { ids, labels } = encodeConversation(tok, t, msgs);
  assert.equal(tok.decode(ids), t.render(msgs, false));
  const first = labels.findIndex((l) => l !== IGNORE_INDEX);
  assert.equal(tok.decode(ids.slice(0, first)), '<|im_start|>assistant\n');
  const end = labels.findIndex((l, i) => i > first && l === IGNORE_INDEX);
  assert.equal(tok.decode(labels.slice(first, end)), 'Hello!<|im_end|>\n');
  assert.throws(() => t.render([]), /messages must be a non-empty list/);
});

test('rows are shifted and cut to the context; padded batches mask pads; the batch source is seeded and resumable', () => {
  const tok = smallTokenizer();
  const t = new ChatTemplate(CHATML_TEMPLATE);
  const convs = [
    { line: 1, messages: [{ role: 'user' as const, content: 'hello' }, { role: 'assistant' as const, content: 'It costs $3.' }] },
    { line: 2, messages: [{ role: 'user' as const, content: 'how much is the bread? '.repeat(20) }, { role: 'assistant' as const, content: 'hi' }] },
    { line: 3, messages: [{ role: 'user' as const, content: 'hi' }, { role: 'assistant' as const, content: 'hello there, how much' }] },
  ];
  const enc = (c: Conversation) => encodeConversation(tok, t, c.messages);
  const p = prepareRows(convs, enc, 40);
  assert.deepEqual(p.dropped, [2]); // the reply lies beyond the context
  assert.equal(p.truncated, 1);
  assert.equal(p.rows.length, 2);
  const full = enc(convs[0]);
  assert.deepEqual(p.rows[0].input, full.ids.slice(0, -1));
  assert.deepEqual(p.rows[0].target, full.labels.slice(1));
  const b = padBatch(p.rows, 0);
  const T = Math.max(p.rows[0].input.length, p.rows[1].input.length);
  assert.deepEqual(b.idx.shape, [2, T]);
  const short = p.rows[0].input.length < p.rows[1].input.length ? 0 : 1;
  const tg = b.targets.storage as Int32Array;
  for (let t2 = p.rows[short].input.length; t2 < T; t2++) assert.equal(tg[short * T + t2], IGNORE_INDEX);
  const rows = Array.from({ length: 7 }, (_, i) => ({ input: [i], target: [i], line: i }));
  const src = new PaddedBatches(rows, { batchSize: 3, padId: 0, seed: 5 });
  const epoch1: number[] = [];
  for (let x = src.next(); x; x = src.next()) epoch1.push(...(x.idx.storage as Int32Array));
  assert.deepEqual([...epoch1].sort(), [0, 1, 2, 3, 4, 5, 6]);
  src.next();
  const saved = src.state();
  const rest = [src.next()!, src.next()!].map((x) => [...(x.idx.storage as Int32Array)]);
  const again = new PaddedBatches(rows, { batchSize: 3, padId: 0, seed: 5 });
  again.restore(saved);
  assert.deepEqual([again.next()!, again.next()!].map((x) => [...(x.idx.storage as Int32Array)]), rest);
});

test('new special tokens grow the embedding and the tied head; old rows and positions are unchanged', () => {
  kiln.manualSeed(4);
  const gpt = new GPT({ vocabSize: 300, context: 16, layers: 1, heads: 2, width: 8 });
  const before = gpt.transformer.wte.weight.data();
  const wpe = gpt.transformer.wpe.weight;
  assert.equal(resizeTokenEmbeddings(gpt, 303), 3);
  assert.equal(gpt.config.vocabSize, 303);
  assert.deepEqual(gpt.transformer.wte.weight.shape, [303, 8]);
  assert.equal(gpt.lm_head.weight, gpt.transformer.wte.weight);
  assert.equal(gpt.transformer.wpe.weight, wpe);
  assert.deepEqual(gpt.transformer.wte.weight.data().slice(0, 300 * 8), before);
  const idx = new kiln.Tensor(Int32Array.from([1, 300, 302]), [1, 3]);
  const { logits, loss } = gpt.forward(idx, idx);
  assert.deepEqual(logits.shape, [1, 3, 303]);
  loss!.backward();
  assert.ok(gpt.transformer.wte.weight.grad, 'the grown embedding trains');
  assert.throws(() => resizeTokenEmbeddings(gpt, 10), /at least 303/);
});

test('the demo data set parses cleanly and its held-out prompts never appear in training', () => {
  const train = loadFinetuneData('data/finetune/train.jsonl');
  assert.ok(train.examples.length >= 200 && train.skipped.length === 0);
  const held = parseHeldout(readFileSync('data/finetune/heldout.jsonl', 'utf8'), 'heldout.jsonl');
  assert.ok(held.some((h) => h.kind === 'harmful') && held.some((h) => h.kind === 'benign'));
  const seen = new Set(train.examples.flatMap((e) => e.messages.filter((m) => m.role === 'user').map((m) => m.content)));
  for (const h of held) assert.ok(!seen.has(h.messages[h.messages.length - 1].content), h.messages[0].content);
  assert.ok(held.every((h) => h.messages[h.messages.length - 1].role === 'user'));
  assert.throws(() => parseHeldout('{"messages":[{"role":"user","content":"x"}],"kind":"rude"}', 'h'), /h line 1: "kind" must be/);
});

test('the template renders the same in Python Jinja2 (as transformers does), where Python has jinja2', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const msgs = [{ role: 'system', content: 'Be "brief".' }, { role: 'user', content: 'Héllo\nthere' }];
  const py = 'import sys, json, jinja2\nd = json.load(sys.stdin)\nt = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(d["t"])\n' +
    'sys.stdout.write(json.dumps(t.render(messages=d["m"], add_generation_prompt=True)))';
  const missing = missingPythonModule('jinja2');
  if (missing) { t.skip(missing); return; }
  const r = spawnSync(PYTHON, ['-c', py], { input: JSON.stringify({ t: CHATML_TEMPLATE, m: msgs }), encoding: 'utf8' });
  assert.equal(r.status, 0, `${PYTHON} failed to render the template with jinja2:\n${r.stderr}`);
  assert.equal(JSON.parse(r.stdout), new ChatTemplate(CHATML_TEMPLATE).render(msgs as never, { addGenerationPrompt: true }));
});

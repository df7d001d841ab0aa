// Fine-tuning under bad input (issue 17): a diverging --lr fails naming the last good checkpoint and the flags,
// non-UTF-8 bytes and over-long lines are errors with the line, a 1 MB example encodes without a stack overflow,
// --lora-rank above the width is refused, and a killed run continues with --resume.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../../src/index.js';
import { CharTokenizer, trainByteLevelBPE } from '../../../src/data/tokenizer/index.js';
import { GPT } from '../../../src/models/gpt.js';
import { exportModel } from '../../../src/hub/export.js';
import { finetune } from '../../../src/recipes/finetune/run.js';
import { loadFinetuneData, parseFinetuneJsonl } from '../../../src/recipes/finetune/jsonl.js';
import { encodeConversation, prepareRows } from '../../../src/recipes/finetune/encode.js';
import { ChatTemplate, CHATML_TEMPLATE, CHAT_SPECIAL_TOKENS } from '../../../src/infer/chat-template.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'kiln-ft-bad-'));
const quiet = { progress: false as const, log: () => {} };
const CHAT = { messages: [{ role: 'user', content: 'How much is the bread?' }, { role: 'assistant', content: 'The bread costs $3.' }] };

function source(): { dir: string; data: string } {
  const root = tmp();
  const tok = trainByteLevelBPE(['How much is the bread? The bread costs $3.'], { vocabSize: 280 });
  kiln.manualSeed(5);
  const dir = join(root, 'base');
  exportModel(new GPT({ vocabSize: tok.vocabSize, context: 64, layers: 1, heads: 2, width: 16 }), tok, dir);
  const data = join(root, 'train.jsonl');
  writeFileSync(data, `${Array.from({ length: 4 }, () => JSON.stringify(CHAT)).join('\n')}\n`);
  return { dir, data };
}

test('non-UTF-8 bytes in the data are an error naming the file, line and byte', () => {
  const file = join(tmp(), 'bad.jsonl');
  const good = Buffer.from(`${JSON.stringify(CHAT)}\n`);
  writeFileSync(file, Buffer.concat([good, Buffer.from('{"prompt": "caf'), Buffer.from([0xe9]), Buffer.from('", "completion": "x"}\n')]));
  assert.throws(() => loadFinetuneData(file), (e: Error) => e.message.includes(file) && /line 2: byte 0xe9 at column 16 is not UTF-8/.test(e.message));
});

test('a line longer than the limit fails fast with its number; a long example encodes without a stack overflow', () => {
  const long = JSON.stringify({ prompt: 'x'.repeat(300), completion: 'y' });
  const r = parseFinetuneJsonl(`${JSON.stringify(CHAT)}\n${long}\n`, 200);
  assert.equal(r.examples.length, 1);
  assert.equal(r.errors[0].line, 2);
  assert.match(r.errors[0].reason, /\d+ characters long, more than the limit of 200/);

  // About 1 MB of text: ids.push(...t) overflowed the call stack here. A character tokenizer keeps it fast.
  const tok = CharTokenizer.fromText('ab \nabcdefghijklmnopqrstuvwxyz_|<>', { specialTokens: [...CHAT_SPECIAL_TOKENS] });
  const template = new ChatTemplate(CHATML_TEMPLATE);
  const big = 'ab '.repeat(350_000);
  const enc = encodeConversation(tok, template, [{ role: 'user', content: 'a' }, { role: 'assistant', content: big }]);
  assert.ok(enc.ids.length > 1_000_000);
  const prep = prepareRows([{ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: big }], line: 7 }],
    (c) => encodeConversation(tok, template, c.messages), 64);
  assert.equal(prep.truncated, 1);
  // An example that cannot be encoded names its line.
  assert.throws(() => prepareRows([{ messages: CHAT.messages as never, line: 9 }], () => { throw new Error('boom'); }, 64), /data line 9: cannot encode the example: boom/);
});

test('--lora-rank larger than the width is refused before training; --out under /proc fails at once', async () => {
  const s = source();
  if (existsSync('/proc/self')) {
    await assert.rejects(finetune({ from: s.dir, data: s.data, out: '/proc/kiln-x/ft', maxSteps: 1, ...quiet }), /cannot create the .*'\/proc\/kiln-x\/ft.*ENOENT/);
  }
  await assert.rejects(finetune({ from: s.dir, data: s.data, out: join(tmp(), 'o'), maxSteps: 1, lora: { rank: 100000, targets: ['c_attn'] }, ...quiet }),
    /--lora-rank 100000 is larger than the model's width 16/);
});

test('a diverging learning rate fails naming the last good checkpoint and the --resume --lr flags', async () => {
  const s = source();
  const out = join(tmp(), 'ft');
  await assert.rejects(finetune({ from: s.dir, data: s.data, out, maxSteps: 40, batchSize: 2, lr: 1e6, ...quiet }), (e: Error) => {
    assert.match(e.message, /^training diverged: /);
    assert.match(e.message, /--resume --lr|lower --lr/);
    assert.doesNotMatch(e.message, /fit\(\{ resume \}\)|skipNonFinite/);
    return true;
  });
});

test('finetune --resume continues a stopped run in the same --out; without --resume the folder is refused', async () => {
  const s = source();
  const out = join(tmp(), 'ft');
  const first = await finetune({ from: s.dir, data: s.data, out, maxSteps: 2, batchSize: 2, ...quiet });
  assert.equal(first.fit.step, 2);
  await assert.rejects(finetune({ from: s.dir, data: s.data, out, maxSteps: 4, batchSize: 2, ...quiet }), /add --resume to continue/);
  const lines: string[] = [];
  const r = await finetune({ from: s.dir, data: s.data, out, maxSteps: 4, batchSize: 2, resume: true, progress: false, log: (l) => lines.push(l) });
  assert.equal(r.fit.resumedFrom, 2);
  assert.equal(r.fit.step, 4);
  assert.ok(lines.includes('resumed from step 2'), lines.join('\n'));
  await assert.rejects(finetune({ from: s.dir, data: s.data, out: join(tmp(), 'none'), maxSteps: 1, resume: true, ...quiet }), /holds no fine-tuning run to continue/);
  rmSync(out, { recursive: true, force: true });
  assert.ok(readFileSync(s.data, 'utf8').length > 0);
});

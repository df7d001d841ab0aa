// Mixing pre-training text into fine-tuning (--mix): windows of a text source as rows whose every position is a
// target, seeded, added in the asked share; bad shares are refused with the flag's name.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../../src/index.js';
import { trainByteLevelBPE } from '../../../src/data/tokenizer/index.js';
import { GPT } from '../../../src/models/gpt.js';
import { exportModel } from '../../../src/hub/export.js';
import { pretrainRows } from '../../../src/recipes/finetune/mix.js';
import { finetune } from '../../../src/recipes/finetune/run.js';
import { finetuneOptions } from '../../../src/cli/finetune.js';

const TEXT = 'The miller ground the wheat at dawn, and the baker carried the flour home along the river road.\n\n' +
  'In the evening the town gathered by the bridge to buy bread, cakes and rolls while the lamps were lit.\n';

function textFile(): string {
  const f = join(mkdtempSync(join(tmpdir(), 'kiln-mix-')), 'text.txt');
  writeFileSync(f, TEXT.repeat(3));
  return f;
}

test('mixed-in rows are windows of the text, shifted by one, the same for the same seed', () => {
  const tok = trainByteLevelBPE([TEXT], { vocabSize: 280 });
  const src = textFile();
  const rows = pretrainRows(tok, { rows: 5, length: 12, seed: 3, source: src });
  assert.equal(rows.length, 5);
  const all = tok.encode(TEXT.repeat(3));
  for (const r of rows) {
    assert.equal(r.input.length, 12);
    assert.deepEqual(r.input.slice(1), r.target.slice(0, -1), 'targets are the next tokens');
    assert.equal(r.line, -1);
    assert.ok(tok.decode([...r.input, r.target[11]]).length > 0 && all.length > 13);
  }
  assert.deepEqual(pretrainRows(tok, { rows: 5, length: 12, seed: 3, source: src }), rows);
  assert.notDeepEqual(pretrainRows(tok, { rows: 5, length: 12, seed: 4, source: src }), rows);
  assert.deepEqual(pretrainRows(tok, { rows: 0, length: 12, seed: 3, source: src }), []);
  assert.throws(() => pretrainRows(tok, { rows: 2, length: 1, seed: 3, source: src }), /length must be an integer >= 2/);
});

test('finetune --mix adds text rows in the asked share and records it; bad shares are refused', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kiln-mix-ft-'));
  const tok = trainByteLevelBPE([TEXT, 'How much is the bread? The bread costs $3.'], { vocabSize: 300 });
  kiln.manualSeed(2);
  const base = join(root, 'base');
  exportModel(new GPT({ vocabSize: tok.vocabSize, context: 32, layers: 1, heads: 2, width: 16 }), tok, base);
  const data = join(root, 'train.jsonl');
  const chat = { messages: [{ role: 'user', content: 'How much is the bread?' }, { role: 'assistant', content: 'The bread costs $3.' }] };
  writeFileSync(data, Array.from({ length: 6 }, () => JSON.stringify(chat)).join('\n'));
  const lines: string[] = [];
  const r = await finetune({ from: base, data, out: join(root, 'ft'), maxSteps: 2, batchSize: 4, mix: 0.25, mixData: textFile(), progress: false, log: (s) => lines.push(s) });
  assert.ok(lines.some((l) => /mixed in 2 rows of pre-training text .*25% of the rows/.test(l)), lines.join('\n'));
  assert.equal(r.fit.step, 2);
  await assert.rejects(finetune({ from: base, data, out: join(root, 'ft2'), maxSteps: 1, mix: 1, progress: false, log: () => {} }), /mix must be a share in \[0, 1\), got 1/);
  const flags = { from: 'a', data: 'b', out: 'c' };
  assert.equal(finetuneOptions({ ...flags, mix: '0.3' }).mix, 0.3);
  assert.throws(() => finetuneOptions({ ...flags, mix: '1.5' }), /--mix expects a number in \[0, 1\), got '1.5'/);
});

// Fuzz: fine-tuning JSONL. Random text, and lines of mutated conversations and prompt/completion pairs, through
// the parser: it never throws, every line is an example or an error with its number and a reason, and bytes that
// are not UTF-8 fail the strict decoder with the file and line.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeUtf8Strict, parseFinetuneJsonl } from '../../src/recipes/finetune/jsonl.js';
import { ONE_PASS, fuzz, oddJson, resultOrClearError } from './helpers.js';

const role = fc.oneof(fc.constantFrom('system', 'user', 'assistant', 'tool', ''), oddJson);
const message = fc.oneof(fc.record({ role, content: fc.oneof(fc.string({ maxLength: 20 }), oddJson) }, { requiredKeys: [] }), oddJson);
const example = fc.oneof(
  fc.record({ messages: fc.oneof(fc.array(message, { maxLength: 4 }), oddJson) }, { requiredKeys: [] }),
  fc.record({ prompt: fc.oneof(fc.string({ maxLength: 20 }), oddJson), completion: fc.oneof(fc.string({ maxLength: 20 }), oddJson) }, { requiredKeys: [] }),
  oddJson,
);
const line = fc.oneof(example.map((e) => JSON.stringify(e) ?? ''), fc.string({ maxLength: 30 }), fc.constantFrom('', '  ', '{', '\r', '\u2028'));

test('fuzz: fine-tuning JSONL lines', { skip: ONE_PASS }, () => {
  fuzz(fc.property(fc.array(line, { maxLength: 6 }), fc.constantFrom('\n', '\r\n'), fc.integer({ min: 8, max: 200 }), (lines, eol, maxLine) => {
    const text = lines.join(eol);
    const r = parseFinetuneJsonl(text, maxLine);
    const seen = new Set([...r.examples.map((e) => e.line), ...r.errors.map((e) => e.line)]);
    assert.equal(seen.size, r.examples.length + r.errors.length, 'a line counted twice');
    for (const e of r.errors) assert.ok(Number.isInteger(e.line) && e.line >= 1 && typeof e.reason === 'string' && e.reason.length > 0);
    for (const e of r.examples) assert.ok(e.messages.some((m) => m.role === 'assistant'));
  }));
});

test('fuzz: bytes through the strict UTF-8 decoder', { skip: ONE_PASS }, () => {
  fuzz(fc.property(fc.uint8Array({ maxLength: 48 }), (bytes) => {
    const text = resultOrClearError(() => decodeUtf8Strict(bytes, 'fuzz.jsonl'), /^fine-tuning data fuzz\.jsonl line \d+: byte 0x[0-9a-f]{2} at column \d+ is not UTF-8/);
    if (text !== null) assert.deepEqual(Buffer.from(text, 'utf8'), Buffer.from(bytes));
  }));
});

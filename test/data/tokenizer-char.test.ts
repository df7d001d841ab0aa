import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CharTokenizer, loadTokenizer } from '../../src/data/tokenizer/index.js';

test('character tokenizer: ids in code-point order, special tokens after, lossless', () => {
  const tok = CharTokenizer.fromText('hello world 😀');
  assert.equal(tok.vocabSize, 10); // ' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w', '😀', <|endoftext|>
  assert.deepEqual(tok.encode('hole'), [3, 5, 4, 2]);
  assert.equal(tok.tokenToId('<|endoftext|>'), 9);
  assert.equal(tok.decode(tok.encode('😀 hello<|endoftext|>')), '😀 hello<|endoftext|>');
  assert.deepEqual(tok.addSpecialTokens(['<|im_start|>']), [10]);
});

test('character tokenizer saves and loads', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-char-'));
  try {
    const tok = CharTokenizer.fromText(['abc\n', 'Grüße']);
    tok.save(join(dir, 'tokenizer.json'));
    const back = loadTokenizer(join(dir, 'tokenizer.json'));
    assert.equal(back.kind, 'char');
    assert.deepEqual(back.encode('Grüße\nabc'), tok.encode('Grüße\nabc'));
    assert.equal(back.vocabSize, tok.vocabSize);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('character tokenizer: an unseen character is named in the error', () => {
  const tok = CharTokenizer.fromText('abc');
  assert.throws(() => tok.encode('abz'), /expected characters of its 3-character vocabulary, found "z" \(U\+007A\) at offset 2\./);
  assert.throws(() => CharTokenizer.fromText(''), /expected some text, found none/);
  assert.throws(() => tok.decode([99]), /must be an integer in \[0, 4\), found 99/);
});

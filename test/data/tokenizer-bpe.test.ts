import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ByteLevelBPE, trainByteLevelBPE, loadTokenizer, preTokenize } from '../../src/data/tokenizer/index.js';
import { brownCorpus } from '../../src/data/text/brown.js';
import { Generator } from '../../src/tensor/random.js';
import { fuzzText, JS_WHITESPACE_QUIRKS } from './fuzz-text.js';

// A ~300 KB slice of the Brown corpus (every 25th document, all genres) keeps training under a second.
const slice = brownCorpus()
  .filter((_, i) => i % 25 === 0)
  .map((d) => d.text);
const multilingual = ['naïve café crème brûlée', 'Grüße aus Köln', 'Привет мир, привет', '東京と京都と東京', '😀😀 emoji 😀'];
const tok = trainByteLevelBPE([...slice, ...multilingual], { vocabSize: 1024, specialTokens: ['<|endoftext|>'] });

test('training reaches the vocabulary size, ids laid out as bytes, merges, then special tokens', () => {
  assert.equal(tok.vocabSize, 1024);
  assert.equal(tok.numMerges, 1024 - 256 - 1);
  assert.equal(tok.tokenToId('<|endoftext|>'), 1023);
  assert.equal(tok.tokenToId('a'), 97);
  assert.ok(tok.tokenToId('Ġthe')! >= 256, 'a common word becomes one token');
  assert.deepEqual(tok.encode(' the'), [tok.tokenToId('Ġthe')]);
});

test('training is deterministic', () => {
  const again = trainByteLevelBPE([...slice, ...multilingual], { vocabSize: 1024, specialTokens: ['<|endoftext|>'] });
  assert.equal(JSON.stringify(again.toJSON()), JSON.stringify(tok.toJSON()));
});

test('round trip on the corpus and on random Unicode', () => {
  for (const t of slice) assert.equal(tok.decode(tok.encode(t)), t);
  const rng = new Generator(7);
  for (let i = 0; i < 300; i++) {
    const s = fuzzText(rng, 40, { raw: true, extra: JS_WHITESPACE_QUIRKS });
    assert.equal(tok.decode(tok.encode(s)), s);
    assert.equal(tok.decode(tok.encode(s, { allowSpecial: false })), s);
  }
});

test('round trip on arbitrary bytes, valid UTF-8 or not', () => {
  const rng = new Generator(11);
  for (let i = 0; i < 300; i++) {
    const bytes = new Uint8Array(rng.int(0, 64));
    for (let j = 0; j < bytes.length; j++) bytes[j] = rng.int(0, 4) === 0 ? rng.int(0, 256) : 0x20 + rng.int(0, 95);
    assert.deepEqual(tok.decodeBytes(tok.encodeBytes(bytes)), bytes);
  }
  const bom = new Uint8Array([0xef, 0xbb, 0xbf, 0x41, 0xff, 0xc3]);
  assert.deepEqual(tok.decodeBytes(tok.encodeBytes(bom)), bom);
});

test('a character split across tokens decodes whole when the sequence is decoded together', () => {
  const text = 'Zürich 🦊 東京';
  const ids = tok.encode(text);
  assert.equal(tok.decode(ids), text);
  const partial = ids.filter((id) => tok.decode([id]).includes('\ufffd'));
  assert.ok(partial.length > 0, 'some token holds only part of a character');
});

test('lone surrogates are not UTF-8: they encode as U+FFFD', () => {
  assert.equal(tok.decode(tok.encode('a\ud800b')), 'a\ufffdb');
});

test('special tokens: recognised by default, plain text on request, added ones get new ids', () => {
  const eot = tok.tokenToId('<|endoftext|>')!;
  assert.deepEqual(tok.encode('<|endoftext|>'), [eot]);
  assert.ok(!tok.encode('<|endoftext|>', { allowSpecial: false }).includes(eot));
  const t2 = ByteLevelBPE.fromJSON(tok.toJSON());
  const ids = t2.addSpecialTokens(['<|im_start|>', '<|im_end|>', '<|endoftext|>']);
  assert.deepEqual(ids, [1024, 1025, eot]);
  assert.equal(t2.vocabSize, 1026);
  const chat = '<|im_start|>user\nhi<|im_end|>';
  const enc = t2.encode(chat);
  assert.equal(enc[0], 1024);
  assert.equal(enc[enc.length - 1], 1025);
  assert.equal(t2.decode(enc), chat);
  assert.deepEqual(t2.addSpecialTokens(['<|im_start|>']), [1024], 'adding again keeps the id');
});

test('save and load give the same tokenizer, also through loadTokenizer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bpe-'));
  try {
    const t2 = ByteLevelBPE.fromJSON(tok.toJSON());
    t2.addSpecialTokens(['<|im_start|>']);
    const path = join(dir, 'tokenizer.json');
    t2.save(path);
    const a = ByteLevelBPE.load(path);
    const b = loadTokenizer(path);
    assert.equal(b.kind, 'byte-bpe');
    const s = 'Some text <|im_start|> with 😀 and <|endoftext|>.';
    assert.deepEqual(a.encode(s), t2.encode(s));
    assert.deepEqual(b.encode(s), t2.encode(s));
    assert.equal(JSON.stringify(a.toJSON()), readFileSync(path, 'utf8'));
    const json = JSON.parse(readFileSync(path, 'utf8'));
    assert.equal(json.model.type, 'BPE');
    assert.equal(json.pre_tokenizer.type, 'ByteLevel');
    assert.equal(json.added_tokens.length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pre-tokenization follows GPT-2 with Unicode White_Space for \\s, as the Rust library does', () => {
  assert.deepEqual(preTokenize("Hello world! It's 2024  ok"), ['Hello', ' world', '!', ' It', "'s", ' 2024', ' ', ' ok']);
  assert.deepEqual(preTokenize('a\u0085b'), ['a', '\u0085', 'b']);
  assert.deepEqual(preTokenize('x \ufeffy'), ['x', ' \ufeff', 'y']);
});

test('bad inputs fail with one clear sentence', () => {
  assert.throws(() => trainByteLevelBPE(slice, { vocabSize: 200 }), /vocabSize: expected an integer of at least 257 \(the 256-byte alphabet plus 1 special tokens\), found 200\./);
  assert.throws(() => trainByteLevelBPE(slice, { vocabSize: 256 }), /at least 257/);
  assert.throws(() => trainByteLevelBPE([], { vocabSize: 300 }), /expected some text to train on, found 0 documents/);
  assert.throws(() => trainByteLevelBPE(['', ''], { vocabSize: 300 }), /found 2 documents with no characters/);
  assert.throws(() => trainByteLevelBPE(['a'], { vocabSize: 300, specialTokens: ['x', 'x'] }), /distinct tokens/);
  assert.throws(() => tok.decode([5, 1024]), /token id at position 1 must be an integer in \[0, 1024\), found 1024\./);
  assert.throws(() => tok.decode([1.5]), /found 1\.5/);
  assert.throws(() => tok.addSpecialTokens(['']), /non-empty strings/);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bpe-bad-'));
  try {
    const p = join(dir, 'tokenizer.json');
    writeFileSync(p, '{"model": ');
    assert.throws(() => loadTokenizer(p), /Tokenizer file .*tokenizer\.json: expected JSON, found a parse error/);
    const noBytes = { version: '1.0', truncation: null, padding: null, normalizer: null, post_processor: null, added_tokens: [] };
    writeFileSync(p, JSON.stringify({ ...noBytes, model: { type: 'BPE', vocab: { a: 0 }, merges: [] }, pre_tokenizer: { type: 'ByteLevel' }, decoder: { type: 'ByteLevel' } }));
    assert.throws(() => ByteLevelBPE.load(p), /expected a byte-level BPE tokenizer \(GPT-2 style\), found no token for byte 0x00\./);
    assert.equal(loadTokenizer(p).kind, 'hf', 'a file Kiln cannot run exactly goes to @huggingface/tokenizers');
    assert.throws(() => loadTokenizer(p, { engine: 'kiln' }), /expected a byte-level BPE or character tokenizer for Kiln's encoder, found no token for byte 0x00\./);
    writeFileSync(p, JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 }, merges: [] } }));
    assert.throws(() => loadTokenizer(p), /Tokenizer file .*tokenizer\.json: expected a file @huggingface\/tokenizers can load, found an error \(Tokenizer must contain a "decoder" property\)\./);
    assert.throws(() => loadTokenizer(join(dir, 'missing.json')), /expected a readable tokenizer\.json, found ENOENT/);
    const json = tok.toJSON();
    json.model.merges = ['Ġ nope'];
    assert.throws(() => ByteLevelBPE.fromJSON(json), /merge 0 must name two tokens of the vocabulary, found "Ġ nope"/);
    // Names of Object.prototype members are not in the vocabulary, and a merge of non-strings is one clear sentence.
    json.model.merges = ['toString constructor'];
    assert.throws(() => ByteLevelBPE.fromJSON(json), /merge 0 must name two tokens of the vocabulary, found "toString constructor"/);
    json.model.merges = [[{ toString: null }, 'a'] as unknown as string];
    assert.throws(() => ByteLevelBPE.fromJSON(json), /merge 0 must name two tokens of the vocabulary, found \[\{"toString":null\},"a"\]/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

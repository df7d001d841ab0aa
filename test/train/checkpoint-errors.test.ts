// Bad checkpoints: truncated, corrupt, a broken trainer_state.json, or from a different model configuration
// each get a clear error naming the file and the problem, and nothing on disk is removed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../src/index.js';
import { Trainer } from '../../src/train/trainer.js';
import { tinySetup } from './helpers.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'kiln-badck-'));

async function goodRun(): Promise<string> {
  const dir = tmp();
  await new Trainer({ ...tinySetup(), maxSteps: 3, runDir: dir, checkpoints: { every: 3 }, progress: false, config: { model: { hidden: 16 } } }).fit();
  return dir;
}

function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p, `${rel}${n}/`);
      else out.push(`${rel}${n}:${statSync(p).size}`);
    }
  };
  walk(dir, '');
  return out;
}

async function expectRefused(dir: string, re: RegExp, setup = tinySetup(), config: Record<string, kiln.train.JSONValue> = { model: { hidden: 16 } }): Promise<void> {
  const before = listing(dir);
  const t = new Trainer({ ...setup, maxSteps: 6, runDir: dir, checkpoints: { every: 3 }, progress: false, config });
  await assert.rejects(t.fit({ resume: true }), re);
  assert.deepEqual(listing(dir), before, 'nothing on disk changed');
}

test('a truncated model file is refused, naming it', async () => {
  const dir = await goodRun();
  const f = join(dir, 'checkpoints/step-3/model.safetensors');
  truncateSync(f, statSync(f).size - 10);
  await expectRefused(dir, new RegExp(`'${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' is truncated: \\d+ bytes, but trainer_state.json records \\d+`));
});

test('a corrupt (bit-flipped) optimizer file is refused, naming it', async () => {
  const dir = await goodRun();
  const f = join(dir, 'checkpoints/step-3/optimizer.safetensors');
  const b = readFileSync(f);
  b[b.length - 3] ^= 0xff;
  writeFileSync(f, b);
  await expectRefused(dir, /optimizer\.safetensors' is corrupt: its sha256 does not match/);
});

test('a broken trainer_state.json is refused, naming it', async () => {
  const dir = await goodRun();
  const f = join(dir, 'checkpoints/step-3/trainer_state.json');
  // Still parses as the newest complete checkpoint but its recorded file entries are gone.
  const s = JSON.parse(readFileSync(f, 'utf8'));
  delete s.files;
  writeFileSync(f, JSON.stringify(s));
  await expectRefused(dir, /does not record model\.safetensors; the checkpoint is incomplete/);
  const g = join(tmp(), 'step-3');
  cpSync(join(dir, 'checkpoints/step-3'), g, { recursive: true });
  writeFileSync(join(g, 'trainer_state.json'), '{"format": "kiln.trainer_state", "st');
  await assert.rejects(new Trainer({ ...tinySetup(), maxSteps: 6, progress: false }).fit({ resume: g }), /trainer_state\.json' is not valid JSON/);
});

test('a checkpoint from a different model configuration is refused with the mismatch', async () => {
  const dir = await goodRun();
  await expectRefused(dir, /model\.safetensors' was written for a different model configuration: '0\.weight' has shape \[16, 2\] in the file but \[32, 2\] in the model/,
    tinySetup({ hidden: 32 }), { model: { hidden: 32 } });
  await expectRefused(dir, /trainer_state\.json' was written for a different model configuration: config\.model there is \{"hidden":16\}, here \{"hidden":17\}/,
    tinySetup(), { model: { hidden: 17 } });
});

test('resuming where there is no checkpoint is refused clearly', async () => {
  const dir = tmp();
  await assert.rejects(new Trainer({ ...tinySetup(), maxSteps: 2, runDir: dir, progress: false }).fit({ resume: true }), /holds no complete checkpoint/);
  await assert.rejects(new Trainer({ ...tinySetup(), maxSteps: 2, progress: false }).fit({ resume: join(dir, 'nope') }), /'.*nope' does not exist/);
});

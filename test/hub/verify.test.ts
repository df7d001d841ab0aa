// Every weight load is verified (issue 17): a file that no longer matches its recorded sha256, non-finite
// weights, integer dtypes or a dtype that disagrees with config.json are refused naming the file and --no-verify
// (which loads them anyway); sizes from config.json are checked against memory before allocation; a killed
// export's temporary folder is removed by the next export.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { exportModel } from '../../src/hub/export.js';
import { loadModel } from '../../src/hub/load.js';
import { decodeSafetensors, encodeSafetensors } from '../../src/io/safetensors.js';
import { toHFConfig } from '../../src/models/gpt-config.js';
import { processAlive, tempPathFor } from '../../src/io/atomic.js';
import { charTokenizer, tinyGPT, writeModelFolder } from '../infer/helpers.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'kiln-verify-'));

function exported(): string {
  const tok = charTokenizer();
  const dir = join(tmp(), 'model');
  exportModel(tinyGPT(tok.vocabSize, 3, { width: 16 }), tok, dir);
  return dir;
}

/** Replaces the folder's weights, and drops the recorded checksum so only the content checks speak. */
function replaceWeights(dir: string, bytes: Uint8Array): void {
  writeFileSync(join(dir, 'model.safetensors'), bytes);
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  delete cfg.kiln.files;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
}

test('export records the sha256; a changed byte is refused naming the file and --no-verify, which loads it', () => {
  const dir = exported();
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.match(cfg.kiln.files['model.safetensors'].sha256, /^[0-9a-f]{64}$/);
  loadModel(dir);
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  bytes[bytes.length - 3] ^= 0x01; // a low mantissa bit: the value stays finite
  writeFileSync(file, bytes);
  assert.throws(() => loadModel(dir), (e: Error) => e.message.includes(file) && /do not match the sha256 recorded/.test(e.message) && /--no-verify/.test(e.message));
  assert.equal(loadModel(dir, { verify: false }).weightsPath, file);
  writeFileSync(file, bytes.subarray(0, bytes.length - 4));
  assert.throws(() => loadModel(dir), /bytes but \d+ were recorded when they were written \(truncated or replaced\)/);
});

test('all-NaN weights and weights relabelled as another dtype are refused', () => {
  const dir = exported();
  const { tensors } = decodeSafetensors(readFileSync(join(dir, 'model.safetensors')));
  for (const t of Object.values(tensors)) t.storage.fill(NaN);
  replaceWeights(dir, encodeSafetensors(tensors));
  assert.throws(() => loadModel(dir), /hold NaN in tensor '.*'.*not finite; pass --no-verify/);
  assert.doesNotThrow(() => loadModel(dir, { verify: false }));

  // F32 relabelled I32 (same byte size): the bytes load as huge integers.
  const dir2 = exported();
  const raw = Buffer.from(readFileSync(join(dir2, 'model.safetensors')));
  const n = Number(raw.readBigUInt64LE(0));
  const header = raw.subarray(8, 8 + n).toString('utf8').replaceAll('"F32"', '"I32"');
  replaceWeights(dir2, Buffer.concat([raw.subarray(0, 8), Buffer.from(header), raw.subarray(8 + n)]));
  assert.throws(() => loadModel(dir2), /store tensor '.*' as I32; model weights are floating point/);

  // config.json says float16 but the file holds float32.
  const dir3 = exported();
  const cfg = JSON.parse(readFileSync(join(dir3, 'config.json'), 'utf8'));
  writeFileSync(join(dir3, 'config.json'), JSON.stringify({ ...cfg, torch_dtype: 'float16' }));
  assert.throws(() => loadModel(dir3), /as F32 but config.json declares F16/);
});

test('a run checkpoint whose weights no longer match trainer_state.json is refused', () => {
  const tok = charTokenizer();
  const gpt = tinyGPT(tok.vocabSize, 4, { width: 16 });
  const run = tmp();
  const ck = join(run, 'checkpoints', 'step-5');
  mkdirSync(ck, { recursive: true });
  const weights = encodeSafetensors(gpt.stateDict());
  writeFileSync(join(ck, 'model.safetensors'), weights);
  writeFileSync(join(ck, 'optimizer.safetensors'), encodeSafetensors({}));
  writeFileSync(join(ck, 'trainer_state.json'), JSON.stringify({ format: 'kiln.trainer_state', step: 5, epoch: 0, val_loss: null,
    files: { 'model.safetensors': { bytes: weights.length, sha256: '0'.repeat(64) } } }));
  writeFileSync(join(run, 'config.json'), JSON.stringify(toHFConfig(gpt.config)));
  tok.save(join(run, 'tokenizer.json'));
  assert.throws(() => loadModel(run), (e: Error) => e.message.includes(join(ck, 'model.safetensors')) && /sha256/.test(e.message));
  assert.equal(loadModel(run, { verify: false }).step, 5);
});

test('sizes in config.json are checked against memory before anything is allocated', () => {
  const tok = charTokenizer();
  const dir = writeModelFolder(tinyGPT(tok.vocabSize, 1, { width: 16 }), tok);
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  // (width 64: 1e6 layers of 12 C^2 weights is 196 GB, beyond any machine these tests run on)
  for (const [key, value, pattern] of [
    ['n_layer', 1e6, /needs about .* \(.* bytes\) of memory, but this machine has .* \(\d+ bytes; .* free\)/],
    ['n_positions', 1e12, /context 1000000000000, .*needs about .* of memory, but this machine has/],
  ] as const) {
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, n_embd: 64, [key]: value }));
    const t0 = performance.now();
    assert.throws(() => loadModel(dir), pattern);
    assert.ok(performance.now() - t0 < 2000, `${key} took ${performance.now() - t0} ms`);
  }
});

test('export removes the temporary folder a killed export left (its pid is gone), not a live one', () => {
  const tok = charTokenizer();
  const parent = tmp();
  const out = join(parent, 'model');
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const dead = Number(child.stdout);
  assert.ok(!processAlive(dead));
  const stale = join(parent, `.tmp-model-${dead}-1700000000000-0`);
  mkdirSync(stale);
  writeFileSync(join(stale, 'model.safetensors'), new Uint8Array(1000));
  const live = tempPathFor(join(parent, 'other'));
  mkdirSync(live);
  const r = exportModel(tinyGPT(tok.vocabSize, 2, { width: 16 }), tok, out);
  assert.deepEqual(r.staleRemoved, [basename(stale)]);
  assert.ok(!existsSync(stale));
  assert.ok(existsSync(live));
  assert.deepEqual(readdirSync(dirname(out)).sort(), [basename(live), 'model'].sort());
});

test('kiln generate refuses tampered weights with exit 1 and the flag; --no-verify loads them', (t) => {
  if (process.env.KILN_BACKEND === 'js') { t.skip('run on the native backend pass only'); return; } // two CLI starts, no kernels in question
  const dir = exported();
  const file = join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  bytes[bytes.length - 3] ^= 0x01;
  writeFileSync(file, bytes);
  const run = (...extra: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'generate', '--model', dir, '--max-tokens', '2', ...extra, 'ab'],
    { encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' } });
  const bad = run();
  assert.equal(bad.status, 1, bad.stderr);
  assert.match(bad.stderr, /^kiln: weights '.*model\.safetensors' do not match the sha256.*--no-verify/);
  const ok = run('--no-verify');
  assert.equal(ok.status, 0, ok.stderr);
});

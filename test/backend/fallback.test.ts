// Fallback: with the addon missing (KILN_NATIVE_PATH pointing nowhere) a program still runs and trains, on the
// WebAssembly backend (and with kiln.wasm missing too, on the reference backend), says why in backendInfo(), and
// warns exactly once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

// The child trains a tiny MLP a few steps through the public API, then reports the backend and the losses.
const CHILD = `
import * as kiln from './src/index.ts';
import { backend } from './src/backend/node.ts';
const be = backend();
const c = new Float32Array(4);
be.gemm(false, false, 1, 2, 2, 2, 1, new Float32Array([1, 2, 3, 4]), 0, new Float32Array([1, 2, 3, 4]), 0, 0, c, 0);
kiln.manualSeed(0);
const x = kiln.randn([64, 8]);
const y = x.sum(1, true).mul(0.5).tanh();
const model = new kiln.nn.MLP([8, 16, 1]);
const opt = new kiln.optim.Adam(model.parameters(), { lr: 0.01 });
const losses = [];
for (let step = 0; step < 30; step++) {
  opt.zeroGrad();
  const loss = kiln.nn.functional.mseLoss(model.forward(x), y);
  loss.backward();
  opt.step();
  losses.push(loss.item());
}
console.log(JSON.stringify({ info: kiln.backendInfo(), again: kiln.backendInfo(), c: [...c], losses }));
`;
const INFO_ONLY = `
import { backendInfo } from './src/backend/node.ts';
console.log(JSON.stringify({ info: backendInfo() }));
`;

function runChild(script: string, env: Record<string, string | undefined>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...env })) if (v !== undefined) childEnv[k] = v;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, env: childEnv });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

// Both children start at once; each test awaits its own.
const fallback = runChild(CHILD, { KILN_NATIVE_PATH: '/nonexistent/kiln_native.node', KILN_BACKEND: undefined });
const fallbackJs = runChild(CHILD, { KILN_NATIVE_PATH: '/nonexistent/kiln_native.node', KILN_WASM_PATH: '/nonexistent/kiln.wasm',
  KILN_BACKEND: undefined });
const chosenJs = runChild(INFO_ONLY, { KILN_BACKEND: 'js' });
const chosenWasm = runChild(INFO_ONLY, { KILN_BACKEND: 'wasm' });

test('a missing addon falls back to the WebAssembly backend with one warning', async () => {
  const res = await fallback;
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout.trim().split('\n').pop()!);
  assert.equal(out.info.name, 'wasm');
  assert.equal(out.info.isa, 'simd128');
  assert.match(out.info.reason, /KILN_NATIVE_PATH is \/nonexistent\/kiln_native\.node, which does not exist/);
  assert.deepEqual(out.again, out.info);
  assert.deepEqual(out.c, [7, 10, 15, 22]);
  assert.ok(out.losses.at(-1) < 0.5 * out.losses[0], `loss should fall: ${out.losses[0]} -> ${out.losses.at(-1)}`);
  const warnings = res.stderr.split('\n').filter((l) => l.includes('KilnWarning'));
  assert.equal(warnings.length, 1, `expected one warning, stderr was:\n${res.stderr}`);
  assert.match(warnings[0], /native backend is unavailable .*running on the WebAssembly backend/);
});

test('with the addon and kiln.wasm both missing it falls back to the reference backend with one warning', async () => {
  const res = await fallbackJs;
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout.trim().split('\n').pop()!);
  assert.equal(out.info.name, 'js');
  assert.match(out.info.reason, /kiln_native\.node, which does not exist; wasm: \/nonexistent\/kiln\.wasm is missing/);
  assert.deepEqual(out.c, [7, 10, 15, 22]);
  assert.ok(out.losses.at(-1) < 0.5 * out.losses[0], `loss should fall: ${out.losses[0]} -> ${out.losses.at(-1)}`);
  const warnings = res.stderr.split('\n').filter((l) => l.includes('KilnWarning'));
  assert.equal(warnings.length, 1, `expected one warning, stderr was:\n${res.stderr}`);
  assert.match(warnings[0], /reference TypeScript backend/);
});

test('KILN_BACKEND=wasm chooses the WebAssembly backend without a warning', async () => {
  const res = await chosenWasm;
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout.trim().split('\n').pop()!);
  assert.equal(out.info.name, 'wasm');
  assert.equal(out.info.reason, 'KILN_BACKEND=wasm');
  assert.ok(out.info.threads >= 1);
  assert.ok(!res.stderr.includes('KilnWarning'), res.stderr);
});

test('KILN_BACKEND=js chooses the reference backend without a warning', async () => {
  const res = await chosenJs;
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout.trim().split('\n').pop()!);
  assert.equal(out.info.name, 'js');
  assert.ok(!res.stderr.includes('KilnWarning'), res.stderr);
});

// The memory settings are checked when the addon loads; a bad value is named in the reason (and the warning).
const badCache = runChild(INFO_ONLY, { KILN_BACKEND: undefined, KILN_CACHE_BYTES: 'lots' });
const badGc = runChild(INFO_ONLY, { KILN_BACKEND: undefined, KILN_FRESH_GC_BYTES: '-1' });

test('bad KILN_CACHE_BYTES or KILN_FRESH_GC_BYTES values are named, not ignored', async () => {
  for (const [res, pattern] of [[await badCache, /KILN_CACHE_BYTES must be a whole number of bytes .* got 'lots'/],
    [await badGc, /KILN_FRESH_GC_BYTES must be a whole number of bytes .* got '-1'/]] as const) {
    assert.equal(res.status, 0, res.stderr);
    const out = JSON.parse(res.stdout.trim().split('\n').pop()!);
    assert.equal(out.info.name, 'wasm');
    assert.match(out.info.reason, pattern);
    assert.match(res.stderr, pattern);
  }
});

// The Trainer under mpirun: 2 ranks x batch b equal 1 process x batch 2b (with and without accumulation), resume
// under MPI is bitwise, a killed rank ends the job and leaves a loadable checkpoint, a different world size is
// refused unless re-sharding. Run in the native backend's pass only: each mpirun start costs seconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../src/index.js';
import { mpirun, needMpirun, results } from './helpers.js';

interface Out { worldSize: number; rowsTrained: number; lrFindError: string; smallBatchError: string; params: Record<string, number[]>; losses: number[]; result: kiln.train.FitResult; valLoss: number }
type Args = { nanAt?: number; batch?: number; accum?: number; steps?: number; runDir?: string; every?: number; resume?: boolean; reshard?: boolean; killAt?: number };

const nativeOnly = (process.env.KILN_BACKEND ?? 'native') !== 'native';
const skipWhy = 'runs in the native backend pass only (each mpirun start costs seconds)';

function single(args: Args) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'test/distributed/fixtures/trainer-mlp.ts', JSON.stringify(args)], { encoding: 'utf8' });
}

function onRanks(np: number, args: Args, timeoutMs?: number) {
  return mpirun(np, 'trainer-mlp.ts', [JSON.stringify(args)], timeoutMs);
}

function assertClose(got: Out, want: Out): void {
  assert.deepEqual(Object.keys(got.params), Object.keys(want.params));
  for (const [name, w] of Object.entries(want.params)) {
    const g = got.params[name];
    let worst = 0;
    for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(g[i] - w[i]) / (1e-3 + Math.abs(w[i])));
    assert.ok(worst < 1e-4, `${name}: relative difference ${worst}`);
  }
  got.losses.forEach((l, i) => assert.ok(Math.abs(l - want.losses[i]) < 1e-5 * (1 + Math.abs(want.losses[i])), `loss ${i}: ${l} vs ${want.losses[i]}`));
  assert.ok(Math.abs(got.valLoss - want.valLoss) < 1e-5, `validation loss ${got.valLoss} vs ${want.valLoss}`);
}

test('Trainer: 5 AdamW steps on 2 ranks x batch 4 equal 1 process x batch 8, with and without accumulation', (t) => {
  if (nativeOnly) return t.skip(skipWhy);
  if (!needMpirun(t)) return;
  for (const accum of [1, 2]) {
    const [want] = results<Out>(single({ batch: 8 / accum, accum }));
    const [got] = results<Out>(onRanks(2, { batch: 8 / accum, accum }));
    assert.equal(want.worldSize, 1);
    assert.equal(got.worldSize, 2);
    assert.equal(got.result.step, 5);
    assert.equal(want.rowsTrained, 5 * 8);
    assert.equal(got.rowsTrained, 5 * 4); // each rank trained on its half of every global batch
    assert.match(got.lrFindError, /one of 2 started by mpirun; run the learning-rate range test in a single process/);
    assert.match(got.smallBatchError, /a training batch of 1 row cannot give each of 2 ranks a row/);
    assertClose(got, want);
  }
});

test('Trainer under mpirun: a killed rank ends the job, its checkpoint loads, the resume is bitwise, another world size is refused', (t) => {
  if (nativeOnly) return t.skip(skipWhy);
  if (!needMpirun(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'kiln-ddp-'));
  try {
    const whole = join(dir, 'whole');
    const cut = join(dir, 'cut');
    const [want] = results<Out>(onRanks(2, { steps: 6, runDir: whole }));
    assert.deepEqual(readdirSync(join(whole, 'checkpoints')).sort(), ['step-2', 'step-4', 'step-6']);
    assert.equal(kiln.train.readCheckpoint(join(whole, 'checkpoints', 'step-6')).state.world_size, 2);
    // Rank 1 is SIGKILLed after step 3: mpirun ends the job with an error; step-2 is whole.
    const killed = onRanks(2, { steps: 6, runDir: cut, killAt: 3 }, 40_000);
    assert.notEqual(killed.status, 0, `${killed.stdout}${killed.stderr}`);
    assert.notEqual(killed.signal, 'SIGTERM', 'mpirun hung after the kill');
    assert.match(killed.stdout, /RANK 1 KILLED AT STEP 3/);
    assert.deepEqual(kiln.train.listCheckpoints(join(cut, 'checkpoints')).map((c) => c.step), [2]);
    assert.equal(kiln.train.readCheckpoint(join(cut, 'checkpoints', 'step-2')).state.step, 2);
    // A single process may not continue it without re-sharding.
    const refused = single({ steps: 6, runDir: cut, resume: true });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /was written by a run of 2 processes \(world_size 2\), but this run has 1 process/);
    assert.match(refused.stderr, /mpirun -np 2.*--reshard/s);
    // The same world size resumes from step 2 to 6: bitwise the uninterrupted run.
    const [resumed] = results<Out>(onRanks(2, { steps: 6, runDir: cut, resume: true }));
    assert.equal(resumed.result.resumedFrom, 2);
    assert.deepEqual(resumed.params, want.params);
    assert.deepEqual(resumed.losses, want.losses.slice(2));
    assert.equal(resumed.valLoss, want.valLoss);
    // Re-sharding to one process is accepted (the global batch stays the source's: same numbers, to float32 rounding).
    const [reshard] = results<Out>(single({ steps: 8, runDir: whole, resume: true, reshard: true }));
    assert.equal(reshard.result.resumedFrom, 6);
    assert.equal(reshard.result.step, 8);
    assert.equal(kiln.train.readCheckpoint(join(whole, 'checkpoints', 'step-8')).state.world_size, 1);
    assert.ok(existsSync(join(whole, 'metrics.jsonl')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    for (const r of [0, 1]) rmSync(`${dir}.fit-rank${r}`, { force: true });
  }
});

test('Trainer under mpirun: Ctrl-C to mpirun (SIGTERM to every rank) stops all ranks after the same step, with a checkpoint', async (t) => {
  if (nativeOnly) return t.skip(skipWhy);
  if (!needMpirun(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'kiln-ddp-sig-'));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };
    const child = spawn('mpirun', ['--oversubscribe', '-np', '2', process.execPath, '--import', 'tsx', 'test/distributed/fixtures/trainer-mlp.ts',
      JSON.stringify({ steps: 1_000_000, runDir: dir, every: 1_000_000 })], { env });
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    const t0 = Date.now();
    while (!existsSync(join(dir, 'metrics.jsonl')) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGINT');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    child.kill('SIGKILL');
    const fit = [0, 1].map((r) => (existsSync(`${dir}.fit-rank${r}`) ? readFileSync(`${dir}.fit-rank${r}`, 'utf8') : 'none'));
    assert.match(fit[0], /^interrupted \d+ \S+$/, stdout.slice(0, 2000));
    assert.equal(fit[1], fit[0]);
    const stops = fit.map((f) => Number(f.split(' ')[1]));
    const ck = kiln.train.readCheckpoint(join(dir, 'checkpoints', `step-${stops[0]}`));
    assert.equal(ck.state.world_size, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    for (const r of [0, 1]) rmSync(`${dir}.fit-rank${r}`, { force: true });
  }
});

test('Trainer under mpirun: a non-finite loss on one rank only is skipped by both ranks (skipNonFinite), which stay equal', (t) => {
  if (nativeOnly) return t.skip(skipWhy);
  if (!needMpirun(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'kiln-ddp-nan-'));
  try {
    const run = join(dir, 'run');
    const [out] = results<Out>(onRanks(2, { steps: 4, nanAt: 2, runDir: run }));
    assert.equal(out.result.step, 4);
    assert.equal(out.losses.length, 4);
    assert.ok(out.losses.every(Number.isFinite));
    const fit = [0, 1].map((r) => readFileSync(`${run}.fit-rank${r}`, 'utf8'));
    assert.match(fit[0], /^completed 4 /);
    assert.equal(fit[1], fit[0]); // the same parameters on both ranks
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Ctrl-C: the first SIGINT to a training child finishes the current step, writes a checkpoint and exits
// cleanly (code 0); resuming then gives bitwise the losses of a run never stopped.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readMetrics } from '../../src/train/metrics.js';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { CHILD_STEPS, childTrainer } from './fixtures/child-trainer.js';

const child = 'test/train/fixtures/resume-child.ts';
const STEPS = CHILD_STEPS;
const tmp = (): string => mkdtempSync(join(tmpdir(), 'kiln-kill-'));

interface Run { code: number | null; signal: string | null; stdout: string; stderr: string }

/** Runs the child; `killWhen` sees the output so far and returns a signal to send, once. */
function runChild(runDir: string, mode: 'fresh' | 'resume', env: Record<string, string> = {},
  killWhen?: (stdout: string, stderr: string) => NodeJS.Signals | null): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, runDir, mode], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let sent = false;
    const check = (): void => {
      if (sent || !killWhen) return;
      const sig = killWhen(stdout, stderr);
      if (sig) {
        sent = true;
        p.kill(sig);
      }
    };
    p.stdout.on('data', (d) => { stdout += d; check(); });
    p.stderr.on('data', (d) => { stderr += d; check(); });
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const losses = (runDir: string): Map<number, number> =>
  new Map(readMetrics(join(runDir, 'metrics.jsonl')).filter((l) => l.loss !== undefined).map((l) => [l.step as number, l.loss as number]));

let reference: Map<number, number> | null = null;
async function referenceLosses(): Promise<Map<number, number>> {
  if (reference) return reference;
  // The uninterrupted run, in this process (same code and backend as the children).
  const dir = tmp();
  await childTrainer(dir, 'fresh').fit();
  reference = losses(dir);
  assert.equal(reference.size, STEPS);
  return reference;
}

function assertSame(dir: string, ref: Map<number, number>): void {
  const got = losses(dir);
  assert.equal(got.size, STEPS, `metrics.jsonl has every step once: ${[...got.keys()].join(',')}`);
  for (const [step, loss] of ref) assert.ok(Object.is(got.get(step), loss), `step ${step}: ${got.get(step)} vs ${loss}`);
}

test('the first SIGINT finishes the step, writes a checkpoint and exits cleanly; resume is exact', async () => {
  const ref = await referenceLosses();
  const dir = tmp();
  const stopped = await runChild(dir, 'fresh', { KILN_CHILD_STEP_MS: '40' }, (out) => (/STEP 5\n/.test(out) ? 'SIGINT' : null));
  assert.equal(stopped.code, 0, stopped.stderr);
  const m = /DONE (\d+) interrupted/.exec(stopped.stdout);
  assert.ok(m, stopped.stdout);
  const last = Number(m[1]);
  assert.ok(last >= 5 && last < STEPS);
  assert.equal(listCheckpoints(join(dir, 'checkpoints'))[0].step, last);
  assert.ok(existsSync(join(dir, `checkpoints/step-${last}/trainer_state.json`)));
  const resumed = await runChild(dir, 'resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  assertSame(dir, ref);
});

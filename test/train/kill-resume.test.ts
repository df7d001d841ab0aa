// Exact resume after kill -9: a child process training with checkpoints every step is killed (in the middle
// of training, and in the middle of writing a checkpoint), resumed in a new child, and its losses from the
// resume point on must be bitwise those of a run that was never stopped.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { STEPS, assertSame, referenceLosses, runChild, tmp } from './fixtures/child-run.js';

test('kill -9 in the middle of training, then resume: bitwise the same losses', async () => {
  const ref = await referenceLosses();
  const dir = tmp();
  const killed = await runChild(dir, 'fresh', { KILN_CHILD_STEP_MS: '40' }, (out) => (/STEP 6\n/.test(out) ? 'SIGKILL' : null));
  assert.equal(killed.signal, 'SIGKILL');
  const newest = listCheckpoints(join(dir, 'checkpoints'))[0].step;
  assert.ok(newest >= 5 && newest < STEPS, `newest checkpoint ${newest}`);
  const resumed = await runChild(dir, 'resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, new RegExp(`STEP ${newest + 1}\\n`));
  assert.doesNotMatch(resumed.stdout, new RegExp(`STEP ${newest}\\n`));
  assertSame(dir, ref);
});

test('kill -9 while a checkpoint is being written: no half checkpoint, resume is exact', async () => {
  const ref = await referenceLosses();
  const dir = tmp();
  const killed = await runChild(dir, 'fresh', { KILN_CHECKPOINT_PAUSE_MS: '150' },
    (_out, err) => (/writing checkpoint step-4: optimizer\.safetensors/.test(err) ? 'SIGKILL' : null));
  assert.equal(killed.signal, 'SIGKILL');
  const names = readdirSync(join(dir, 'checkpoints'));
  assert.ok(!names.includes('step-4'), `no step-4 under its final name: ${names.join()}`);
  assert.ok(names.some((n) => n.startsWith('.tmp-step-4')), `the temporary folder is left: ${names.join()}`);
  assert.equal(listCheckpoints(join(dir, 'checkpoints'))[0].step, 3);
  const resumed = await runChild(dir, 'resume');
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /^STEP 4\n/);
  assert.ok(!readdirSync(join(dir, 'checkpoints')).some((n) => n.startsWith('.tmp-')), 'stale temporary folders are cleaned up');
  assertSame(dir, ref);
});


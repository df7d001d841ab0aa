// Ctrl-C: the first SIGINT to a training child finishes the current step, writes a checkpoint and exits
// cleanly (code 0); resuming then gives bitwise the losses of a run never stopped.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { STEPS, assertSame, referenceLosses, runChild, tmp } from './fixtures/child-run.js';

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

// Atomic writes: the file appears whole under its final name, no temporary is left, folders are replaced
// atomically, and stale temporaries (from a killed writer) are recognised and removed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeStaleTemps, renameDirAtomic, tempPathFor, writeFileAtomic } from '../../src/io/atomic.js';

test('writeFileAtomic writes whole files, creates folders, leaves no temporary', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-atomic-'));
  const p = join(dir, 'a/b/config.json');
  writeFileAtomic(p, '{"x":1}');
  writeFileAtomic(p, new Uint8Array([123, 125]));
  assert.equal(readFileSync(p, 'utf8'), '{}');
  assert.deepEqual(readdirSync(join(dir, 'a/b')), ['config.json']);
  assert.throws(() => writeFileAtomic(join(p, 'under-a-file'), 'x'));
});

test('renameDirAtomic replaces a folder; removeStaleTemps removes only temporaries', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-atomic-'));
  const dest = join(dir, 'step-1');
  for (const v of ['old', 'new']) {
    const tmp = tempPathFor(dest);
    mkdirSync(tmp);
    writeFileSync(join(tmp, 'f'), v);
    renameDirAtomic(tmp, dest);
  }
  assert.equal(readFileSync(join(dest, 'f'), 'utf8'), 'new');
  assert.deepEqual(readdirSync(dir), ['step-1']);
  mkdirSync(tempPathFor(join(dir, 'step-2')));
  writeFileSync(tempPathFor(join(dir, 'x.json')), 'partial');
  assert.equal(removeStaleTemps(dir).length, 2);
  assert.deepEqual(readdirSync(dir), ['step-1']);
});

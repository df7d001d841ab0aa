// Atomic writes: the file appears whole under its final name, no temporary is left, folders are replaced
// atomically (or kept, for caches), files written in pieces appear only on commit, and stale temporaries (from a killed writer) are recognised and removed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  AtomicFileWriter, makeDirs, processAlive, removeStaleTemps, renameAtomic, renameDirAtomic, tempPathFor, writeFileAtomic,
} from '../../src/io/atomic.js';

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
  // Temporaries of a dead writer go; this live process's own stay (another writer may be at work).
  const dead = deadPid();
  mkdirSync(join(dir, `.tmp-step-2-${dead}-1700000000000-0`));
  writeFileSync(join(dir, `.tmp-x.json-${dead}-1700000000000-1`), 'partial');
  const mine = tempPathFor(join(dir, 'y.json'));
  writeFileSync(mine, 'in progress');
  assert.equal(removeStaleTemps(dir).length, 2);
  assert.deepEqual(readdirSync(dir).sort(), [basename(mine), 'step-1'].sort());
});

/** A pid no process has: a child that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const pid = Number(r.stdout);
  assert.ok(pid > 0 && !processAlive(pid));
  return pid;
}

test('makeDirs creates nested folders and fails clearly where mkdirSync would loop (/proc)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-atomic-'));
  makeDirs(join(dir, 'a/b/c'));
  assert.ok(existsSync(join(dir, 'a/b/c')));
  makeDirs(join(dir, 'a/b/c')); // already there: fine
  writeFileSync(join(dir, 'file'), 'x');
  assert.throws(() => makeDirs(join(dir, 'file/sub'), 'run folder'), /cannot create the run folder .*exists and is not a folder/);
  if (existsSync('/proc/self')) assert.throws(() => makeDirs('/proc/kiln-x/y', 'run folder'), /cannot create the run folder '\/proc\/kiln-x\/y': ENOENT/);
});

test('renameDirAtomic with keepExisting keeps a folder another writer finished first', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-atomic-'));
  const dest = join(dir, 'cache');
  for (const v of ['first', 'second']) {
    const tmp = tempPathFor(dest);
    mkdirSync(tmp);
    writeFileSync(join(tmp, 'f'), v);
    assert.equal(renameDirAtomic(tmp, dest, { keepExisting: true }), v === 'first');
  }
  assert.equal(readFileSync(join(dest, 'f'), 'utf8'), 'first');
  assert.deepEqual(readdirSync(dir), ['cache']);
});

test('AtomicFileWriter: nothing under the final name until commit; abort leaves nothing; renameAtomic moves', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-atomic-'));
  const p = join(dir, 'sub/data.bin');
  const w = new AtomicFileWriter(p);
  w.writeAt(new Uint8Array([0, 0, 3, 4]), 0);
  w.writeAt(new Uint8Array([1, 2]), 0);
  assert.equal(existsSync(p), false);
  w.commit();
  assert.deepEqual([...readFileSync(p)], [1, 2, 3, 4]);
  assert.throws(() => w.writeAt(new Uint8Array([9]), 0), /already committed or aborted/);
  w.abort(); // a no-op once committed
  assert.deepEqual([...readFileSync(p)], [1, 2, 3, 4]);
  const dropped = new AtomicFileWriter(join(dir, 'sub/other.bin'));
  dropped.writeAt(new Uint8Array([5]), 0);
  dropped.abort();
  assert.deepEqual(readdirSync(join(dir, 'sub')), ['data.bin']);
  renameAtomic(p, join(dir, 'moved.bin'));
  assert.deepEqual([...readFileSync(join(dir, 'moved.bin'))], [1, 2, 3, 4]);
  assert.deepEqual(readdirSync(join(dir, 'sub')), []);
});

// Big fresh tensors ask for transparent huge pages (as numpy does from 4 MiB): on a VM every 4 KiB page's first
// touch costs about 10 us, so a 32 MiB result should fault a few dozen times, not 8192. Counted with the
// process's minor page faults, which do not depend on the machine's load. Native backend only (the reference
// backend has no way to advise the kernel), and only where the kernel offers huge pages on request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as kiln from '../../src/index.js';

const native = kiln.backendInfo().name === 'native';
const thp = ((): string | null => {
  try {
    return /\[(always|madvise)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
})();
const skip = !native ? 'native backend only' : !thp ? 'this kernel offers no transparent huge pages' : false;

const PAGES = 8192; // 32 MiB of float32 in 4 KiB pages
// In 4 KiB pages a 32 MiB buffer faults at least 8192 times; in 2 MiB pages 16. A kernel whose memory is fragmented
// (long uptime) hands out part of a region in small pages, so anything well under half the small-page count shows
// the advice took effect.
const HUGE_MAX_FAULTS = PAGES / 2;
const faultsOf = (f: () => unknown): number => {
  const before = process.resourceUsage().minorPageFault;
  f();
  return process.resourceUsage().minorPageFault - before;
};

test('a fresh 32 MiB tensor faults in huge pages, not 4 KiB ones', { skip }, () => {
  const faults = faultsOf(() => kiln.zeros([PAGES * 1024]));
  assert.ok(faults < HUGE_MAX_FAULTS, `${faults} page faults for ${PAGES} pages`);
});

test('an uninitialised 32 MiB result (a kernel writes it whole) faults in huge pages too', { skip }, () => {
  const a = kiln.ones([4096, 2048]);
  const faults = faultsOf(() => kiln.noGrad(() => a.mul(2)));
  assert.ok(faults < HUGE_MAX_FAULTS, `${faults} page faults for ${PAGES} pages`);
});

// Where the kernel gives every region huge pages ('always'), turning the advice off changes nothing to count.
test('KILN_HUGE_PAGES=0 turns the advice off', { skip: skip || (thp === 'always' ? 'the kernel uses huge pages everywhere (always)' : false) }, () => {
  const script = `import * as kiln from './src/index.js';
    const before = process.resourceUsage().minorPageFault; kiln.zeros([${PAGES * 1024}]);
    console.log(process.resourceUsage().minorPageFault - before);`;
  const run = (value: string): number => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script],
      { env: { ...process.env, KILN_HUGE_PAGES: value }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return Number(r.stdout.trim());
  };
  const off = run('0');
  const on = run('1');
  assert.ok(off > PAGES / 2, `small pages when turned off: ${off} faults`);
  assert.ok(on < off / 2, `huge pages when on: ${on} faults against ${off} when off`);
});

test('data() of a big tensor hands out its copy in huge pages, equal to the tensor', { skip }, () => {
  const t = kiln.arange(PAGES * 1024);
  let copy: ArrayLike<number> = [];
  const faults = faultsOf(() => { copy = t.data(); });
  assert.ok(faults < HUGE_MAX_FAULTS, `${faults} page faults for ${PAGES} pages`);
  assert.equal(copy.length, PAGES * 1024);
  assert.equal(copy[12345], 12345);
  assert.notEqual(copy, t.storage, 'a copy, not the storage');
});

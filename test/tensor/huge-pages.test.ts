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
const faultsOf = (f: () => unknown): number => {
  const before = process.resourceUsage().minorPageFault;
  f();
  return process.resourceUsage().minorPageFault - before;
};

test('a fresh 32 MiB tensor faults in huge pages, not 4 KiB ones', { skip }, () => {
  const faults = faultsOf(() => kiln.zeros([PAGES * 1024]));
  assert.ok(faults < PAGES / 8, `${faults} page faults for ${PAGES} pages`);
});

test('an uninitialised 32 MiB result (a kernel writes it whole) faults in huge pages too', { skip }, () => {
  const a = kiln.ones([4096, 2048]);
  const faults = faultsOf(() => kiln.noGrad(() => a.mul(2)));
  assert.ok(faults < PAGES / 8, `${faults} page faults for ${PAGES} pages`);
});

test('KILN_HUGE_PAGES=0 turns the advice off', { skip }, () => {
  const script = `import * as kiln from './src/index.js';
    const before = process.resourceUsage().minorPageFault; kiln.zeros([${PAGES * 1024}]);
    console.log(process.resourceUsage().minorPageFault - before);`;
  const run = (value: string): number => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script],
      { env: { ...process.env, KILN_HUGE_PAGES: value }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return Number(r.stdout.trim());
  };
  assert.ok(run('0') > PAGES / 2, 'small pages when turned off');
  assert.ok(run('1') < PAGES / 8, 'huge pages when on');
});

test('data() of a big tensor hands out its copy in huge pages, equal to the tensor', { skip }, () => {
  const t = kiln.arange(PAGES * 1024);
  let copy: ArrayLike<number> = [];
  const faults = faultsOf(() => { copy = t.data(); });
  assert.ok(faults < PAGES / 8, `${faults} page faults for ${PAGES} pages`);
  assert.equal(copy.length, PAGES * 1024);
  assert.equal(copy[12345], 12345);
  assert.notEqual(copy, t.storage, 'a copy, not the storage');
});

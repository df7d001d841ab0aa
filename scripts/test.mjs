// Runs every test file under test/ once per backend (reference `js`, then `native`), with Node's test runner,
// and prints one closing line with the totals. Extra arguments filter test files by substring.

import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = findTests('test').filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
const backends = (process.env.KILN_TEST_BACKENDS ?? 'js,native').split(',').filter(Boolean);
let passed = 0;
let failed = 0;
let skipped = 0;
for (const backendName of backends) {
  console.log(`\n=== tests on the ${backendName} backend (${files.length} files) ===`);
  const res = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', ...files], {
    env: { ...process.env, KILN_BACKEND: backendName, KILN_TEST: '1' },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  process.stdout.write(res.stdout ?? '');
  process.stderr.write(res.stderr ?? '');
  const count = (key) => Number((res.stdout ?? '').match(new RegExp(`^# ${key} (\\d+)$`, 'm'))?.[1] ?? 0);
  passed += count('pass');
  failed += count('fail') + count('cancelled');
  skipped += count('skipped') + count('todo');
  if (res.status !== 0 && count('fail') + count('cancelled') === 0) failed += 1; // a crash with no failing test
}
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);

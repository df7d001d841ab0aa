// Runs every test file under test/ once per backend (reference `js`, then `native`), with Node's test runner,
// and prints one closing line with the totals. Extra arguments filter test files by substring.
// The `wasm` backend (the same C kernels in WebAssembly) runs the kernel-level part of the suite: the backend
// conformance, tensor, nn, optim (golden) and models tests (WASM_TESTS), not the whole suite a third time: the rest
// (CLI, server, recipes, data) calls the same kernels through the same Backend interface, and the suite's time on
// 2 cores stays within CI's budget. KILN_TEST_BACKENDS=js,native,wasm (the default) chooses the passes;
// KILN_WASM_TESTS=all runs every file on wasm too.
// Every skipped test is listed with its reason. A test that skips because a prerequisite from outside Node is
// missing (python3-torch, python3-jinja2, chromium: reason starting "missing prerequisite:", see
// test/helpers/prereq.ts) fails the run when CI=true, since .ci/run installs all of them; other skips (a test that
// runs in one backend's pass only) never do.
// Each pass gets its own temporary folder (TMPDIR, which os.tmpdir() and the CLI processes the tests start follow),
// removed when the pass ends, pass or fail: not every test removes the run, model and checkpoint folders it makes
// (about 150 of them a run, and a day of runs left 1,374 folders, 188 MB). KILN_KEEP_TEST_TMP=1 keeps them and
// prints where.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
const backends = (process.env.KILN_TEST_BACKENDS ?? 'js,native,wasm').split(',').filter(Boolean);
const WASM_TESTS = ['test/backend/', 'test/tensor/', 'test/nn/', 'test/optim/', 'test/models/'];
const wasmAll = process.env.KILN_WASM_TESTS === 'all';
/** The files a backend's pass runs: every file, except on wasm (WASM_TESTS unless KILN_WASM_TESTS=all). */
const filesFor = (name) => (name !== 'wasm' || wasmAll ? files : files.filter((f) => WASM_TESTS.some((d) => f.startsWith(d))));
/**
 * Kills what is left of a pass that ran past its time: the timeout kills `node --test`, not the test file's own
 * process under it, which a hung kernel keeps alive (one held a core for 40 minutes after a CI-length run). The
 * pass's processes are those whose environment holds its TMPDIR (Linux /proc; elsewhere nothing is found).
 */
function killPassProcesses(passTmp) {
  let killed = 0;
  let pids = [];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return 0;
  }
  for (const pid of pids) {
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`TMPDIR=${passTmp}`)) continue;
      process.kill(Number(pid), 'SIGKILL');
      killed++;
    } catch {
      // gone already, or not ours to read
    }
  }
  return killed;
}

let passed = 0;
let failed = 0;
let skipped = 0;
const MISSING_PREREQUISITE = 'missing prerequisite:';
/** One backend's pass may take this long (KILN_TEST_PASS_MINUTES, default 20): on 2 cores the longest takes ~8. */
const PASS_TIMEOUT_MS = Number(process.env.KILN_TEST_PASS_MINUTES ?? 20) * 60000;
const ci = process.env.CI === 'true' || process.env.CI === '1';
const skips = [];
for (const backendName of backends) {
  const mine = filesFor(backendName);
  if (mine.length === 0) continue;
  console.log(`\n=== tests on the ${backendName} backend (${mine.length} files) ===`);
  // The tests are Node programs: the preload registers the native and wasm backends and file access, as Kiln's node
  // entry does, for test files that import a browser-safe module (src/tensor/..., src/models/...) without the entry.
  const passTmp = mkdtempSync(join(tmpdir(), `kiln-test-${backendName}-`));
  const res = spawnSync(process.execPath, ['--import', 'tsx', '--import', './src/node.ts', '--test', '--test-reporter=tap', ...mine], {
    env: { ...process.env, KILN_BACKEND: backendName, KILN_TEST: '1', TMPDIR: passTmp },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    // A hung test (a kernel that never returns blocks its file's event loop, so --test-timeout cannot fire) must
    // fail the run with what it printed so far, not use up CI's whole budget in silence.
    timeout: PASS_TIMEOUT_MS,
    killSignal: 'SIGKILL',
  });
  process.stdout.write(res.stdout ?? '');
  process.stderr.write(res.stderr ?? '');
  if (process.env.KILN_KEEP_TEST_TMP === '1') console.log(`the ${backendName} pass's temporary files are kept in ${passTmp}`);
  else rmSync(passTmp, { recursive: true, force: true, maxRetries: 3 });
  if (res.error?.code === 'ETIMEDOUT') {
    failed += 1;
    const left = killPassProcesses(passTmp);
    if (left > 0) console.log(`\nstopped ${left} test process(es) of the hung pass that outlived its runner`);
    console.log(`\nthe ${backendName} pass ran past ${PASS_TIMEOUT_MS / 60000} minutes and was stopped: a test hung (the files that finished are listed above)`);
    continue;
  }
  const count = (key) => Number((res.stdout ?? '').match(new RegExp(`^# ${key} (\\d+)$`, 'm'))?.[1] ?? 0);
  passed += count('pass');
  failed += count('fail') + count('cancelled');
  skipped += count('skipped') + count('todo');
  if (res.status !== 0 && count('fail') + count('cancelled') === 0) failed += 1; // a crash with no failing test
  for (const m of (res.stdout ?? '').matchAll(/^\s*ok \d+ - (.*?) # SKIP ?(.*)$/gm)) {
    skips.push({ backend: backendName, name: m[1], reason: m[2].trim() });
  }
}
const required = skips.filter((s) => s.reason.startsWith(MISSING_PREREQUISITE));
if (skips.length > 0) {
  console.log(`\nskipped tests:`);
  for (const s of skips) console.log(`  [${s.backend}] ${s.name}: ${s.reason || '(no reason given)'}`);
}
if (ci && required.length > 0) {
  failed += required.length;
  console.log(`\nCI=true: ${required.length} skipped test(s) lack a prerequisite that .ci/run installs; counted as failures.`);
}
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped${required.length ? ` (${required.length} for a missing prerequisite)` : ''}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);

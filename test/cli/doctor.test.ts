import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { diagnose, formatReport } from '../../src/cli/doctor.js';
import { backendInfo } from '../../src/backend/node.js';
import { needMpirun } from '../distributed/helpers.js';
import { existsSync, readFileSync } from 'node:fs';

const readProcCpuinfo = (): string => (existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '');

const kiln = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

test('doctor reports the backend in use and checks the native GEMM against the reference', () => {
  const r = diagnose();
  assert.deepEqual(r.backend, backendInfo());
  assert.ok(r.cpu.cores >= 1 && r.node.startsWith('v'));
  if (r.native.available) {
    assert.ok(['avx512', 'avx2', 'neon', 'scalar'].includes(r.native.isa ?? ''), `isa ${r.native.isa}`);
    // The check runs on the backend in use; the reference backend has nothing to check against itself.
    if (r.backend.name !== 'js') assert.ok(r.check && r.check.agrees && r.check.gflops512 > 0, JSON.stringify(r.check));
    assert.match(formatReport(r), /native addon: loaded; \w+ kernels, \d+ of \d+ pool threads in use/);
    assert.ok(r.bf16 && r.bf16.agrees, JSON.stringify(r.bf16));
    const hasBf16 = /avx512_bf16/.test(readProcCpuinfo());
    if (process.platform === 'linux' && r.native.isa === 'avx512') assert.equal(r.bf16.cpu, hasBf16);
    assert.match(formatReport(r), r.bf16.kernels === 'vdpbf16ps' ? /bf16: AVX512_BF16 present; --precision bf16 runs vdpbf16ps/
      : /bf16: .*--precision bf16 rounds inputs to bf16 and runs the float32 kernels/);
  }
  if (r.backend.name === 'js') assert.match(formatReport(r), /backend in use: js, the reference TypeScript backend/);
  assert.ok(r.wasm.available, `wasm: ${r.wasm.error}`);
  assert.equal(r.wasm.isa, 'simd128');
  assert.match(formatReport(r), /wasm backend: loads; simd128 kernels, \d+ of \d+ pool threads/);
});

test('kiln doctor says why the native backend is unavailable, how to fix it, and exits 1', () => {
  const res = kiln(['doctor'], { KILN_NATIVE_PATH: '/nonexistent/kiln_native.node', KILN_BACKEND: '' });
  assert.equal(res.status, 1, res.stderr);
  assert.match(res.stdout, /backend in use: wasm, the same kernels in WebAssembly \(simd128, \d+ threads/);
  assert.match(res.stdout, /check: wasm GEMM agrees with the reference/);
  assert.match(res.stdout, /native addon: unavailable: KILN_NATIVE_PATH is \/nonexistent\/kiln_native.node, which does not exist/);
  assert.match(res.stdout, /fix: install a C compiler/);
  const json = kiln(['doctor', '--json'], { KILN_NATIVE_PATH: '/nonexistent/kiln_native.node', KILN_BACKEND: '' });
  const report = JSON.parse(json.stdout) as { native: { available: boolean }; backend: { name: string; reason: string } };
  assert.equal(report.native.available, false);
  assert.equal(report.backend.name, 'wasm');
  assert.match(report.backend.reason, /KILN_NATIVE_PATH/);
  const none = kiln(['doctor'], { KILN_NATIVE_PATH: '/nonexistent/kiln_native.node', KILN_WASM_PATH: '/nonexistent/kiln.wasm', KILN_BACKEND: '' });
  assert.equal(none.status, 1, none.stderr);
  assert.match(none.stdout, /backend in use: js, the reference TypeScript backend/);
  assert.match(none.stdout, /wasm backend: unavailable: \/nonexistent\/kiln\.wasm is missing/);
});

test('kiln doctor reports whether the MPI binding is built, or why not', (t) => {
  const r = diagnose();
  assert.equal(r.mpi.launched, false);
  if (r.mpi.available) assert.match(formatReport(r), /MPI: binding built \(.+\); not started by mpirun, so a world of 1/);
  const res = kiln(['doctor'], { KILN_MPI_PATH: '/nonexistent/kiln_mpi.node' });
  assert.match(res.stdout, /MPI: unavailable \(single-process training only\): KILN_MPI_PATH is \/nonexistent\/kiln_mpi.node, which does not exist/);
  assert.match(res.stdout, /apt install openmpi-bin libopenmpi-dev/);
  if (!needMpirun(t)) return;
  const env: NodeJS.ProcessEnv = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };
  const run = spawnSync('mpirun', ['--oversubscribe', '-np', '2', process.execPath, '--import', 'tsx', 'src/cli/main.ts', 'doctor'],
    { encoding: 'utf8', env, timeout: 60_000 });
  assert.match(run.stdout, /MPI: rank 0 of 2/);
  assert.match(run.stdout, /MPI: rank 1 of 2/);
});

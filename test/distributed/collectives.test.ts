import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mpirun, needMpirun, results } from './helpers.js';

interface Out { rank: number; world: number; transport: string; sum: number[]; avg: number[]; bigOk: boolean; bcast: number[]; dtypeError: string }

for (const np of [2, 3]) {
  test(`all-reduce (sum, avg, 100k elements), broadcast and barrier give the known values on ${np} ranks`, (t) => {
    if (!needMpirun(t)) return;
    const outs = results<Out>(mpirun(np, 'collectives.ts')).sort((a, b) => a.rank - b.rank);
    assert.deepEqual(outs.map((o) => o.rank), [...Array(np).keys()]);
    const ranks = [...Array(np).keys()];
    const total = (f: (r: number) => number) => ranks.reduce((s, r) => s + f(r), 0);
    for (const o of outs) {
      assert.equal(o.world, np);
      assert.equal(o.transport, 'mpi');
      assert.deepEqual(o.sum, [total((r) => r + 1), total((r) => 10 * r), total((r) => -r)]);
      assert.deepEqual(o.avg, [total((r) => r) / np, total((r) => 2 * r + 1) / np]);
      assert.ok(o.bigOk);
      assert.deepEqual(o.bcast, [7, 8, 9]);
      assert.match(o.dtypeError, /float32 tensors, got float64/);
    }
  });
}

test('a rank killed with SIGKILL mid-run ends the job with an error within a bounded time', (t) => {
  if (!needMpirun(t)) return;
  const t0 = Date.now();
  const res = mpirun(2, 'killed-rank.ts', [], 40_000);
  const seconds = (Date.now() - t0) / 1000;
  assert.notEqual(res.signal, 'SIGTERM', `mpirun was still running after 40 s (hung): ${res.stdout}${res.stderr}`);
  assert.notEqual(res.status, 0);
  assert.match(res.stdout, /RANK 1 RUNNING/); // it died mid-run, not at start-up
  assert.ok(seconds < 30, `took ${seconds} s`);
});

test('under mpirun with several processes but no MPI binding, init names the packages to install', () => {
  const res = spawnSync(process.execPath, ['--import', 'tsx', '-e',
    "import('./src/index.ts').then((k) => k.distributed.init())"], {
    encoding: 'utf8', env: { ...process.env, OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '0', KILN_MPI_PATH: '/nonexistent/kiln_mpi.node' },
  });
  assert.notEqual(res.status, 0);
  assert.match(res.stderr, /one of 2 started by mpirun, but Kiln's MPI binding is unavailable \(KILN_MPI_PATH is \/nonexistent\/kiln_mpi.node/);
  assert.match(res.stderr, /openmpi-bin libopenmpi-dev/);
});

// Runs a fixture under `mpirun --oversubscribe -np N`. Without mpirun, tests skip with a message, except under
// CI=true, where they fail: a CI machine without Open MPI would otherwise pass by testing nothing.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';

const hasMpirun = (() => {
  const r = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
})();

/** True when the test may go on; skips it (or fails it under CI) when mpirun is missing. */
export function needMpirun(t: TestContext): boolean {
  if (hasMpirun) return true;
  const why = 'mpirun is not installed (Debian/Ubuntu: apt install openmpi-bin libopenmpi-dev, then node scripts/build-native.mjs)';
  if (process.env.CI === 'true' || process.env.CI === '1') assert.fail(`${why}; the distributed tests cannot run and CI=true forbids skipping them`);
  t.skip(why);
  return false;
}

export function mpirun(np: number, fixture: string, args: (string | number)[] = [], timeoutMs = 30_000): SpawnSyncReturns<string> {
  return mpirunScript(np, `test/distributed/fixtures/${fixture}`, args, timeoutMs);
}

/** Runs a TypeScript file of the repository (e.g. src/cli/main.ts) under `mpirun --oversubscribe -np N`. */
export function mpirunScript(np: number, script: string, args: (string | number)[] = [], timeoutMs = 30_000): SpawnSyncReturns<string> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (process.getuid?.() === 0) Object.assign(env, { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' });
  return spawnSync('mpirun', ['--oversubscribe', '-np', String(np), process.execPath, '--import', 'tsx',
    script, ...args.map(String)], { encoding: 'utf8', env, timeout: timeoutMs });
}

/** The `RESULT {json}` lines a run printed, parsed. */
export function results<T>(res: SpawnSyncReturns<string>): T[] {
  assert.equal(res.status, 0, `mpirun failed (status ${res.status}, signal ${res.signal}):\n${res.stdout}\n${res.stderr}`);
  return res.stdout.split('\n').filter((l) => l.startsWith('RESULT ')).map((l) => JSON.parse(l.slice(7)) as T);
}

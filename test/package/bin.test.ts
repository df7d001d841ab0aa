// `npx kiln` in a checkout whose dist/ was rebuilt: npx keeps a link to the project's bin from its first run, and
// npm made the bin executable only when it made that link, so a bin that tsc rewrote as mode 644 failed with
// "Permission denied". The build (scripts/postbuild.mjs) marks it executable; this test rebuilds dist/ in a copy of
// the project and runs `npx kiln --version` before and after.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..', '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

test('npx kiln --version works after dist/ is deleted and rebuilt', { skip: process.env.KILN_BACKEND === 'js' ? 'runs in the native pass only (it does not use a backend)' : false, timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bin-'));
  try {
    for (const f of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) cpSync(join(root, f), join(dir, f));
    cpSync(join(root, 'src'), join(dir, 'src'), { recursive: true });
    cpSync(join(root, 'scripts'), join(dir, 'scripts'), { recursive: true });
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
    // Scripts stay off: npx would otherwise run the project's prepare (a build) and install (the C compile).
    const env = { ...process.env, npm_config_cache: join(dir, '.npm'), npm_config_ignore_scripts: 'true',
      npm_config_yes: 'true', npm_config_update_notifier: 'false' };
    const run = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, { cwd: dir, env, encoding: 'utf8', timeout: 240_000 });
      assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed: ${r.stdout}${r.stderr}${r.error ?? ''}`);
      return r.stdout.trim();
    };
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    // The first run links the bin from the dist/ that `npm test` built (a copy: one build less to wait for).
    cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true });
    assert.equal(run(npx, ['kiln', '--version']), version);
    rmSync(join(dir, 'dist'), { recursive: true });
    run(npm, ['run', 'build']);
    assert.ok((statSync(join(dir, 'dist', 'cli', 'main.js')).mode & 0o111) !== 0, 'dist/cli/main.js is not executable');
    assert.equal(run(npx, ['kiln', '--version']), version);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

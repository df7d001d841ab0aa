// Checks the npm package as a user gets it (.ci/run runs it after the tests): `npm pack`, then
// `npm install <tarball> --ignore-scripts` into an empty project, so no install script and no compiler run. It fails
// unless
//   - the tarball holds no tests, tools, benchmarks, CI files or source maps, and does hold the prebuilt addon;
//   - node_modules is at most 25 MB (it prints the size and the package count: the figures of the README);
//   - `import('kiln')` runs on the native backend from the prebuilt addon (no build/ folder exists);
//   - `npx kiln --version` and `npx kiln doctor` start;
//   - `npx kiln pretrain` trains a few steps on the bundled Brown corpus, and `kiln serve` on that run, without
//     fastify, names `npm install fastify`.
// Needs the npm registry (or npm's cache) for Kiln's dependencies. KILN_CHECK_KEEP=1 keeps the scratch folder.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MAX_MB = 25;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
const work = mkdtempSync(join(tmpdir(), 'kiln-package-'));
const failures = [];

function run(cmd, args, cwd, env = {}) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 15 * 60 * 1000,
    env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...env } });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, stdout: r.stdout ?? '' };
}
function must(cond, what) {
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${what}`);
  if (!cond) failures.push(what);
}
function duBytes(dir) {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += duBytes(p);
    else if (e.isFile()) total += statSync(p).size;
  }
  return total;
}

try {
  // 1. The tarball (prepack builds the prebuilt addon, prepare builds dist/).
  const pack = run(npm, ['pack', '--json', '--pack-destination', work], root);
  if (pack.status !== 0) throw new Error(`npm pack failed:\n${pack.out}`);
  const info = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('[')))[0];
  const files = info.files.map((f) => f.path);
  const tarball = join(work, info.filename);
  console.log(`tarball: ${info.filename}, ${(info.size / 1e6).toFixed(2)} MB packed, ${(info.unpackedSize / 1e6).toFixed(2)} MB unpacked, ${files.length} files`);
  const banned = files.filter((f) => /^(test|tools|bench|\.ci|examples|docs)\//.test(f) || f.endsWith('.map'));
  must(banned.length === 0, `the tarball holds no tests, tools, bench, CI, examples, docs or source maps${banned.length ? `: ${banned.slice(0, 5).join(', ')}` : ''}`);
  must(files.some((f) => /^prebuilds\/linux-x64\/.*\.node$/.test(f)), 'the tarball holds prebuilds/linux-x64/*.node');
  for (const f of ['dist/cli/main.js', 'dist/index.js', 'binding.gyp', 'native/gemm.c', 'scripts/build-native.mjs', 'data/brown.txt.br', 'web/index.html']) {
    must(files.includes(f), `the tarball holds ${f}`);
  }

  // 2. An empty project installs it without running any script.
  const app = join(work, 'app');
  rmSync(app, { recursive: true, force: true });
  spawnSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'kiln-check-app', version: '1.0.0', private: true, type: 'module' }));
  const inst = run(npm, ['install', tarball, '--ignore-scripts'], app);
  if (inst.status !== 0) throw new Error(`npm install failed:\n${inst.out}`);
  must(!/EBADENGINE/.test(inst.out), 'npm install prints no EBADENGINE warning');
  const nm = join(app, 'node_modules');
  const mb = duBytes(nm) / 1e6;
  const count = new Set(run(npm, ['ls', '--all', '--parseable'], app).stdout.split('\n').filter((l) => l.includes('node_modules'))).size;
  console.log(`npm install kiln: node_modules ${mb.toFixed(1)} MB (file sizes), ${count} packages including kiln`);
  must(mb <= MAX_MB, `node_modules is at most ${MAX_MB} MB`);
  must(!existsSync(join(nm, 'kiln', 'build')), 'nothing was compiled (no node_modules/kiln/build)');

  // 3. The library runs on the prebuilt native addon.
  const probe = run(process.execPath, ['--input-type=module', '-e',
    "const k = await import('kiln'); const t = k.tensor([[1, 2], [3, 4]]); console.log(JSON.stringify({ info: k.backendInfo(), sum: t.matmul(t).sum().item() }));"], app,
  { KILN_BACKEND: '' });
  let probeOut = {};
  try { probeOut = JSON.parse(probe.stdout.trim().split('\n').pop()); } catch { /* reported below */ }
  console.log(`import('kiln'): ${probe.stdout.trim() || probe.out}`);
  must(probeOut.info?.name === 'native', "import('kiln') runs on the native backend with --ignore-scripts and no compile");
  must(probeOut.sum === 54, 'a matmul on it gives the right answer');

  // 4. The CLI starts; doctor names the prebuilt file; a missing optional package is one clear sentence.
  const version = run(npx, ['kiln', '--version'], app);
  must(version.status === 0 && version.stdout.trim() === info.version, `npx kiln --version prints ${info.version}`);
  const doctor = run(npx, ['kiln', 'doctor'], app, { KILN_BACKEND: '' });
  console.log(doctor.stdout.trim().split('\n').map((l) => `    ${l}`).join('\n'));
  must(doctor.status === 0 && /file: .*prebuilds\/linux-x64\/.*\(prebuilt\)/.test(doctor.stdout), 'kiln doctor reports the prebuilt addon');
  // 5. The default corpus ships inside the package: pretrain runs a few steps with no extra install.
  const pre = run(npx, ['kiln', 'pretrain', '--preset', 'tiny', '--max-steps', '3', '--eval-every', '3', '--samples', '0',
    '--progress', 'none', '--out', join(work, 'run'), '--cache-dir', join(work, 'cache')], app, { KILN_BACKEND: '' });
  must(pre.status === 0 && existsSync(join(work, 'run', 'model.safetensors')), `npx kiln pretrain --preset tiny runs on the bundled Brown corpus${pre.status === 0 ? '' : `:\n${pre.out.slice(-2000)}`}`);
  const serve = run(npx, ['kiln', 'serve', '--model', join(work, 'run')], app);
  must(serve.status !== 0 && /needs the npm package fastify, which is not installed; install it with: npm install fastify/.test(serve.out),
    `kiln serve without fastify says: npm install fastify${/npm install fastify/.test(serve.out) ? '' : ` (it said: ${serve.out.trim().slice(0, 300)})`}`);

  // 6. The playground serves its page and workers (bundled at build time) without esbuild, which is a dev dependency.
  must(!existsSync(join(nm, 'esbuild')), 'esbuild is not installed with kiln');
  const playground = run(process.execPath, ['--input-type=module', '-e', `
    const { startPlayground } = await import(${JSON.stringify(pathToFileURL(join(nm, 'kiln', 'dist', 'playground', 'server.js')).href)});
    const p = await startPlayground({ port: 0 });
    const got = {};
    for (const f of ['', 'worker.js', 'pool-worker.js', 'kiln.wasm', 'kiln-single.wasm']) got[f] = (await fetch(p.url + f)).status;
    await p.close();
    console.log(JSON.stringify(got));`], app);
  must(/^\{.*\}$/m.test(playground.stdout) && Object.values(JSON.parse(playground.stdout.trim().split('\n').pop())).every((c) => c === 200),
    `kiln playground serves its page, workers and wasm without esbuild (${(playground.stdout || playground.out).trim().slice(0, 300)})`);

} catch (e) {
  failures.push(e instanceof Error ? e.message : String(e));
  console.error(e instanceof Error ? e.message : e);
} finally {
  if (process.env.KILN_CHECK_KEEP === '1') console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
if (failures.length > 0) {
  console.error(`\npackage check: ${failures.length} failure(s)`);
  process.exit(1);
}
console.log('\npackage check: all passed');

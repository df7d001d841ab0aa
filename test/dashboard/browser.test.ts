// End to end in headless Chromium (Debian's /usr/bin/chromium through playwright-core): `kiln dashboard` beside a
// short real training run, the page's live chart, run list and latest values; then a hostile run's strings
// (samples, config, run name) shown as text, and path traversal refused. Screenshots go to test-output/dashboard/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startDashboard } from '../../src/dashboard/index.js';
import { MISSING_PREREQUISITE } from '../helpers/prereq.js';

const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const OUT = resolve('test-output', 'dashboard');
const TSX = ['--import', 'tsx'];
const missing = existsSync(CHROMIUM) ? false : `${MISSING_PREREQUISITE} Chromium not found at ${CHROMIUM} (apt-get install -y chromium, or set KILN_CHROMIUM)`;
if (missing) console.log(`# SKIP dashboard browser tests: ${missing}`);

let context: BrowserContext | null = null;
const children: ChildProcess[] = [];
const hostileRoot = mkdtempSync(join(tmpdir(), 'kiln-hostile-'));
const evil = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script></pre><b>bold</b> & "quotes" ' \u2028`;
const evilName = '<img src=y onerror=window.__pwned=3>';
let hostileTrained: Promise<void> = Promise.resolve();

before(async () => {
  if (missing) return;
  mkdirSync(OUT, { recursive: true });
  // The second test's run trains while the browser starts and the first test runs (a child process start is slow).
  mkdirSync(join(hostileRoot, 'runs'));
  writeFileSync(join(hostileRoot, 'secret.txt'), 'top secret');
  hostileTrained = train(join(hostileRoot, 'runs', evilName), 5, 0, evil);
  hostileTrained.catch(() => {}); // awaited (and reported) by the test
  context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'kiln-chromium-')), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage'],
    viewport: { width: 1280, height: 1000 },
  });
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.pid) c.kill('SIGTERM');
  await context?.close();
});

/** Starts `kiln dashboard RUNS --port 0` and resolves with the address it prints. */
function startCli(runs: string): Promise<string> {
  const child = spawn(process.execPath, [...TSX, 'src/cli/main.ts', 'dashboard', runs, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((ok, fail) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /kiln dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) ok(m[1]!);
    });
    child.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
    child.on('exit', (code) => fail(new Error(`kiln dashboard exited with ${code}: ${out}${err}`)));
  });
}

function train(runDir: string, steps: number, sleepMs: number, sample?: string, goFile?: string): Promise<void> {
  const args = [...TSX, 'test/dashboard/fixtures/tiny-train.ts', runDir, String(steps), String(sleepMs), ...(sample ? [sample] : [])];
  const env = { ...process.env, ...(goFile ? { KILN_TINY_TRAIN_GO: goFile } : {}) };
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
  return new Promise((ok, fail) => child.on('exit', (code) => (code === 0 ? ok() : fail(new Error(`training exited with ${code}: ${err}`)))));
}

async function newPage(): Promise<{ page: Page; problems: string[] }> {
  const page = await context!.newPage();
  const problems: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(String(e)));
  return { page, problems };
}

const cell = (page: Page, run: string, field: string): Promise<string> =>
  page.locator(`#latest tr[data-run="${run}"] td[data-field="${field}"]`).innerText();

test('the dashboard follows a training run live: chart points, run list, latest values', { skip: missing, timeout: 240_000 }, async () => {
  const runs = mkdtempSync(join(tmpdir(), 'kiln-runs-'));
  const steps = 30;
  // All three start at once: a short finished run beside the live one, the live run, and `kiln dashboard`.
  const baseline = train(join(runs, 'baseline'), 10, 0);
  const go = join(mkdtempSync(join(tmpdir(), 'kiln-go-')), 'go');
  const training = train(join(runs, 'live'), steps, 60, undefined, go);
  const url = await startCli(runs);

  // The page is open, with the live run listed and chosen, before the run's first step; then training starts.
  const { page, problems } = await newPage();
  await page.goto(`${url}#runs=live`);
  await page.waitForSelector('#latest tr[data-run="live"]', { timeout: 60_000 });
  writeFileSync(go, '');
  await page.waitForFunction(() => Number(document.querySelector('#chart-loss')?.getAttribute('data-points')) >= 2, null, { timeout: 60_000 });
  const early = Number(await page.getAttribute('#chart-loss', 'data-points'));
  assert.ok(await page.locator('#chart-loss canvas').count() >= 1, 'uPlot drew a canvas');
  await page.screenshot({ path: join(OUT, 'dashboard-live.png'), fullPage: true });

  await Promise.all([training, baseline]);
  // The page keeps up with the file: every step arrives, and the latest values are those of the last line.
  await page.waitForFunction((n) => Number(document.querySelector('#chart-loss')?.getAttribute('data-points')) === n, steps, { timeout: 60_000 });
  assert.ok(early < steps, `the chart grew while the run trained (first seen with ${early} points)`);
  await page.waitForFunction(() => document.querySelector('#latest td[data-field="val_loss"]')?.textContent !== '–');
  const lines = readFileSync(join(runs, 'live', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const last = lines.at(-1)!;
  assert.equal(await cell(page, 'live', 'step'), String(steps));
  assert.equal(await cell(page, 'live', 'loss'), String(Number(last.loss!.toPrecision(4))));
  assert.equal(await cell(page, 'live', 'val_loss'), String(Number(last.val_loss!.toPrecision(4))));
  assert.equal(await cell(page, 'live', 'lr'), last.lr!.toExponential(2));
  assert.match(await cell(page, 'live', 'throughput'), /^\d+ samples\/s$/);
  assert.equal(Number(await page.getAttribute('#chart-lr', 'data-points')), steps);
  assert.equal(Number(await page.getAttribute('#chart-grad', 'data-points')), steps);

  // The run list shows both runs, newest first, with the live one ticked.
  await page.waitForFunction(() => document.querySelectorAll('#runs li').length === 2);
  const listed = await page.locator('#runs li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-run')));
  assert.deepEqual(listed.sort(), ['baseline', 'live']);
  assert.equal(await page.locator('#runs li[data-run="live"] input').isChecked(), true);
  assert.match(await page.locator('#runs li[data-run="baseline"] .run-meta').innerText(), /^step 10 · loss /);
  // Samples and config of the run.
  assert.match(await page.locator('#samples pre.sample').first().innerText(), /^step 30: validation MSE \d/);
  assert.match(await page.locator('#config').innerText(), /optimizer\.name\s+SGD/);

  // Overlay: tick the second run; the loss chart then holds both runs' steps and names both in its legend.
  await page.locator('#runs li[data-run="baseline"] input').check();
  await page.waitForFunction(() => document.querySelectorAll('#latest tbody tr').length === 2);
  await page.waitForFunction(() => /baseline/.test(document.querySelector('#chart-loss .u-legend')?.textContent ?? ''));
  assert.equal(new URL(page.url()).hash, '#runs=live,baseline');
  // A log loss axis redraws the chart with the same points.
  await page.locator('#log-y').check();
  await page.waitForFunction(() => document.querySelectorAll('#chart-loss canvas').length === 1);
  assert.equal(Number(await page.getAttribute('#chart-loss', 'data-points')), steps);
  await page.screenshot({ path: join(OUT, 'dashboard-overlay.png'), fullPage: true });
  assert.deepEqual(problems, [], 'no console errors and no CSP violations');
  await page.close();
});

function rawGet(url: string, path: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((ok, fail) => {
    request({ host: u.hostname, port: u.port, path }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
    }).on('error', fail).end();
  });
}

test('hostile strings from a run reach the page as text, and path traversal is refused', { skip: missing, timeout: 180_000 }, async () => {
  await hostileTrained;
  const dash = await startDashboard({ runsDir: join(hostileRoot, 'runs'), port: 0 });
  const url = dash.url;
  const { page, problems } = await newPage();
  await page.goto(`${url}#runs=${encodeURIComponent(evilName)}`);
  await page.waitForFunction(() => document.querySelectorAll('#samples pre.sample').length === 2, null, { timeout: 60_000 });

  assert.equal(await page.locator('#samples pre.sample').nth(1).textContent(), evil);
  assert.equal(await page.locator('#runs li .run-name').first().textContent(), evilName);
  await page.waitForFunction(() => /note/.test(document.querySelector('#config')?.textContent ?? ''));
  const note = await page.locator('#config td.key', { hasText: /^note$/ }).locator('xpath=following-sibling::td').textContent();
  assert.equal(note, evil);
  assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
  for (const sel of ['img', 'script:not([src])', 'b']) assert.equal(await page.locator(`body ${sel}`).count(), 0, `no ${sel} element was made from run data`);

  // Traversal, from the page itself and as raw request paths (which browsers would normalise away).
  // (A browser folds `..` and `%2e%2e` itself, so those arrive as /secret.txt: not found. Encoded slashes get through.)
  const fromPage = await page.evaluate(async () => Promise.all(['/runs/..%2fsecret.txt', '/runs/%2e%2e/secret.txt'].map(async (p) => {
    const r = await fetch(p);
    return [r.status, await r.text()] as const;
  })));
  assert.equal(fromPage[0]![0], 403);
  assert.equal(fromPage[1]![0], 404);
  for (const [, body] of fromPage) assert.ok(!body.includes('top secret'));
  for (const p of ['/runs/../secret.txt', '/runs/%2e%2e/secret.txt', '/../../../../etc/passwd', '/vendor/..%2f..%2f..%2fpackage.json']) {
    const r = await rawGet(url, p);
    assert.equal(r.status, 403, p);
    assert.ok(!r.body.includes('top secret') && !r.body.includes('root:'), p);
  }
  await page.screenshot({ path: join(OUT, 'dashboard-hostile.png'), fullPage: true });
  assert.deepEqual(problems.filter((p) => !/40[34]/.test(p)), [], 'no console errors and no CSP violations');
  await page.close();
  await dash.close();
});

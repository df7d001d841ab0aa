// End to end in headless Chromium (Debian's /usr/bin/chromium through playwright-core): `kiln playground`'s page
// trains a small GPT in a Web Worker (stopped and resumed on the way) until the validation loss is below the unigram
// baseline, shows a sample,
// generates from a prompt, and its downloaded model folder loads in Node and gives the same greedy continuation.
// The page is cross-origin isolated, so the small model's WebAssembly kernels run on as many threads as the browser
// reports cores.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startPlayground, type RunningPlayground } from '../../src/playground/server.js';
import { loadModel } from '../../src/hub/load.js';
import { generateText } from '../../src/infer/generate.js';
import { setBackend } from '../../src/backend/node.js';
import { MISSING_PREREQUISITE } from '../helpers/prereq.js';

const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const OUT = resolve('test-output', 'playground');
const missing = existsSync(CHROMIUM) ? false : `${MISSING_PREREQUISITE} Chromium not found at ${CHROMIUM} (apt-get install -y chromium, or set KILN_CHROMIUM)`;
if (missing) console.log(`# SKIP playground browser test: ${missing}`);

let context: BrowserContext | null = null;
let server: RunningPlayground | null = null;

before(async () => {
  if (missing) return;
  mkdirSync(OUT, { recursive: true });
  server = await startPlayground({ port: 0 });
  context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'kiln-chromium-')), {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage'],
    viewport: { width: 1000, height: 1000 },
  });
});

after(async () => {
  await context?.close();
  await server?.close();
});

/** A new tab on the playground, its sample text loaded; `problems` collects console errors and page errors. */
async function openPlayground(): Promise<{ page: Page; problems: string[] }> {
  const page = await context!.newPage();
  const problems: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(server!.url);
  await page.waitForFunction(() => (document.getElementById('text') as HTMLTextAreaElement).value.length > 1000);
  return { page, problems };
}

test('the page trains below the unigram baseline, samples, and its downloaded weights generate the same in Node', { skip: missing, timeout: 120_000 }, async () => {
  const { page, problems } = await openPlayground();
  await page.fill('#steps', '120');
  await page.click('#train');
  // The page stays responsive while the worker trains: the stop button is clickable and the step counter moves.
  await page.waitForFunction(() => Number(document.getElementById('step')!.textContent) >= 20, undefined, { timeout: 60_000 });
  // Stop mid-run, then resume from the in-memory checkpoint for 80 more steps.
  await page.click('#stop');
  await page.waitForFunction(() => (window as unknown as { playground: { trained: boolean } }).playground.trained, undefined, { timeout: 60_000 });
  const stoppedAt = Number(await page.textContent('#step'));
  assert.match((await page.textContent('#status'))!, /Stopped at step \d+ \(stopped\)/);
  assert.ok(stoppedAt >= 20 && stoppedAt < 120, `stopped at step ${stoppedAt}`);
  await page.fill('#steps', '80');
  await page.click('#resume');
  await page.waitForFunction(() => !(window as unknown as { playground: { training: boolean } }).playground.training, undefined, { timeout: 90_000 });
  await page.waitForFunction(() => (window as unknown as { playground: { trained: boolean } }).playground.trained, undefined, { timeout: 90_000 });
  assert.equal(Number(await page.textContent('#step')), stoppedAt + 80, 'the resumed run continues from the step it stopped at');
  const st = await page.evaluate(() => (window as unknown as { playground: { valLoss: number; unigram: number } }).playground);
  assert.ok(st.valLoss < st.unigram, `validation loss ${st.valLoss} is not below the unigram baseline ${st.unigram}`);
  const sample = await page.textContent('#sample');
  assert.ok(sample && sample.length > 12, `no sample shown: ${JSON.stringify(sample)}`);
  assert.ok(Number(await page.textContent('#tps').then((t) => t!.replace(/,/g, ''))) > 0, 'no throughput shown');

  await page.fill('#prompt', 'The kiln');
  await page.click('#generate');
  await page.waitForFunction(() => (window as unknown as { playground: { lastGenerated: string | null } }).playground.lastGenerated !== null);
  const inBrowser = await page.evaluate(() => (window as unknown as { playground: { lastGenerated: string } }).playground.lastGenerated);
  await page.screenshot({ path: join(OUT, 'trained.png') });

  const dir = mkdtempSync(join(tmpdir(), 'kiln-playground-model-'));
  const saved: Promise<void>[] = [];
  page.on('download', (d) => { saved.push(d.saveAs(join(dir, d.suggestedFilename()))); });
  await page.click('#download');
  await page.waitForFunction(() => /Downloaded/.test(document.getElementById('status')!.textContent ?? ''));
  await new Promise((r) => setTimeout(r, 500));
  await Promise.all(saved);
  assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);

  // Greedy decoding in Node on the backend the page trained on (WebAssembly, the same kernels) must match exactly.
  const pageBackend = await page.evaluate(() => (window as unknown as { playground: { backend: string } }).playground.backend);
  assert.equal(pageBackend, 'wasm', 'the page trains on the WebAssembly backend');
  // The tiny default model trains on one thread (its kernels are too small to split).
  assert.equal(await page.textContent('#backend'), 'wasm');
  setBackend('wasm');
  const { model, tokenizer } = loadModel(dir);
  const inNode = generateText(model, tokenizer, 'The kiln', { maxNewTokens: 60, temperature: 0 }).text;
  assert.equal(inNode, inBrowser);
  assert.deepEqual(problems, []);
});

test('the small model trains on every core: the page is cross-origin isolated and the kernels share wasm memory', { skip: missing, timeout: 120_000 }, async () => {
  const { page, problems } = await openPlayground();
  await page.selectOption('#size', 'small');
  await page.fill('#steps', '6');
  await page.click('#train');
  await page.waitForFunction(() => (window as unknown as { playground: { trained: boolean } }).playground.trained, undefined, { timeout: 90_000 });
  const { isolated, cores, threads, losses } = await page.evaluate(() => ({
    isolated: crossOriginIsolated, cores: navigator.hardwareConcurrency,
    threads: (window as unknown as { playground: { threads: number } }).playground.threads,
    losses: Number(document.getElementById('loss')!.textContent),
  }));
  assert.equal(isolated, true, 'the playground page is cross-origin isolated');
  assert.equal(threads, Math.min(cores, 255), `the small model trained on ${threads} wasm thread(s) with ${cores} cores`);
  assert.equal(await page.textContent('#backend'), cores > 1 ? `wasm, ${cores} threads` : 'wasm');
  assert.equal(Number(await page.textContent('#step')), 6);
  assert.ok(Number.isFinite(losses) && losses > 0 && losses < 10, `loss ${losses}`);
  assert.deepEqual(problems, []);
});

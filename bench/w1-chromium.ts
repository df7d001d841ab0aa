// W1 in a browser, one side of one round: T1 (GEMM 1024) on Kiln's WebAssembly backend inside headless Chromium
// (Debian's /usr/bin/chromium, or KILN_CHROMIUM, through playwright-core), as a page loads it: kiln-single.wasm, one
// thread (the browser loader has no thread pool yet). bench/run.ts alternates it with native rounds at one thread.
// `node --import tsx bench/w1-chromium.ts '{"t1":1024}'` prints one JSON line.

import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const p = { t1: 1024, warm_s: 0.3, sample_s: 0.2, samples: 5, ...JSON.parse(process.argv[2] ?? '{}') as Record<string, number> };

async function bundle(): Promise<string> {
  const esbuild = await import('esbuild');
  const res = await esbuild.build({ entryPoints: [join(here, 'w1-chromium-page.ts')], bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent' });
  return res.outputFiles[0]!.text;
}

/** The Chromium processes running now, by pid, with their CPU ticks (user + system, USER_HZ). */
function chromiumProcesses(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (!readFileSync(`/proc/${name}/cmdline`, 'utf8').includes('chromium')) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(name), Number(rest[11]) + Number(rest[12]));
    } catch { /* gone */ }
  }
  return out;
}

async function main(): Promise<Record<string, unknown>> {
  if (!existsSync(CHROMIUM)) return { error: `Chromium not found at ${CHROMIUM} (apt-get install -y chromium, or set KILN_CHROMIUM)` };
  const files: Record<string, { body: string | Buffer; type: string }> = {
    '/': { body: `<!doctype html><meta charset="utf-8"><script>globalThis.w1Params = ${JSON.stringify(p)};</script><script type="module" src="page.js"></script>`, type: 'text/html' },
    '/page.js': { body: await bundle(), type: 'text/javascript' },
    '/kiln-single.wasm': { body: readFileSync(join(here, '..', 'src', 'backend', 'wasm', 'kiln-single.wasm')), type: 'application/wasm' },
  };
  const server = createServer((req, res) => {
    const f = files[(req.url ?? '/').split('?')[0]!];
    res.writeHead(f ? 200 : 404, { 'content-type': f?.type ?? 'text/plain' });
    res.end(f?.body ?? 'not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const before = chromiumProcesses();
  const profile = mkdtempSync(join(tmpdir(), 'kiln-w1-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage'],
  });
  try {
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.waitForFunction(() => (globalThis as { w1Result?: unknown }).w1Result !== undefined, null, { timeout: 120_000 });
    const result = await page.evaluate(() => (globalThis as unknown as { w1Result: Record<string, unknown> }).w1Result);
    // Chromium's processes are not this process's children once they exit (the bench's busy check cannot see their
    // CPU as its own): report what the ones this run started used, for bench/run.ts to count as its own.
    let ticks = 0;
    for (const [pid, t] of chromiumProcesses()) if (!before.has(pid)) ticks += t;
    return { ...result, chromium_cpu_ticks: ticks };
  } finally {
    await context.close();
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().then((r) => { console.log(JSON.stringify(r)); process.exit(0); }, (e: unknown) => {
  console.log(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }));
  process.exit(1);
});

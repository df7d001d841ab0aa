// `kiln playground`'s server (Node only): serves the static training page (web/playground/) and its Web Workers,
// bundled with esbuild from Kiln's browser entry: at start where esbuild is installed, else from
// dist/playground/bundles/, which the build writes (scripts/postbuild.mjs), so an installed package needs no esbuild.
// Loopback by default; fixed routes only, no file paths from the request reach the disk.

import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The package root from src/playground or dist/playground. */
const root = join(here, '..', '..');

/** What startPlayground takes. */
export interface PlaygroundOptions { host?: string; port?: number }

/** A running playground server. */
export interface RunningPlayground { url: string; close(): Promise<void> }

/** Kiln's browser entry: the compiled one in an installed package, the source in a checkout run through tsx. */
function browserEntry(): string {
  for (const p of [join(here, '..', 'index.browser.js'), join(here, '..', 'index.browser.ts')]) if (existsSync(p)) return p;
  throw new Error(`kiln playground: Kiln's browser entry is missing beside ${here} (run npm run build)`);
}

/** The page's worker scripts (web/playground/), each bundled with Kiln's browser build. */
const WORKERS = ['worker.js', 'pool-worker.js'] as const;
/** Where the build puts the bundled workers: beside the compiled server. */
const BUNDLES = join(here, 'bundles');

/** A worker script, bundled with Kiln's browser build (esbuild must be installed: it comes with Kiln's dev tools). */
async function bundleWorker(name: string): Promise<string> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new Error('kiln playground: bundling the training worker needs esbuild; install it with `npm install --save-dev esbuild`');
  }
  const res = await esbuild.build({
    entryPoints: [join(root, 'web', 'playground', name)], bundle: true, platform: 'browser', format: 'esm',
    write: false, logLevel: 'silent', alias: { kiln: browserEntry() },
  });
  return res.outputFiles[0]!.text;
}

/**
 * Bundles the page's workers into dist/playground/bundles/ (run by scripts/postbuild.mjs after tsc, from the
 * compiled server); returns the files written.
 */
export async function writeWorkerBundles(): Promise<string[]> {
  mkdirSync(BUNDLES, { recursive: true });
  const written: string[] = [];
  for (const name of WORKERS) {
    const path = join(BUNDLES, name);
    writeFileSync(path, await bundleWorker(name));
    written.push(path);
  }
  return written;
}

/**
 * The workers bundled now where esbuild is installed (a checkout: always from the current web/playground/, even
 * when dist/ is older), else the ones the build bundled (an installed package without dev dependencies).
 */
async function workerBundles(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const canBundle = await import('esbuild').then(() => true, () => false);
  const prebuilt = WORKERS.every((n) => existsSync(join(BUNDLES, n)));
  for (const name of WORKERS) {
    out.set(name, canBundle || !prebuilt ? await bundleWorker(name) : readFileSync(join(BUNDLES, name), 'utf8'));
  }
  return out;
}

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.txt': 'text/plain; charset=utf-8', '.css': 'text/css; charset=utf-8' };

/** Starts the playground server; resolves once it listens. */
export async function startPlayground(options: PlaygroundOptions = {}): Promise<RunningPlayground> {
  const web = join(root, 'web', 'playground');
  const files = new Map<string, { body: string | Buffer; type: string }>();
  for (const name of ['index.html', 'page.js', 'sample.txt', 'style.css']) {
    files.set(`/${name}`, { body: readFileSync(join(web, name)), type: TYPES[name.slice(name.lastIndexOf('.'))]! });
  }
  files.set('/', files.get('/index.html')!);
  for (const [name, body] of await workerBundles()) files.set(`/${name}`, { body, type: TYPES['.js']! });
  // The WebAssembly kernels: the shared-memory build for threads (the page is cross-origin isolated, see below) and
  // the single-threaded one for browsers that do not isolate it; without them the worker uses the js backend.
  for (const name of ['kiln.wasm', 'kiln-single.wasm']) {
    const wasm = join(root, 'src', 'backend', 'wasm', name);
    if (existsSync(wasm)) files.set(`/${name}`, { body: readFileSync(wasm), type: 'application/wasm' });
  }
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const f = req.method === 'GET' || req.method === 'HEAD' ? files.get(path) : undefined;
    if (!f) {
      res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 404 : 405, { 'content-type': 'text/plain' });
      res.end(req.method === 'GET' || req.method === 'HEAD' ? 'not found\n' : 'method not allowed\n');
      return;
    }
    // Cross-origin isolation lets a WebAssembly backend share memory between threads where the browser allows it.
    res.writeHead(200, {
      'content-type': f.type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff',
      'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp',
    });
    res.end(req.method === 'HEAD' ? undefined : f.body);
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((ok, fail) => { server.once('error', fail); server.listen(options.port ?? 0, host, ok); });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : options.port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

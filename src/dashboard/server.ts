// The dashboard's HTTP server (plain node:http): the static page from web/, uPlot from node_modules, a JSON list of
// runs, and server-sent event streams that tail each run's metrics.jsonl. Binds to 127.0.0.1 unless told otherwise.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { JsonlTail, type MetricRecord } from './tail.js';
import { listRuns, RefusedPath, resolveUnder, runDir, type RunInfo } from './runs.js';

export interface DashboardOptions {
  /** The folder whose sub-folders are runs (each with metrics.jsonl and/or config.json). */
  runsDir: string;
  /** Address to bind; default 127.0.0.1 (this machine only). */
  host?: string;
  /** Port; 0 picks a free one. Default 6006. */
  port?: number;
  /** How often to look for appended metrics and new runs, in ms (default 250 / 1000). */
  tailIntervalMs?: number;
  listIntervalMs?: number;
}

export interface Dashboard {
  /** The page's address, e.g. http://127.0.0.1:6006/ */
  url: string;
  host: string;
  port: number;
  /** Stops the server and every stream it holds open. */
  close(): Promise<void>;
}

const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));
const UPLOT_DIR = dirname(createRequire(import.meta.url).resolve('uplot'));
/** The only files served from outside web/ and the runs folder. */
const VENDOR: Record<string, string> = {
  'uPlot.iife.min.js': join(UPLOT_DIR, 'uPlot.iife.min.js'),
  'uPlot.min.css': join(UPLOT_DIR, 'uPlot.min.css'),
};

const CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "font-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');
/** Files from a run are downloads, never documents that could run script in the dashboard's origin. */
const RUN_FILE_CSP = "sandbox; default-src 'none'";

const PAGE_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon',
};
const RUN_TYPES: Record<string, string> = {
  '.json': 'application/json; charset=utf-8', '.jsonl': 'text/plain; charset=utf-8', '.txt': 'text/plain; charset=utf-8',
  '.log': 'text/plain; charset=utf-8', '.png': 'image/png',
};
const MAX_CONFIG_BYTES = 4 << 20;
const SSE_BATCH = 1000;

/**
 * JSON with `<`, `>`, `&`, U+2028 and U+2029 written as \u escapes: still the same JSON, but no string from a run
 * can ever read as markup, whatever the page does with it. (The page also renders with textContent only.)
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

const LOOPBACK_HOST_HEADER = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(:\d{1,5})?$/i;

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * Starts the dashboard for a runs folder and resolves once it listens.
 *
 * ```ts
 * const dash = await startDashboard({ runsDir: 'runs', port: 0 });
 * console.log(`dashboard: ${dash.url}`);
 * await dash.close();
 * ```
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const runsDir = resolve(options.runsDir);
  const host = options.host ?? '127.0.0.1';
  const wantPort = options.port ?? 6006;
  if (!Number.isInteger(wantPort) || wantPort < 0 || wantPort > 65535) {
    throw new Error(`dashboard port must be an integer from 0 to 65535, got ${String(options.port)}`);
  }
  const tailMs = options.tailIntervalMs ?? 250;
  const listMs = options.listIntervalMs ?? 1000;
  const cleanups = new Set<() => void>();

  // One poller of the runs folder, shared by every open run-list stream.
  const listSubscribers = new Set<(runs: RunInfo[]) => void>();
  let listTimer: NodeJS.Timeout | null = null;
  let lastList = '';
  let lastRuns: RunInfo[] = [];
  const pollList = async (): Promise<void> => {
    const runs = await listRuns(runsDir);
    const key = JSON.stringify(runs);
    if (key === lastList) return;
    lastList = key;
    lastRuns = runs;
    for (const s of listSubscribers) s(runs);
  };
  const subscribeList = (fn: (runs: RunInfo[]) => void): (() => void) => {
    listSubscribers.add(fn);
    if (!listTimer) {
      listTimer = setInterval(() => void pollList().catch(() => {}), listMs);
      listTimer.unref();
    }
    return () => {
      listSubscribers.delete(fn);
      if (listSubscribers.size === 0 && listTimer) { clearInterval(listTimer); listTimer = null; lastList = ''; }
    };
  };


  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof RefusedPath) return sendError(res, err.status, err.message);
      sendError(res, 500, err instanceof Error ? err.message : String(err));
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    setCommonHeaders(res);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return sendError(res, 405, `method ${req.method ?? '?'} is not allowed; the dashboard is read-only`);
    }
    // A page on another site must not reach a loopback dashboard through DNS rebinding: check the Host header.
    // Any port is fine (an SSH tunnel may forward from another one); the name must be a loopback one.
    if (isLoopback(host) && !LOOPBACK_HOST_HEADER.test(String(req.headers.host ?? ''))) {
      return sendError(res, 403, 'unexpected Host header');
    }
    const raw = (req.url ?? '/').split('?')[0]!;
    // Decode segment by segment from the raw request path, before anything normalises it, and refuse any `..`.
    let segs: string[];
    try {
      segs = raw.split('/').slice(1).map((s) => decodeURIComponent(s));
    } catch {
      return sendError(res, 400, 'malformed percent-encoding in the path');
    }
    if (segs.some((s) => s === '..' || s === '.' || /[\\/\0]/.test(s))) {
      return sendError(res, 403, 'paths with "..", "." or encoded separators are refused');
    }
    const path = '/' + segs.join('/');

    if (path === '/' || path === '/index.html') return sendFile(req, res, join(WEB_DIR, 'index.html'), PAGE_TYPES['.html']!);
    if (segs[0] === 'vendor' && segs.length === 2) {
      const file = VENDOR[segs[1]!];
      if (!file) return sendError(res, 404, 'not found');
      return sendFile(req, res, file, PAGE_TYPES[extname(file)]!);
    }
    if (segs[0] === 'api') return api(req, res, segs.slice(1));
    if (segs[0] === 'runs' && segs.length >= 3) {
      const file = await resolveUnder(runsDir, segs.slice(1).join('/'));
      const type = RUN_TYPES[extname(file).toLowerCase()];
      res.setHeader('Content-Security-Policy', RUN_FILE_CSP);
      if (!type) res.setHeader('Content-Disposition', 'attachment');
      return sendFile(req, res, file, type ?? 'application/octet-stream');
    }
    if (segs.length === 1 && segs[0]) {
      const file = await resolveUnder(WEB_DIR, segs[0]);
      const type = PAGE_TYPES[extname(file)];
      if (!type) return sendError(res, 404, 'not found');
      return sendFile(req, res, file, type);
    }
    return sendError(res, 404, 'not found');
  }

  async function api(req: IncomingMessage, res: ServerResponse, segs: string[]): Promise<void> {
    if (segs[0] !== 'runs') return sendError(res, 404, 'not found');
    if (segs.length === 1) return sendJson(res, await listRuns(runsDir));
    if (segs.length === 2 && segs[1] === 'events') return runListStream(req, res);
    if (segs.length !== 3) return sendError(res, 404, 'not found');
    const name = segs[1]!;
    const dir = runDir(runsDir, name);
    const st = await stat(dir).catch(() => null);
    if (!st?.isDirectory()) return sendError(res, 404, `no run named ${JSON.stringify(name)}`);
    await resolveUnder(runsDir, name); // a run folder that is a symlink out of the runs folder is refused (403)
    if (segs[2] === 'config') return sendJson(res, await readConfig(await runFile(name, 'config.json')));
    if (segs[2] === 'events') return runStream(req, res, name, await runFile(name, 'metrics.jsonl'));
    return sendError(res, 404, 'not found');
  }

  function openStream(req: IncomingMessage, res: ServerResponse): { send(event: string, data: unknown): void; onClose(fn: () => void): void } {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    const fns: (() => void)[] = [];
    const ping = setInterval(() => res.write(': ping\n\n'), 15000);
    ping.unref();
    const cleanup = (): void => {
      cleanups.delete(cleanup);
      clearInterval(ping);
      for (const fn of fns.splice(0)) fn();
      if (!res.writableEnded) res.end();
    };
    cleanups.add(cleanup);
    req.on('close', cleanup);
    return {
      send(event, data) { if (!res.writableEnded) res.write(`event: ${event}\ndata: ${safeJson(data)}\n\n`); },
      onClose(fn) { fns.push(fn); },
    };
  }

  function runListStream(req: IncomingMessage, res: ServerResponse): void {
    const stream = openStream(req, res);
    stream.onClose(subscribeList((runs) => stream.send('runs', runs)));
    // A new subscriber gets the current list at once, without waiting for a change.
    void (async () => {
      const runs = lastList ? lastRuns : await listRuns(runsDir);
      stream.send('runs', runs);
    })().catch(() => {});
  }

  /**
   * The real path of a run's file, refused (RefusedPath 403) when a symlink leads it outside the runs folder; a
   * file not written yet gives its plain path in the run's real folder.
   */
  async function runFile(name: string, file: string): Promise<string> {
    try {
      return await resolveUnder(runsDir, `${name}/${file}`);
    } catch (err) {
      if (!(err instanceof RefusedPath) || err.status !== 404) throw err;
      return join(await resolveUnder(runsDir, name), file);
    }
  }

  function runStream(req: IncomingMessage, res: ServerResponse, name: string, metricsFile: string): void {
    const stream = openStream(req, res);
    stream.send('hello', { run: name });
    let configMtime = -1;
    const checkConfig = async (): Promise<void> => {
      // Sent once at the start (an error note when there is none yet) and again whenever the file changes; the
      // path is resolved each time, so a symlink made later cannot lead the stream out of the runs folder.
      let configFile: string;
      try {
        configFile = await runFile(name, 'config.json');
      } catch (err) {
        stream.send('config', { error: (err as Error).message });
        return;
      }
      const st = await stat(configFile).catch(() => null);
      const mtime = st ? st.mtimeMs : 0;
      if (mtime === configMtime) return;
      configMtime = mtime;
      stream.send('config', await readConfig(configFile));
    };
    const tail = new JsonlTail(metricsFile, {
      intervalMs: tailMs,
      onRecords(records: MetricRecord[]) {
        for (let i = 0; i < records.length; i += SSE_BATCH) stream.send('metrics', records.slice(i, i + SSE_BATCH));
      },
      onReset() { stream.send('reset', { run: name }); },
      onMalformed(count) { stream.send('warning', { message: `${count} line(s) of metrics.jsonl are not JSON objects and were skipped` }); },
    });
    void checkConfig().catch(() => {}).then(() => tail.start());
    const configTimer = setInterval(() => void checkConfig().catch(() => {}), Math.max(tailMs, 1000));
    configTimer.unref();
    stream.onClose(() => { tail.stop(); clearInterval(configTimer); });
  }

  await new Promise<void>((ok, fail) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'EADDRINUSE') fail(new Error(`port ${wantPort} on ${host} is already in use; pass --port with another number`));
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') fail(new Error(`cannot bind the dashboard to host ${host}: ${err.code}`));
      else fail(err);
    };
    server.once('error', onError);
    server.listen(wantPort, host, () => { server.off('error', onError); ok(); });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${urlHost}:${port}/`,
    host,
    port,
    async close() {
      for (const fn of [...cleanups]) fn();
      if (listTimer) clearInterval(listTimer);
      await new Promise<void>((ok) => { server.close(() => ok()); server.closeAllConnections(); });
    },
  };
}

async function readConfig(file: string): Promise<unknown> {
  const st = await stat(file).catch(() => null);
  if (!st) return { error: 'this run has no config.json yet' };
  if (st.size > MAX_CONFIG_BYTES) return { error: `config.json is ${st.size} bytes, more than the ${MAX_CONFIG_BYTES} shown` };
  try {
    return { config: JSON.parse(await readFile(file, 'utf8')) as unknown };
  } catch {
    return { error: 'config.json is not valid JSON (it may be being written)' };
  }
}

function setCommonHeaders(res: ServerResponse): void {
  res.setHeader('Content-Security-Policy', CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
}

function sendJson(res: ServerResponse, value: unknown): void {
  const body = safeJson(value);
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(body);
}

function sendError(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) { res.end(); return; }
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(safeJson({ error: message }));
}

async function sendFile(req: IncomingMessage, res: ServerResponse, file: string, type: string): Promise<void> {
  const st = await stat(file).catch(() => null);
  if (!st?.isFile()) return sendError(res, 404, 'not found');
  res.writeHead(200, { 'Content-Type': type, 'Content-Length': st.size, 'Cache-Control': 'no-cache' });
  if (req.method === 'HEAD') { res.end(); return; }
  await new Promise<void>((ok, fail) => {
    createReadStream(file).on('error', fail).on('end', ok).pipe(res);
  });
}

/**
 * Starts the dashboard beside one training run: serves the run's parent folder (so sibling runs can be overlaid)
 * and returns an address that opens with this run chosen. What `kiln pretrain --dashboard` and
 * `kiln finetune --dashboard` call before training starts.
 *
 * ```ts
 * const dash = await startRunDashboard('runs/gpt-tiny', { port: 6006 });
 * console.log(`dashboard: ${dash.url}`); // http://127.0.0.1:6006/#runs=gpt-tiny
 * // ... trainer.fit() ...; then keep it open or: await dash.close();
 * ```
 */
export async function startRunDashboard(runDir: string, options: Omit<DashboardOptions, 'runsDir'> = {}): Promise<Dashboard> {
  const dir = resolve(runDir);
  const dash = await startDashboard({ ...options, runsDir: dirname(dir) });
  return { ...dash, url: `${dash.url}#runs=${encodeURIComponent(basename(dir))}` };
}

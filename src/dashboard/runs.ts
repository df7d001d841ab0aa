// The runs folder as the dashboard sees it: which sub-folders are runs, the latest metrics line of each
// (read from the file's last bytes only), and the one place that turns a name from a request into a path.

import { open, readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { MetricRecord } from './tail.js';

export interface RunInfo {
  /** The run's folder name under the runs folder. */
  name: string;
  /** Last change of `metrics.jsonl` (or of the folder when there is none yet), ms since the epoch. */
  mtimeMs: number;
  hasMetrics: boolean;
  hasConfig: boolean;
  /** The last complete line of `metrics.jsonl`, or null. */
  latest: MetricRecord | null;
}

const TAIL_BYTES = 64 * 1024;
const latestCache = new Map<string, { size: number; mtimeMs: number; latest: MetricRecord | null }>();

/** Why a name or path from a request was refused; the server answers 403 or 404 with `message`. */
export class RefusedPath extends Error {
  constructor(message: string, readonly status: 403 | 404 = 403) { super(message); }
}

/** Checks a run name from a request (one path segment, no `..`, no separators) and returns the run's folder. */
export function runDir(runsDir: string, name: string): string {
  if (!name || name === '.' || name === '..' || /[\\/\0]/.test(name)) {
    throw new RefusedPath(`run name ${JSON.stringify(name)} is not a single folder name`);
  }
  return join(runsDir, name);
}

/**
 * Resolves a relative path from a request under `root`, refusing `..` segments, absolute paths, NUL bytes, and
 * symbolic links that lead outside `root`. Returns the real path of an existing file.
 */
export async function resolveUnder(root: string, relPath: string): Promise<string> {
  if (relPath.includes('\0')) throw new RefusedPath('path contains a NUL byte');
  const segments = relPath.split(/[\\/]+/).filter(Boolean);
  if (segments.some((s) => s === '..' || s === '.')) throw new RefusedPath(`path ${JSON.stringify(relPath)} leaves the folder it is served from`);
  if (isAbsolute(relPath) || /^[a-zA-Z]:/.test(relPath)) throw new RefusedPath('absolute paths are refused');
  const rootReal = await realpath(root).catch(() => {
    throw new RefusedPath(`the folder ${root} does not exist`, 404);
  });
  let target: string;
  try {
    target = await realpath(resolve(rootReal, ...segments));
  } catch {
    throw new RefusedPath(`no such file: ${relPath}`, 404);
  }
  const rel = relative(rootReal, target);
  if (rel === '' || rel.startsWith('..' + sep) || rel === '..' || isAbsolute(rel)) {
    throw new RefusedPath(`path ${JSON.stringify(relPath)} leads outside the folder it is served from`);
  }
  return target;
}

/** The last complete JSON line of a file, reading at most its last 64 KiB; cached on (size, mtime). */
export async function lastRecord(file: string): Promise<MetricRecord | null> {
  let st;
  try { st = await stat(file); } catch { return null; }
  const hit = latestCache.get(file);
  if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return hit.latest;
  const start = Math.max(0, st.size - TAIL_BYTES);
  const fh = await open(file, 'r');
  let text: string;
  try {
    const buf = Buffer.alloc(st.size - start);
    const { bytesRead } = await fh.read(buf, 0, buf.length, start);
    text = buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
  let latest: MetricRecord | null = null;
  // Only lines that end in a newline are complete; the last one may still be being written.
  const lines = text.split('\n');
  lines.pop();
  for (let i = lines.length - 1; i >= 0 && !latest; i--) {
    const s = lines[i]!.trim();
    if (!s) continue;
    try {
      const v: unknown = JSON.parse(s);
      if (v && typeof v === 'object' && !Array.isArray(v)) latest = v as MetricRecord;
    } catch { /* a torn line at the window's start, or garbage: look further back */ }
  }
  latestCache.set(file, { size: st.size, mtimeMs: st.mtimeMs, latest });
  return latest;
}

/** The runs under `runsDir`: its direct sub-folders holding `metrics.jsonl` or `config.json`, newest first. */
export async function listRuns(runsDir: string): Promise<RunInfo[]> {
  let entries;
  try {
    entries = await readdir(runsDir, { withFileTypes: true });
  } catch {
    return [];
  }
  const runs: RunInfo[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || e.name.startsWith('.')) continue;
    const dir = join(runsDir, e.name);
    // Only files whose real path stays inside the run folder count (a symlink out of it is ignored).
    const [metrics, config] = await Promise.all(['metrics.jsonl', 'config.json'].map((f) => resolveUnder(dir, f).catch(() => null)));
    const [ms, cs, ds] = await Promise.all([
      metrics ? stat(metrics).catch(() => null) : null,
      config ? stat(config).catch(() => null) : null,
      stat(dir).catch(() => null),
    ]);
    if (!ms && !cs) continue;
    runs.push({
      name: e.name,
      mtimeMs: Math.max(ms?.mtimeMs ?? 0, cs?.mtimeMs ?? 0, ds?.mtimeMs ?? 0),
      hasMetrics: !!ms,
      hasConfig: !!cs,
      latest: ms && metrics ? await lastRecord(metrics) : null,
    });
  }
  runs.sort((a, b) => b.mtimeMs - a.mtimeMs || a.name.localeCompare(b.name));
  return runs;
}

// Atomic writes for every file Kiln puts on disk: write under a temporary name in the same folder, fsync the
// file, rename it into place, fsync the folder. A crash at any moment leaves the old file or the new one.

import {
  closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

let counter = 0;

/** The prefix every temporary name starts with, so stale ones can be recognised and removed. */
export const TEMP_MARK = '.tmp-';

/** A fresh temporary path beside `path` (same folder, so the final rename stays on one file system). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `${TEMP_MARK}${basename(path)}-${process.pid}-${Date.now()}-${counter++}`);
}

/**
 * Creates a folder and its missing parents, one level at a time, failing with a sentence that names the folder.
 * Used instead of mkdirSync({ recursive: true }), which on Node 20 loops forever under /proc (`--out /proc/x`).
 * `makeDirs('runs/tiny')`
 */
export function makeDirs(path: string, what = 'folder'): void {
  const missing: string[] = [];
  let p = resolve(path);
  while (!existsSync(p)) {
    missing.push(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  if (existsSync(p) && !statSync(p).isDirectory()) {
    throw new Error(`cannot create the ${what} '${path}': '${p}' exists and is not a folder`);
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EEXIST' && statSync(dir).isDirectory()) continue; // another process made it first
      throw new Error(`cannot create the ${what} '${path}': ${e.code ?? e.message} at '${dir}'`);
    }
  }
}

/** fsyncs a folder so renames inside it survive a crash (a no-op where folders cannot be opened or synced). */
export function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // some file systems refuse fsync on a folder; the rename is still atomic there
  } finally {
    closeSync(fd);
  }
}

/** Writes bytes to a new file and fsyncs it (not atomic by itself: the caller renames it into place). */
export function writeFileSynced(path: string, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const fd = openSync(path, 'w');
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `data` to `path` atomically, creating the folder when needed.
 * `writeFileAtomic('run/config.json', JSON.stringify(config))`
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const dir = dirname(path);
  makeDirs(dir);
  const tmp = tempPathFor(path);
  try {
    writeFileSynced(tmp, data);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dir);
}

/**
 * A file written in pieces (a stream of token chunks, a header patched at the end) and published atomically:
 * the bytes go to a temporary name beside `path`; commit() fsyncs, renames into place and fsyncs the folder;
 * abort() drops the temporary.
 *
 * @example
 * ```ts
 * const w = new AtomicFileWriter('data/train.bin');
 * w.writeAt(new Uint8Array([1, 2, 3]), 0);
 * w.commit();
 * ```
 */
export class AtomicFileWriter {
  readonly path: string;
  private tmp: string;
  private fd: number | null;

  constructor(path: string) {
    makeDirs(dirname(path));
    this.path = path;
    this.tmp = tempPathFor(path);
    this.fd = openSync(this.tmp, 'w');
  }

  /** Writes all of `bytes` at byte `position` of the (temporary) file. */
  writeAt(bytes: Uint8Array, position: number): void {
    if (this.fd === null) throw new Error(`AtomicFileWriter ${this.path}: expected an open file, found it already committed or aborted.`);
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off, position + off);
  }

  /** fsyncs the file, renames it to its final name and fsyncs the folder. */
  commit(): void {
    if (this.fd === null) throw new Error(`AtomicFileWriter ${this.path}: expected an open file, found it already committed or aborted.`);
    const fd = this.fd;
    this.fd = null;
    try {
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      rmSync(this.tmp, { force: true });
      throw err;
    }
    closeSync(fd);
    try {
      renameSync(this.tmp, this.path);
    } catch (err) {
      rmSync(this.tmp, { force: true });
      throw err;
    }
    fsyncDir(dirname(this.path));
  }

  /** Drops the unfinished file (a no-op once committed). */
  abort(): void {
    if (this.fd === null) return;
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    this.fd = null;
    rmSync(this.tmp, { force: true });
  }
}

/** Renames a finished file (or folder) to `dest` and fsyncs the folders involved, so the rename survives a crash. */
export function renameAtomic(src: string, dest: string): void {
  renameSync(src, dest);
  fsyncDir(dirname(dest));
  if (dirname(src) !== dirname(dest)) fsyncDir(dirname(src));
}

/**
 * Moves a finished folder (written under a temporary name) to `dest` atomically. If `dest` exists it is first
 * renamed aside and removed only after the new folder is in place, so a crash never leaves neither. With
 * `keepExisting` (content-addressed caches, where another writer may have finished the same folder first), an
 * existing `dest` is kept instead, `src` is removed, and the result is false.
 */
export function renameDirAtomic(src: string, dest: string, options: { keepExisting?: boolean } = {}): boolean {
  const parent = dirname(dest);
  fsyncDir(src);
  if (options.keepExisting) {
    try {
      renameSync(src, dest);
    } catch (err) {
      if (!existsSync(dest)) throw err;
      rmSync(src, { recursive: true, force: true });
      return false;
    }
  } else if (existsSync(dest)) {
    const aside = tempPathFor(dest);
    renameSync(dest, aside);
    renameSync(src, dest);
    fsyncDir(parent);
    rmSync(aside, { recursive: true, force: true });
  } else {
    renameSync(src, dest);
  }
  fsyncDir(parent);
  return true;
}

/** The pid a temporary name was made by (tempPathFor puts it before the time and counter), or null. */
export function tempOwnerPid(name: string): number | null {
  const m = /-(\d+)-\d+-\d+$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** Whether a process with this pid is running (EPERM: it runs under another user, so it is alive). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary files and folders this module left in `dir` whose writer is gone (a killed export or
 * checkpoint); a temporary of a live process (this one, or another writer at work) is kept. Returns their names.
 */
export function removeStaleTemps(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(TEMP_MARK)) continue;
    const pid = tempOwnerPid(name);
    if (pid !== null && processAlive(pid)) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

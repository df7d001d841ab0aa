// Atomic writes for every file Kiln puts on disk: write under a temporary name in the same folder, fsync the
// file, rename it into place, fsync the folder. A crash at any moment leaves the old file or the new one.

import {
  closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

let counter = 0;

/** The prefix every temporary name starts with, so stale ones can be recognised and removed. */
export const TEMP_MARK = '.tmp-';

/** A fresh temporary path beside `path` (same folder, so the final rename stays on one file system). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `${TEMP_MARK}${basename(path)}-${process.pid}-${Date.now()}-${counter++}`);
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
  mkdirSync(dir, { recursive: true });
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
 * Moves a finished folder (written under a temporary name) to `dest` atomically. If `dest` exists it is first
 * renamed aside and removed only after the new folder is in place, so a crash never leaves neither.
 */
export function renameDirAtomic(src: string, dest: string): void {
  const parent = dirname(dest);
  fsyncDir(src);
  if (existsSync(dest)) {
    const aside = tempPathFor(dest);
    renameSync(dest, aside);
    renameSync(src, dest);
    fsyncDir(parent);
    rmSync(aside, { recursive: true, force: true });
  } else {
    renameSync(src, dest);
  }
  fsyncDir(parent);
}

/** Removes the temporary files and folders this module left in `dir` (from a crashed writer); returns their names. */
export function removeStaleTemps(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name.startsWith(TEMP_MARK)) {
      rmSync(join(dir, name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}

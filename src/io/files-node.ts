// Node's file operations for the browser-safe modules that read or write a file on request (files.ts).
// Imported by Kiln's Node entry; the browser entry never reaches it.

import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { setFileAccess } from './files.js';

/** Gives browser-safe modules Node's files (idempotent); called when this module loads. */
export function registerNodeFiles(): void {
  setFileAccess({ readFile: (path) => readFileSync(path), writeFileAtomic });
}

registerNodeFiles();

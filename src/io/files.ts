// The few file operations browser-safe code needs only on request (a tokenizer's save(path) and load(path)).
// This file imports no Node built-ins: the Node entry supplies the operations (files-node.ts); in a browser they
// are absent and such calls fail with one sentence that says what to use instead.

/** Reading a whole file and writing one atomically. */
export interface FileAccess {
  readFile(path: string): Uint8Array;
  writeFileAtomic(path: string, data: string | Uint8Array): void;
}

let access: FileAccess | null = null;

/** Supplies the file operations (the Node entry does, with node:fs and io/atomic). */
export function setFileAccess(files: FileAccess): void { access = files; }

/** The file operations, or an error naming `what` needed them where there are none (browsers). */
export function fileAccess(what: string): FileAccess {
  if (!access) {
    throw new Error(`${what} needs a file system, which this build lacks (browsers have none); use the in-memory ` +
      'form instead (toJSON() / fromJSON(), encodeSafetensors / decodeSafetensors)');
  }
  return access;
}

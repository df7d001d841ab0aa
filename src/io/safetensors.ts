// Safetensors files in Node: the byte codec (safetensors-codec.ts, also in the browser build) plus reading and
// atomically writing files.

import { readFileSync, statSync } from 'node:fs';
import type { Tensor } from '../tensor/index.js';
import { writeFileAtomic } from './atomic.js';
import { decodeSafetensors, encodeSafetensors, type EncodeOptions, type SafetensorsFile } from './safetensors-codec.js';

export * from './safetensors-codec.js';

/** Writes tensors to a safetensors file atomically (temporary name, fsync, rename). */
export function saveSafetensors(path: string, tensors: Record<string, Tensor>, options: EncodeOptions = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, options));
}

/**
 * Reads a safetensors file; errors name the file and what is wrong with it.
 * `const { tensors } = loadSafetensors('run/checkpoints/step-100/model.safetensors')`
 */
export function loadSafetensors(path: string): SafetensorsFile {
  let bytes: Uint8Array;
  try {
    if (!statSync(path).isFile()) throw new Error('it is not a file');
    bytes = readFileSync(path);
  } catch (err) {
    throw new Error(`safetensors file '${path}' cannot be read: ${(err as Error).message}`);
  }
  return decodeSafetensors(bytes, path);
}

// Checks on weights before a model is built from them: the file's sha256 against the one recorded beside it
// (a run's trainer_state.json, an exported folder's config.json), floating-point dtypes only, finite values.
// A failure names the file and the --no-verify flag that skips the checks for debugging.

import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { decodeSafetensors, type SafetensorsDType, type SafetensorsFile } from '../io/safetensors.js';

/** A file's size and sha256 as recorded when it was written. */
export interface FileRecord { bytes: number; sha256: string }

/** Options of readWeights' checks. */
export interface VerifyOptions {
  /** The record to check the file against (none: the checksum is not checked). */
  record?: FileRecord | null;
  /** The dtype the folder's config.json declares for the weights (an exported folder's torch_dtype). */
  declaredDType?: SafetensorsDType | null;
}

const FLOAT_DTYPES: readonly SafetensorsDType[] = ['F16', 'BF16', 'F32', 'F64'];
const HINT = 'pass --no-verify to load it anyway (for debugging only)';

/** The error every failed check throws: it names the file and the flag. */
export class WeightsVerifyError extends Error {
  constructor(readonly file: string, problem: string) {
    super(`weights '${file}' ${problem}; ${HINT}`);
    this.name = 'WeightsVerifyError';
  }
}

/** A file record from JSON, or null when `v` does not hold one. */
export function fileRecord(v: unknown): FileRecord | null {
  const r = v as Partial<FileRecord> | null | undefined;
  return r && typeof r === 'object' && Number.isInteger(r.bytes) && typeof r.sha256 === 'string' ? { bytes: r.bytes!, sha256: r.sha256 } : null;
}

function readBytes(path: string): Uint8Array {
  try {
    if (!statSync(path).isFile()) throw new Error('it is not a file');
    return readFileSync(path);
  } catch (err) {
    throw new Error(`safetensors file '${path}' cannot be read: ${(err as Error).message}`);
  }
}

/** Checks the bytes against the record: size first (a truncated copy), then the sha256. */
export function checkRecord(path: string, bytes: Uint8Array, record: FileRecord): void {
  if (bytes.length !== record.bytes) {
    throw new WeightsVerifyError(path, `are ${bytes.length} bytes but ${record.bytes} were recorded when they were written (truncated or replaced)`);
  }
  const sum = createHash('sha256').update(bytes).digest('hex');
  if (sum !== record.sha256) throw new WeightsVerifyError(path, 'do not match the sha256 recorded when they were written (the file changed on disk)');
}

/** Floating-point dtypes only (and the declared one, when given), and no NaN or infinity in any tensor. */
export function checkTensors(path: string, file: SafetensorsFile, declared: SafetensorsDType | null = null): void {
  for (const [name, dtype] of Object.entries(file.dtypes)) {
    if (!FLOAT_DTYPES.includes(dtype)) throw new WeightsVerifyError(path, `store tensor '${name}' as ${dtype}; model weights are floating point (F32, F16, BF16)`);
    if (declared && dtype !== declared) throw new WeightsVerifyError(path, `store tensor '${name}' as ${dtype} but config.json declares ${declared}`);
  }
  for (const [name, t] of Object.entries(file.tensors)) {
    const s = t.storage;
    for (let i = 0; i < s.length; i++) {
      if (!Number.isFinite(s[i])) throw new WeightsVerifyError(path, `hold ${s[i]} in tensor '${name}' (element ${i}); the weights are not finite`);
    }
  }
}

/**
 * Reads a safetensors file of weights, verified unless `verify` is false.
 * `readWeights('models/chat/model.safetensors', true, { record })`
 */
export function readWeights(path: string, verify: boolean, options: VerifyOptions = {}): SafetensorsFile {
  const bytes = readBytes(path);
  if (verify && options.record) checkRecord(path, bytes, options.record);
  const file = decodeSafetensors(bytes, path);
  if (verify) checkTensors(path, file, options.declaredDType ?? null);
  return file;
}

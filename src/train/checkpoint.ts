// Checkpoints: checkpoints/step-N/{model.safetensors, optimizer.safetensors, trainer_state.json}, written
// under a temporary folder name and renamed into place, so a crash never leaves half a checkpoint under a
// final name. trainer_state.json (written last) records each file's size and sha256, so truncation and
// corruption are caught on load with a message naming the file.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, type GeneratorState } from '../tensor/index.js';
import { fsyncDir, makeDirs, removeStaleTemps, renameDirAtomic, tempPathFor, writeFileSynced } from '../io/atomic.js';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors.js';

export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'trainer_state.json';
const STATE_FORMAT = 'kiln.trainer_state';

/** Any value JSON can hold. */
export type JSONValue = null | boolean | number | string | JSONValue[] | { [k: string]: JSONValue };

/** What trainer_state.json holds (snake_case, as files read by other tools are). */
export interface TrainerState {
  format: typeof STATE_FORMAT;
  version: 1;
  step: number;
  epoch: number;
  /** The training source's position (a DataLoader's { epoch, position, ... }). */
  data: JSONValue;
  /** Every random generator's state, by name ('default' is the global generator). */
  rng: Record<string, GeneratorState>;
  best_val_loss: number | null;
  best_step: number | null;
  best_checkpoint_step: number | null;
  val_loss: number | null;
  early_stopping: { wait: number } | null;
  schedule: JSONValue;
  elapsed_s: number;
  samples_seen: number;
  tokens_seen: number;
  /** Bytes of metrics.jsonl when the checkpoint was written; a resume cuts the log back to this. */
  metrics_bytes: number;
  /** The run's config (config.json), to check a resume against. */
  config: JSONValue;
  /** Parameter and buffer shapes by name. */
  model_shapes: Record<string, number[]>;
  /** Processes that trained together (mpirun -np); absent in checkpoints from before data-parallel training: 1. */
  world_size?: number;
  files: Record<string, { bytes: number; sha256: string }>;
}

/** A checkpoint folder found on disk: its step and path. */
export interface CheckpointInfo { step: number; dir: string }

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Optimizer state dict -> safetensors bytes: tensors by path, everything else as JSON in the metadata. */
export function encodeOptimizerState(sd: unknown): Uint8Array {
  const tensors: Record<string, Tensor> = {};
  const walk = (v: unknown, path: string): unknown => {
    if (v instanceof Tensor) {
      tensors[path] = v;
      return { __tensor__: path };
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${path}.${i}`));
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x, path ? `${path}.${k}` : k);
      return out;
    }
    if (typeof v === 'number' && !Number.isFinite(v)) return { __number__: String(v) };
    return v;
  };
  const structure = walk(sd, '');
  return encodeSafetensors(tensors, { metadata: { format: 'kiln', kiln_optimizer: JSON.stringify(structure) } });
}

/** The inverse of encodeOptimizerState. */
export function decodeOptimizerState(bytes: Uint8Array, source: string): unknown {
  const { tensors, metadata } = decodeSafetensors(bytes, source);
  if (typeof metadata.kiln_optimizer !== 'string') {
    throw new Error(`optimizer file '${source}' has no kiln_optimizer metadata; it was not written by Kiln's Trainer`);
  }
  let structure: unknown;
  try {
    structure = JSON.parse(metadata.kiln_optimizer);
  } catch (err) {
    throw new Error(`optimizer file '${source}': its kiln_optimizer metadata is not JSON (${(err as Error).message})`);
  }
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o.__tensor__ === 'string') {
        const t = tensors[o.__tensor__];
        if (!t) throw new Error(`optimizer file '${source}' lacks the tensor '${o.__tensor__}' its metadata names`);
        return t;
      }
      if (typeof o.__number__ === 'string') return Number(o.__number__);
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(o)) out[k] = walk(x);
      return out;
    }
    return v;
  };
  return walk(structure);
}

/** The step-N folders of a checkpoints folder that are complete (three files, trainer_state.json parses), newest first. */
export function listCheckpoints(checkpointsDir: string): CheckpointInfo[] {
  if (!existsSync(checkpointsDir)) return [];
  const out: CheckpointInfo[] = [];
  for (const name of readdirSync(checkpointsDir)) {
    const m = /^step-(\d+)$/.exec(name);
    if (!m) continue;
    const dir = join(checkpointsDir, name);
    if (!isComplete(dir)) continue;
    out.push({ step: Number(m[1]), dir });
  }
  return out.sort((a, b) => b.step - a.step);
}

function isComplete(dir: string): boolean {
  try {
    if (!existsSync(join(dir, MODEL_FILE)) || !existsSync(join(dir, OPTIMIZER_FILE))) return false;
    const s = JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8'));
    return s && s.format === STATE_FORMAT && Number.isInteger(s.step);
  } catch {
    return false;
  }
}

/** Test hook: KILN_CHECKPOINT_PAUSE_MS makes the writer announce itself and pause between files. */
function testPause(step: number, file: string): void {
  const ms = Number(process.env.KILN_CHECKPOINT_PAUSE_MS ?? 0);
  if (!(ms > 0)) return;
  process.stderr.write(`kiln: writing checkpoint step-${step}: ${file}\n`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Writes checkpoints/step-N atomically: the three files go into a temporary folder (each fsynced,
 * trainer_state.json last), which is then renamed into place. Returns the final folder.
 */
export function writeCheckpoint(checkpointsDir: string, state: Omit<TrainerState, 'files' | 'format' | 'version'>,
  modelState: Record<string, Tensor>, optimizerState: unknown): string {
  makeDirs(checkpointsDir, 'checkpoints folder');
  const final = join(checkpointsDir, `step-${state.step}`);
  const tmp = tempPathFor(final);
  mkdirSync(tmp);
  try {
    const model = encodeSafetensors(modelState, { metadata: { format: 'pt', producer: 'kiln' } });
    const optimizer = encodeOptimizerState(optimizerState);
    writeFileSynced(join(tmp, MODEL_FILE), model);
    testPause(state.step, MODEL_FILE);
    writeFileSynced(join(tmp, OPTIMIZER_FILE), optimizer);
    testPause(state.step, OPTIMIZER_FILE);
    const full: TrainerState = {
      format: STATE_FORMAT, version: 1, ...state,
      files: {
        [MODEL_FILE]: { bytes: model.length, sha256: sha256(model) },
        [OPTIMIZER_FILE]: { bytes: optimizer.length, sha256: sha256(optimizer) },
      },
    };
    writeFileSynced(join(tmp, STATE_FILE), `${JSON.stringify(full, null, 1)}\n`);
    testPause(state.step, STATE_FILE);
    renameDirAtomic(tmp, final);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return final;
}

/** Removes temporary folders a killed writer left behind (never a step-N folder). */
export function cleanStaleCheckpointTemps(checkpointsDir: string): string[] {
  return removeStaleTemps(checkpointsDir);
}

/** Deletes complete checkpoints beyond the newest keepLast, sparing the ones in `keep`. */
export function pruneCheckpoints(checkpointsDir: string, keepLast: number, keep: ReadonlySet<number>): void {
  const all = listCheckpoints(checkpointsDir);
  all.slice(keepLast).forEach((c) => {
    if (!keep.has(c.step)) rmSync(c.dir, { recursive: true, force: true });
  });
  fsyncDir(checkpointsDir);
}

/** A checkpoint read back: weights, optimizer state and the trainer state. */
export interface LoadedCheckpoint {
  dir: string;
  state: TrainerState;
  model: Record<string, Tensor>;
  optimizer: unknown;
}

function readChecked(dir: string, file: string, state: TrainerState): Uint8Array {
  const path = join(dir, file);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new Error(`checkpoint file '${path}' cannot be read: ${(err as Error).message}`);
  }
  const want = state.files?.[file];
  if (!want) throw new Error(`checkpoint '${join(dir, STATE_FILE)}' does not record ${file}; the checkpoint is incomplete`);
  if (bytes.length !== want.bytes) {
    throw new Error(`checkpoint file '${path}' is ${bytes.length < want.bytes ? 'truncated' : 'too long'}: ` +
      `${bytes.length} bytes, but trainer_state.json records ${want.bytes}`);
  }
  if (sha256(bytes) !== want.sha256) {
    throw new Error(`checkpoint file '${path}' is corrupt: its sha256 does not match the one recorded in trainer_state.json`);
  }
  return bytes;
}

/** Reads trainer_state.json of a checkpoint folder, with a clear error when it is missing or broken. */
export function readTrainerState(dir: string): TrainerState {
  const path = join(dir, STATE_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`checkpoint '${dir}' has no readable ${STATE_FILE} (${(err as Error).message}); it is incomplete`);
  }
  let s: TrainerState;
  try {
    s = JSON.parse(text) as TrainerState;
  } catch (err) {
    throw new Error(`checkpoint file '${path}' is not valid JSON (truncated or corrupt): ${(err as Error).message}`);
  }
  if (!s || s.format !== STATE_FORMAT || !Number.isInteger(s.step) || !Number.isInteger(s.epoch)) {
    throw new Error(`checkpoint file '${path}' is not a Kiln trainer state (expected format '${STATE_FORMAT}' with step and epoch)`);
  }
  return s;
}

/** Loads and verifies a checkpoint folder (sizes and checksums of both tensor files). */
export function readCheckpoint(dir: string): LoadedCheckpoint {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`checkpoint '${dir}' does not exist or is not a folder`);
  const state = readTrainerState(dir);
  const modelBytes = readChecked(dir, MODEL_FILE, state);
  const optBytes = readChecked(dir, OPTIMIZER_FILE, state);
  const model = decodeSafetensors(modelBytes, join(dir, MODEL_FILE)).tensors;
  const optimizer = decodeOptimizerState(optBytes, join(dir, OPTIMIZER_FILE));
  return { dir, state, model, optimizer };
}

/**
 * Checks a checkpoint's tensors against a model's state dict: same names, same shapes. The error names the
 * file and every mismatch.
 */
export function checkModelMatches(file: string, saved: Record<string, Tensor>, own: Record<string, Tensor>): void {
  const problems: string[] = [];
  for (const [k, t] of Object.entries(own)) {
    const s = saved[k];
    if (!s) problems.push(`'${k}' is missing from the file`);
    else if (s.shape.length !== t.shape.length || s.shape.some((d, i) => d !== t.shape[i])) {
      problems.push(`'${k}' has shape [${s.shape.join(', ')}] in the file but [${t.shape.join(', ')}] in the model`);
    }
  }
  for (const k of Object.keys(saved)) if (!(k in own)) problems.push(`the file has '${k}', which the model lacks`);
  if (problems.length) {
    const shown = problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : '');
    throw new Error(`checkpoint file '${file}' was written for a different model configuration: ${shown}`);
  }
}

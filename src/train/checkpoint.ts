// Checkpoints: checkpoints/step-N/{model.safetensors, optimizer.safetensors, trainer_state.json}, written
// under a temporary folder name and renamed into place, so a crash never leaves half a checkpoint under a
// final name. trainer_state.json (written last) records each file's size and sha256, so truncation and
// corruption are caught on load with a message naming the file.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from '../tensor/index.js';
import { fsyncDir, makeDirs, removeStaleTemps, renameDirAtomic, tempPathFor, writeFileSynced } from '../io/atomic.js';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors.js';
import {
  decodeOptimizerState, encodeOptimizerState, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, STATE_FORMAT, type JSONValue, type TrainerState, type CheckpointInfo,
} from './checkpoint-state.js';

export {
  MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, encodeOptimizerState, decodeOptimizerState, type JSONValue, type TrainerState,
  type CheckpointInfo, checkModelMatches,
} from './checkpoint-state.js';

/** The run's checkpoints folder (runDir/checkpoints). */
export function checkpointsDir(o: { runDir?: string }): string { return join(o.runDir ?? '.', 'checkpoints'); }

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');


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

// Checkpoints without files: the weights and optimizer state as safetensors bytes beside the trainer state, so a
// browser can keep them in memory, put them in IndexedDB or offer them as downloads, and resume exactly from them.

import type { Tensor } from '../tensor/index.js';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors-codec.js';
import {
  decodeOptimizerState, encodeOptimizerState, MODEL_FILE, OPTIMIZER_FILE, STATE_FORMAT, type TrainerState,
} from './checkpoint-state.js';
import { restoreCheckpoint } from './restore.js';
import type { RunState } from './run-state.js';
import type { BaseTrainer } from './base-trainer.js';

/** A checkpoint held in memory: what checkpoints/step-N holds in Node, as bytes and an object. */
export interface MemoryCheckpoint {
  /** trainer_state.json's contents (step, data position, RNG states, ...); `files` records the byte sizes. */
  state: TrainerState;
  /** model.safetensors: the weights by their state-dict names. */
  model: Uint8Array;
  /** optimizer.safetensors: the optimizer's moments and step counts. */
  optimizer: Uint8Array;
}

/** Whether a value is a MemoryCheckpoint (as opposed to a run folder path). */
export function isMemoryCheckpoint(x: unknown): x is MemoryCheckpoint {
  const c = x as MemoryCheckpoint | null;
  return !!c && typeof c === 'object' && c.model instanceof Uint8Array && c.optimizer instanceof Uint8Array &&
    !!c.state && c.state.format === STATE_FORMAT;
}

/** Packs a trainer state, a model state dict and an optimizer state dict into a MemoryCheckpoint. @internal */
export function encodeMemoryCheckpoint(state: Omit<TrainerState, 'files' | 'format' | 'version'>,
  model: Record<string, Tensor>, optimizer: unknown): MemoryCheckpoint {
  const modelBytes = encodeSafetensors(model, { metadata: { format: 'pt' } });
  const optBytes = encodeOptimizerState(optimizer);
  // No checksums: the bytes never left memory (files written from them get theirs in Node).
  const files = { [MODEL_FILE]: { bytes: modelBytes.length, sha256: '' }, [OPTIMIZER_FILE]: { bytes: optBytes.length, sha256: '' } };
  return { state: { format: STATE_FORMAT, version: 1, ...state, files }, model: modelBytes, optimizer: optBytes };
}

/** Restores a MemoryCheckpoint into a trainer (after checking it fits); returns its step. @internal */
export function decodeMemoryCheckpoint<B>(trainer: BaseTrainer<B>, run: RunState, ck: MemoryCheckpoint): number {
  const label = `memory checkpoint at step ${ck.state.step}`;
  for (const [file, bytes] of [[MODEL_FILE, ck.model], [OPTIMIZER_FILE, ck.optimizer]] as const) {
    const want = ck.state.files?.[file]?.bytes;
    if (want !== undefined && want !== bytes.length) {
      throw new Error(`Trainer.fit: the ${label} is damaged: its ${file} holds ${bytes.length} bytes, but its state records ${want}`);
    }
  }
  const model = decodeSafetensors(ck.model, `${label} (${MODEL_FILE})`).tensors;
  const optimizer = decodeOptimizerState(ck.optimizer, `${label} (${OPTIMIZER_FILE})`);
  return restoreCheckpoint(trainer, run, { state: ck.state, model, optimizer }, {
    state: label, model: `${label} (${MODEL_FILE})`, optimizer: `${label} (${OPTIMIZER_FILE})`, label,
  });
}

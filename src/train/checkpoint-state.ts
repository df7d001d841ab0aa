// A checkpoint's contents without files: trainer_state.json's shape and the optimizer state as safetensors bytes.
// The Node build writes them to checkpoints/step-N (checkpoint.ts); the browser keeps them in memory.

import { Tensor, type GeneratorState } from '../tensor/index.js';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors-codec.js';

export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'trainer_state.json';
export const STATE_FORMAT = 'kiln.trainer_state';

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

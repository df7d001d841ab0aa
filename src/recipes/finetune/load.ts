// Where fine-tuning and export start from: any folder the one loader (hub/load) reads (a run's best checkpoint,
// a LoRA fine-tuning run with its adapters merged, a frozen Kiln model folder, a Hugging Face GPT-2 or Llama folder),
// handed back trainable.

import { existsSync, statSync } from 'node:fs';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import { loadModel } from '../../hub/load.js';
import type { TokenizerConfig } from '../../hub/tokenizer-config.js';
import type { CausalLM } from '../../models/arch.js';

/** The model a fine-tune starts from, with its tokenizer and config. */
export interface SourceModel {
  model: CausalLM;
  tokenizer: Tokenizer;
  /** tokenizer_config.json of the folder, when it has one. */
  tokenizerConfig: TokenizerConfig | null;
  /** 'run', 'model' (frozen or Hugging Face folder) or 'lora-run' (a LoRA fine-tuning run, merged). */
  kind: 'run' | 'model' | 'lora-run';
  /** Where the weights came from. */
  weightsPath: string;
}

/**
 * Loads a model to fine-tune or export, in training mode with every parameter trainable (the caller freezes).
 * Fails with one sentence when the folder is not a model.
 */
export function loadSourceModel(dir: string, options: { verify?: boolean } = {}): SourceModel {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`--from '${dir}' does not exist or is not a folder`);
  let loaded;
  try {
    loaded = loadModel(dir, options);
  } catch (err) {
    throw new Error(`--from '${dir}' is not a model Kiln can load: ${(err as Error).message}`);
  }
  loaded.model.unfreeze();
  loaded.model.train();
  return { model: loaded.model, tokenizer: loaded.tokenizer, tokenizerConfig: loaded.tokenizerConfig, kind: loaded.kind, weightsPath: loaded.weightsPath };
}

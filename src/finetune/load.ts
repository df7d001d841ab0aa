// Where fine-tuning and export start from: any folder loadModel reads (a run's best checkpoint, a frozen Kiln
// model folder, a Hugging Face GPT-2 folder), plus Kiln fine-tuning runs trained with LoRA, whose checkpoints
// hold the adapters beside the frozen base weights: those are rebuilt and merged into a plain GPT.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer } from '../data/tokenizer/load.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { loadSafetensors } from '../io/safetensors.js';
import { bestCheckpoint, loadModel } from '../io/model-folder.js';
import { GPT } from '../models/gpt.js';
import { gptConfigFromJSON } from '../models/gpt-config.js';
import { applyLoRA, mergeLoRA, type AdapterConfig } from '../nn/lora.js';
import { readTokenizerConfig, type TokenizerConfig } from './chat-template.js';

export interface SourceModel {
  model: GPT;
  tokenizer: Tokenizer;
  /** tokenizer_config.json of the folder, when it has one. */
  tokenizerConfig: TokenizerConfig | null;
  /** 'run', 'model' (frozen or Hugging Face folder) or 'lora-run' (a LoRA fine-tuning run, merged). */
  kind: 'run' | 'model' | 'lora-run';
  /** Where the weights came from. */
  weightsPath: string;
}

/** The LoRA settings a fine-tuning run recorded in its config.json (finetune.lora), if any. */
function runLoRA(dir: string): AdapterConfig | null {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) return null;
  try {
    const cfg = JSON.parse(readFileSync(path, 'utf8')) as { finetune?: { lora?: AdapterConfig | null } };
    return cfg.finetune?.lora ?? null;
  } catch {
    return null;
  }
}

/**
 * Loads a model to fine-tune or export, in training mode with every parameter trainable (the caller freezes).
 * Fails with one sentence when the folder is not a model.
 */
export function loadSourceModel(dir: string): SourceModel {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`--from '${dir}' does not exist or is not a folder`);
  const lora = runLoRA(dir);
  let out: SourceModel;
  if (lora && existsSync(join(dir, 'checkpoints'))) {
    const cfg = gptConfigFromJSON(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
    const model = new GPT(cfg);
    applyLoRA(model, { rank: lora.r, alpha: lora.lora_alpha, dropout: lora.lora_dropout, targets: lora.target_modules });
    const best = bestCheckpoint(dir);
    const weightsPath = join(best.dir, 'model.safetensors');
    model.loadStateDict(loadSafetensors(weightsPath).tensors);
    mergeLoRA(model);
    const tokPath = join(dir, 'tokenizer.json');
    if (!existsSync(tokPath)) throw new Error(`--from '${dir}': the run has no tokenizer.json`);
    out = { model, tokenizer: loadTokenizer(tokPath), tokenizerConfig: null, kind: 'lora-run', weightsPath };
  } else {
    let loaded;
    try {
      loaded = loadModel(dir);
    } catch (err) {
      throw new Error(`--from '${dir}' is not a model Kiln can load: ${(err as Error).message}`);
    }
    out = { model: loaded.model, tokenizer: loaded.tokenizer, tokenizerConfig: null, kind: loaded.kind, weightsPath: loaded.weightsPath };
  }
  out.tokenizerConfig = readTokenizerConfig(join(dir, 'tokenizer_config.json'));
  out.model.unfreeze();
  out.model.train();
  return out;
}

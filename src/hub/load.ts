// The one model loader: a training run (its best checkpoint), a LoRA fine-tuning run (its adapters rebuilt and
// merged into the base), a frozen model folder (config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json) or a Hugging Face GPT-2 folder. Inference, fine-tuning (--from) and export all load here.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { loadTokenizer } from '../data/tokenizer/load.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import type { SafetensorsDType } from '../io/safetensors.js';
import { createModel, modelConfigFromJSON, type CausalLM, type ModelConfig } from '../models/arch.js';
import { Llama } from '../models/llama.js';
import { checkMemory, gptInferenceBytes, gptLargestTensor } from '../models/memory.js';
import { applyLoRA, mergeLoRA, type AdapterConfig } from '../nn/lora.js';
import type { Tensor } from '../tensor/tensor.js';
import { chatSpecialTokens, readTokenizerConfig, type TokenizerConfig } from './tokenizer-config.js';
import { fileRecord, readWeights, WeightsVerifyError, type FileRecord } from './verify.js';

/** Options of loadModel. */
export interface LoadModelOptions {
  /**
   * Check the weights before use (default true): the sha256 recorded when they were written (a run's
   * trainer_state.json, an exported folder's config.json), floating-point dtypes, finite values. false is for
   * debugging a damaged file (`--no-verify`).
   */
  verify?: boolean;
}

const TORCH_DTYPES: Record<string, SafetensorsDType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** The record of model.safetensors a run checkpoint or an exported folder keeps, if any. */
function weightsRecord(kind: 'run' | 'model', configJson: Record<string, unknown>, checkpointDir: string | null): FileRecord | null {
  if (kind === 'model') return fileRecord((configJson.kiln as { files?: Record<string, unknown> } | undefined)?.files?.['model.safetensors']);
  let state: Record<string, unknown>;
  try {
    state = readJSON(join(checkpointDir!, 'trainer_state.json'), 'trainer state');
  } catch (err) {
    throw new WeightsVerifyError(join(checkpointDir!, 'model.safetensors'), `cannot be checked: ${(err as Error).message}`);
  }
  return fileRecord((state.files as Record<string, unknown> | undefined)?.['model.safetensors']);
}

/** What loadModel returns: a frozen model in evaluation mode and everything needed to talk to it. */
export interface LoadedModel {
  model: CausalLM;
  tokenizer: Tokenizer;
  config: ModelConfig;
  /** The folder's Jinja chat template (tokenizer_config.json `chat_template`), when it has one. */
  chatTemplate?: string;
  /** bos_token / eos_token from tokenizer_config.json, for the chat template. */
  specialTokens: { bos_token?: string; eos_token?: string };
  /** The folder's tokenizer_config.json, when it has one. */
  tokenizerConfig: TokenizerConfig | null;
  /** Where the weights came from. */
  weightsPath: string;
  /**
   * 'run' (a training run's checkpoint), 'lora-run' (a LoRA fine-tuning run's checkpoint, adapters merged) or
   * 'model' (a frozen or Hugging Face folder).
   */
  kind: 'run' | 'lora-run' | 'model';
  /** The checkpoint step, for a run. */
  step?: number;
  /** A name for the model (the folder's name), as the server reports it. */
  name: string;
}

function readJSON(path: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`${what} '${path}' cannot be read: ${(err as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${what} '${path}' is not valid JSON: ${(err as Error).message}`);
  }
}

/** A checkpoint chosen by bestCheckpoint: its folder and step. */
export interface CheckpointChoice { dir: string; step: number }

/**
 * The best checkpoint of a run: the one the newest trainer_state.json names as best, else the lowest val_loss
 * among checkpoints that recorded one, else the newest.
 */
export function bestCheckpoint(runDir: string): CheckpointChoice {
  const root = join(runDir, 'checkpoints');
  const steps = readdirSync(root)
    .map((name) => ({ name, m: /^step-(\d+)$/.exec(name) }))
    .filter((e): e is { name: string; m: RegExpExecArray } => e.m !== null && existsSync(join(root, e.name, 'model.safetensors')))
    .map((e) => ({ dir: join(root, e.name), step: Number(e.m[1]) }))
    .sort((a, b) => a.step - b.step);
  if (steps.length === 0) throw new Error(`run folder '${runDir}' has no checkpoints (expected checkpoints/step-N/model.safetensors)`);
  const state = (c: CheckpointChoice): Record<string, unknown> | null => {
    try {
      return readJSON(join(c.dir, 'trainer_state.json'), 'trainer state');
    } catch {
      return null;
    }
  };
  const newest = steps[steps.length - 1];
  const named = state(newest)?.best_checkpoint_step;
  if (typeof named === 'number') {
    const hit = steps.find((c) => c.step === named);
    if (hit) return hit;
  }
  let best: CheckpointChoice | null = null;
  let bestLoss = Infinity;
  for (const c of steps) {
    const v = state(c)?.val_loss;
    if (typeof v === 'number' && Number.isFinite(v) && v <= bestLoss) {
      best = c;
      bestLoss = v;
    }
  }
  return best ?? newest;
}

/** The LoRA settings a fine-tuning run recorded in its config.json (finetune.lora), if any. */
function runLoRA(configJson: Record<string, unknown>): AdapterConfig | null {
  const ft = configJson.finetune as { lora?: AdapterConfig | null } | undefined;
  return ft && typeof ft === 'object' ? ft.lora ?? null : null;
}

/**
 * Loads a model folder. `dir` is a run folder (config.json, tokenizer.json, checkpoints/step-N/...: its best
 * checkpoint is used; a LoRA fine-tuning run's adapters are merged into the base weights), a frozen model
 * folder written by `kiln export`, or a Hugging Face GPT-2 folder (config.json with n_embd/n_layer/...,
 * model.safetensors, tokenizer.json). The model comes back in evaluation mode with every parameter frozen
 * (call `model.unfreeze()` and `model.train()` to fine-tune it).
 *
 * @example
 * ```ts
 * const { model, tokenizer } = kiln.hub.loadModel('runs/tiny');
 * kiln.infer.generateText(model, tokenizer, 'Once upon a time').text;
 * ```
 */
export function loadModel(dir: string, options: LoadModelOptions = {}): LoadedModel {
  const verify = options.verify ?? true;
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`model folder '${dir}' does not exist or is not a folder`);
  const configPath = join(root, 'config.json');
  if (!existsSync(configPath)) throw new Error(`model folder '${dir}' has no config.json (expected a run folder or a model folder)`);
  const configJson = readJSON(configPath, 'model config');
  let config: ModelConfig;
  try {
    config = modelConfigFromJSON(configJson);
  } catch (err) {
    throw new Error(`model config '${configPath}': ${(err as Error).message}`);
  }
  checkMemory(gptInferenceBytes(config),
    `the model in '${dir}' (${config.layers} layers, width ${config.width}, context ${config.context}, vocabulary ${config.vocabSize}, from ${configPath})`,
    { total: totalmem(), free: freemem() }, gptLargestTensor(config));
  let weightsPath: string;
  let kind: LoadedModel['kind'];
  let step: number | undefined;
  let checkpointDir: string | null = null;
  const lora = runLoRA(configJson);
  if (existsSync(join(root, 'checkpoints'))) {
    const best = bestCheckpoint(root);
    weightsPath = join(best.dir, 'model.safetensors');
    kind = lora ? 'lora-run' : 'run';
    step = best.step;
    checkpointDir = best.dir;
  } else {
    weightsPath = join(root, 'model.safetensors');
    kind = 'model';
    if (!existsSync(weightsPath)) throw new Error(`model folder '${dir}' has neither model.safetensors nor a checkpoints folder`);
  }
  const tokPath = join(root, 'tokenizer.json');
  if (!existsSync(tokPath)) throw new Error(`model folder '${dir}' has no tokenizer.json`);
  const tokConfig = readTokenizerConfig(join(root, 'tokenizer_config.json'));
  const tokenizer = loadTokenizer(tokPath);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new Error(`model folder '${dir}': the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${config.vocabSize}`);
  }

  const record = verify ? weightsRecord(kind === 'model' ? 'model' : 'run', configJson, checkpointDir) : null;
  const torchDType = configJson.torch_dtype; // from the file: only a known name counts (no String() of an object)
  const declared = kind === 'model' && configJson.kiln && typeof torchDType === 'string' && Object.hasOwn(TORCH_DTYPES, torchDType)
    ? TORCH_DTYPES[torchDType] : null;
  const { tensors } = readWeights(weightsPath, verify, { record, declaredDType: declared });
  const model = createModel(config);
  if (kind === 'lora-run') {
    // The checkpoint holds the run's own names: the frozen base weights and the adapters beside them.
    applyLoRA(model, { rank: lora!.r, alpha: lora!.lora_alpha, dropout: lora!.lora_dropout, targets: lora!.target_modules });
    try {
      model.loadStateDict(tensors);
    } catch (err) {
      throw new Error(`weights '${weightsPath}' do not fit the LoRA run's config: ${(err as Error).message.replace(/^loadStateDict: /, '')}`);
    }
    mergeLoRA(model);
  } else {
    loadWeights(model, tensors, weightsPath);
  }
  model.eval();
  model.freeze();

  const template = tokConfig?.chat_template ?? (typeof configJson.chat_template === 'string' ? configJson.chat_template : undefined);
  return {
    model, tokenizer, config, weightsPath, kind, step,
    chatTemplate: template,
    specialTokens: chatSpecialTokens(tokConfig),
    tokenizerConfig: tokConfig,
    name: root.split(/[\\/]/).filter(Boolean).pop() ?? 'model',
  };
}

/**
 * Copies a GPT-2 or Llama state dict into the model: Kiln's names, Hugging Face's (GPT-2: `transformer.` prefix, optional
 * lm_head.weight when tied) or the bare ones without `transformer.`. Attention mask buffers that old Hugging
 * Face files carry are ignored; anything else missing or mis-shaped fails naming the tensor.
 */
export function loadWeights(model: CausalLM, tensors: Record<string, Tensor>, source: string): void {
  const own = model.stateDict();
  const sd: Record<string, Tensor> = {};
  const buffer = model instanceof Llama ? /\.rotary_emb\.inv_freq$/ : /\.attn\.(masked_)?bias$/;
  for (const [k, t] of Object.entries(tensors)) {
    if (buffer.test(k) && !(k in own)) continue; // HF's causal-mask (GPT-2) or rotary-frequency (Llama) buffers
    const name = k in own || k === 'lm_head.weight' ? k : `transformer.${k}` in own ? `transformer.${k}` : k;
    sd[name] = t;
  }
  const missing = Object.keys(own).filter((k) => !(k in sd)); // a tied lm_head is not in own
  if (missing.length) {
    throw new Error(`weights '${source}' do not fit the model config: missing ${missing.slice(0, 5).join(', ')}` +
      `${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`);
  }
  try {
    model.loadStateDict(sd, { strict: false });
  } catch (err) {
    throw new Error(`weights '${source}' do not fit the model config: ${(err as Error).message.replace(/^loadStateDict: /, '')}`);
  }
  const unexpected = Object.keys(sd).filter((k) => !(k in own) && k !== 'lm_head.weight');
  if (unexpected.length) throw new Error(`weights '${source}' have tensors the model does not: ${unexpected.slice(0, 5).join(', ')}`);
}

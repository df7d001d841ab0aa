// The architecture registry: which decoder class a config describes ('gpt' or 'llama'), from Kiln's own config
// (a Llama config carries arch: 'llama'; a config without arch is a GPT's) or a Hugging Face config.json
// (GPT2LMHeadModel or LlamaForCausalLM). Recipes, the hub and the CLI build and describe models through it.

import type { DType } from '../backend/index.js';
import type { Generator } from '../tensor/random.js';
import { GPT } from './gpt.js';
import { gptConfigFromJSON, toHFConfig, type GPTConfig, type ResolvedGPTConfig } from './gpt-config.js';
import { Llama } from './llama.js';
import { isLlamaConfigJSON, llamaConfigFromJSON, toHFLlamaConfig, type LlamaConfig, type ResolvedLlamaConfig } from './llama-config.js';

/** The model families Kiln builds: 'gpt' (GPT-2) and 'llama'. */
export type Arch = 'gpt' | 'llama';
/** Every Arch, for checking a config or flag. */
export const ARCHS: readonly Arch[] = ['gpt', 'llama'];

/** A decoder-only language model Kiln trains, decodes, exports and loads. */
export type CausalLM = GPT | Llama;
/** A resolved config of either family. */
export type ModelConfig = ResolvedGPTConfig | ResolvedLlamaConfig;

/** The architecture of a config: 'llama' when it says so (arch, model_type or architectures), else 'gpt'. */
export function archOf(config: object): Arch {
  const o = config as Record<string, unknown>;
  if (typeof o.model === 'object' && o.model !== null && !('vocabSize' in o) && !('vocab_size' in o)) return archOf(o.model);
  if (o.arch !== undefined && o.arch !== 'gpt' && o.arch !== 'llama') {
    throw new Error(`model config: arch must be one of ${ARCHS.join(', ')}, got ${JSON.stringify(o.arch)}`);
  }
  return isLlamaConfigJSON(o) ? 'llama' : 'gpt';
}

/** The resolved config in a parsed config file (Kiln's keys, the same under `model`, or Hugging Face's), of either architecture. */
export function modelConfigFromJSON(json: unknown): ModelConfig {
  if (typeof json !== 'object' || json === null) throw new Error('model config: expected a JSON object');
  return archOf(json) === 'llama' ? llamaConfigFromJSON(json) : gptConfigFromJSON(json);
}

/** Builds the model a config describes: `createModel({ arch: 'llama', vocabSize: 512, ... })`. */
export function createModel(config: GPTConfig | (LlamaConfig & { arch: 'llama' }) | ModelConfig,
  options: { generator?: Generator; dtype?: DType } = {}): CausalLM {
  return archOf(config) === 'llama' ? new Llama(config as LlamaConfig, options) : new GPT(config as GPTConfig, options);
}

/** The Hugging Face config.json fields of a model's config (GPT2LMHeadModel or LlamaForCausalLM). */
export function hfConfigOf(config: ModelConfig | GPTConfig | LlamaConfig): Record<string, unknown> {
  return archOf(config) === 'llama' ? toHFLlamaConfig(config as LlamaConfig) : toHFConfig(config as GPTConfig);
}

// Freezing a GPT or Llama into a model folder in Hugging Face form (GPT-2 or LlamaForCausalLM): config.json (the HF
// config fields plus Kiln's own under "kiln"), model.safetensors (HF names and layout, LoRA merged, float32 or float16/bfloat16),
// tokenizer.json and tokenizer_config.json. The folder is written under a temporary name and renamed into place.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { hfConfigOf, type CausalLM } from '../models/arch.js';
import type { GPT } from '../models/gpt.js';
import { Llama } from '../models/llama.js';
import { loraLayers, mergeLoRA } from '../nn/lora.js';
import { zeros } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { makeDirs, removeStaleTemps, renameDirAtomic, tempPathFor, writeFileAtomic } from '../io/atomic.js';
import { encodeSafetensors } from '../io/safetensors.js';
import { writeTokenizerConfig, type TokenizerConfig } from './tokenizer-config.js';

/** The dtype weights are stored in by exportModel. */
export type ExportDType = 'float32' | 'float16' | 'bfloat16';
/** Every ExportDType, for checking a flag. */
export const EXPORT_DTYPES: readonly ExportDType[] = ['float32', 'float16', 'bfloat16'];
const STORED = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' } as const;

/** Options of exportModel. */
export interface ExportOptions {
  /** Stored weight type (default float32). */
  dtype?: ExportDType;
  /** tokenizer_config.json contents (chat template, bos/eos, ...). */
  tokenizerConfig?: TokenizerConfig;
  /** Replace an existing non-empty folder (default false: refuse, so nothing on disk is lost). */
  overwrite?: boolean;
  /** Recorded in config.json under kiln.source. */
  source?: string;
}

/** What exportModel wrote. */
export interface ExportResult {
  dir: string;
  files: string[];
  dtype: ExportDType;
  tensors: number;
  /** LoRA layers folded into their base weights. */
  merged: string[];
  /** Temporary folders of a killed export (whose process is gone) removed beside the output. */
  staleRemoved: string[];
}

/**
 * The model's weights under Hugging Face GPT-2 names, float32: the tied LM head is not stored (HF ties it on
 * load); a model without biases gets zero biases, which HF GPT-2 always has.
 */
export function hfStateDict(model: CausalLM): Record<string, Tensor> {
  if (loraLayers(model).length) throw new Error('hfStateDict: the model still has LoRA layers; merge them first (mergeLoRA)');
  if (model instanceof Llama) return hfLlamaStateDict(model);
  return hfGPT2StateDict(model);
}

/** The GPT's weights under Hugging Face GPT-2 names (zero biases added for a model without biases). */
function hfGPT2StateDict(model: GPT): Record<string, Tensor> {
  const sd: Record<string, Tensor> = {};
  for (const [name, p] of model.namedParameters()) sd[name] = p.dtype === 'float32' ? p.detach() : p.detach().to('float32');
  const c = model.config;
  if (!c.bias) {
    const C = c.width;
    const zero = (n: number): Tensor => zeros([n]);
    for (let l = 0; l < c.layers; l++) {
      const h = `transformer.h.${l}`;
      Object.assign(sd, {
        [`${h}.ln_1.bias`]: zero(C), [`${h}.ln_2.bias`]: zero(C), [`${h}.attn.c_attn.bias`]: zero(3 * C),
        [`${h}.attn.c_proj.bias`]: zero(C), [`${h}.mlp.c_fc.bias`]: zero(4 * C), [`${h}.mlp.c_proj.bias`]: zero(C),
      });
    }
    sd['transformer.ln_f.bias'] = zero(C);
  }
  const bad = Object.keys(sd).filter((k) => !/^(transformer\.(wte|wpe|ln_f|h\.\d+\.(ln_[12]|attn\.c_(attn|proj)|mlp\.c_(fc|proj)))|lm_head)\.(weight|bias)$/.test(k));
  if (bad.length) throw new Error(`export: parameters without a Hugging Face GPT-2 name: ${bad.slice(0, 5).join(', ')}`);
  return sd;
}

/**
 * The Llama decoder's weights under Hugging Face LlamaForCausalLM names (they are its own names), float32; a tied
 * LM head is not stored (tie_word_embeddings in config.json ties it on load).
 */
function hfLlamaStateDict(model: Llama): Record<string, Tensor> {
  const sd: Record<string, Tensor> = {};
  for (const [name, p] of model.namedParameters()) sd[name] = p.dtype === 'float32' ? p.detach() : p.detach().to('float32');
  const ok = /^(model\.(embed_tokens|norm|layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj|input_layernorm|post_attention_layernorm))|lm_head)\.weight$/;
  const bad = Object.keys(sd).filter((k) => !ok.test(k));
  if (bad.length) throw new Error(`export: parameters without a Hugging Face Llama name: ${bad.slice(0, 5).join(', ')}`);
  return sd;
}

function kilnVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Writes a frozen model folder. LoRA layers are merged into the model first (the model is changed in place).
 * `exportModel(gpt, tokenizer, 'models/chat', { dtype: 'bfloat16', tokenizerConfig })`
 */
export function exportModel(model: CausalLM, tokenizer: Tokenizer, outDir: string, options: ExportOptions = {}): ExportResult {
  const dtype = options.dtype ?? 'float32';
  if (!EXPORT_DTYPES.includes(dtype)) {
    throw new Error(`export: dtype must be one of ${EXPORT_DTYPES.join(', ')}, got ${JSON.stringify(dtype)}`);
  }
  const dir = resolve(outDir);
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new Error(`export: '${outDir}' exists and is not a folder`);
    if (readdirSync(dir).length > 0 && !options.overwrite) {
      throw new Error(`export: the folder '${outDir}' already exists and is not empty; choose another folder (kiln export --overwrite replaces it)`);
    }
  }
  if (tokenizer.vocabSize > model.config.vocabSize) {
    throw new Error(`export: the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${model.config.vocabSize}`);
  }
  const merged = mergeLoRA(model);
  const sd = hfStateDict(model);
  const specials = tokenizer.specialTokens();
  const tc = options.tokenizerConfig ?? {};
  const idOf = (v: unknown): number | null => (typeof v === 'string' ? specials.get(v) ?? null : null);
  const config = {
    ...hfConfigOf(model.config),
    torch_dtype: dtype,
    bos_token_id: idOf(tc.bos_token) ?? specials.get('<|endoftext|>') ?? null,
    eos_token_id: idOf(tc.eos_token) ?? specials.get('<|endoftext|>') ?? null,
    kiln: { version: kilnVersion(), format: 'frozen-model', source: options.source ?? null, lora_merged: merged, model: { ...model.config } },
  };
  makeDirs(dirname(dir), 'export folder');
  const staleRemoved = removeStaleTemps(dirname(dir)); // unfinished folders of an export that was killed
  const weights = encodeSafetensors(sd, { floatDType: STORED[dtype], metadata: { format: 'pt' } });
  // The checksum lets every later load (generate, serve, finetune --from) notice a file changed on disk.
  (config.kiln as Record<string, unknown>).files = { 'model.safetensors': { bytes: weights.length, sha256: createHash('sha256').update(weights).digest('hex') } };
  const tmp = tempPathFor(dir);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    writeFileAtomic(join(tmp, 'model.safetensors'), weights);
    writeFileAtomic(join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    tokenizer.save(join(tmp, 'tokenizer.json'));
    writeTokenizerConfig(join(tmp, 'tokenizer_config.json'), tc);
    renameDirAtomic(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return {
    dir, dtype, merged, tensors: Object.keys(sd).length, staleRemoved,
    files: ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'],
  };
}

// A frozen model folder's files as bytes and text, without writing them: config.json (the HF config plus Kiln's own
// under "kiln", with the weights' sha256), model.safetensors (HF names), tokenizer.json, tokenizer_config.json.
// `kiln export` writes them (export.ts); a browser offers them as downloads that `kiln generate --model DIR` loads.

import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { hfConfigOf, type CausalLM } from '../models/arch.js';
import type { GPT } from '../models/gpt.js';
import { Llama } from '../models/llama.js';
import { loraLayers, mergeLoRA } from '../nn/lora.js';
import { zeros } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { encodeSafetensors } from '../io/safetensors-codec.js';
import { sha256Hex } from '../io/sha256.js';

/** The stored weight types of an exported folder. */
export type ExportDType = 'float32' | 'float16' | 'bfloat16';
/** Every ExportDType. */
export const EXPORT_DTYPES: readonly ExportDType[] = ['float32', 'float16', 'bfloat16'];
const STORED = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' } as const;

/** What modelFolderFiles takes besides the model and tokenizer. */
export interface ModelFolderOptions {
  /** Stored weight type (default float32). */
  dtype?: ExportDType;
  /** tokenizer_config.json contents (chat template, bos/eos, ...); default {}. */
  tokenizerConfig?: Record<string, unknown>;
  /** Recorded in config.json under kiln.source. */
  source?: string;
  /** Kiln's version, recorded in config.json under kiln.version. */
  version?: string;
}

/** A model folder's files by name, and what went into them. */
export interface ModelFolderFiles {
  files: { 'config.json': string; 'model.safetensors': Uint8Array; 'tokenizer.json': string; 'tokenizer_config.json': string };
  /** LoRA layers folded into their base weights. */
  merged: string[];
  /** Tensors in model.safetensors. */
  tensors: number;
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

/**
 * The files of a frozen model folder, in memory. LoRA layers are merged into the model first (the model is changed
 * in place). `const { files } = modelFolderFiles(gpt, tokenizer)`; write each under its name into one folder.
 */
export function modelFolderFiles(model: CausalLM, tokenizer: Tokenizer, options: ModelFolderOptions = {}): ModelFolderFiles {
  const dtype = options.dtype ?? 'float32';
  if (!EXPORT_DTYPES.includes(dtype)) {
    throw new Error(`export: dtype must be one of ${EXPORT_DTYPES.join(', ')}, got ${JSON.stringify(dtype)}`);
  }
  if (tokenizer.vocabSize > model.config.vocabSize) {
    throw new Error(`export: the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${model.config.vocabSize}`);
  }
  const merged = mergeLoRA(model);
  const sd = hfStateDict(model);
  const specials = tokenizer.specialTokens();
  const tc = options.tokenizerConfig ?? {};
  const idOf = (v: unknown): number | null => (typeof v === 'string' ? specials.get(v) ?? null : null);
  const weights = encodeSafetensors(sd, { floatDType: STORED[dtype], metadata: { format: 'pt' } });
  const config = {
    ...hfConfigOf(model.config),
    torch_dtype: dtype,
    bos_token_id: idOf(tc.bos_token) ?? specials.get('<|endoftext|>') ?? null,
    eos_token_id: idOf(tc.eos_token) ?? specials.get('<|endoftext|>') ?? null,
    kiln: {
      version: options.version ?? 'unknown', format: 'frozen-model', source: options.source ?? null, lora_merged: merged,
      model: { ...model.config },
      // The checksum lets every later load (generate, serve, finetune --from) notice a file changed on disk.
      files: { 'model.safetensors': { bytes: weights.length, sha256: sha256Hex(weights) } },
    },
  };
  return {
    files: {
      'model.safetensors': weights,
      'config.json': `${JSON.stringify(config, null, 2)}\n`,
      'tokenizer.json': JSON.stringify(tokenizer.toJSON()),
      'tokenizer_config.json': `${JSON.stringify(tc, null, 2)}\n`,
    },
    merged,
    tensors: Object.keys(sd).length,
  };
}

// The Llama-style decoder's configuration: Kiln's camelCase form with `arch: 'llama'`, its defaults and checks,
// and the mapping to and from a Hugging Face LlamaForCausalLM config.json.

import { show } from './gpt-config.js';

/** A Llama-style decoder's shape: vocabulary, context, layers, heads, kv heads, width, MLP width, RoPE, norms. */
export interface LlamaConfig {
  /** Marks the config as a Llama decoder's wherever configs are stored (default 'llama'). */
  arch?: 'llama';
  /** Number of token ids (the tokenizer's vocabulary size). */
  vocabSize: number;
  /** Longest sequence the model sees (max_position_embeddings). */
  context: number;
  /** Decoder layers. */
  layers: number;
  /** Query heads; width must be a multiple of heads, and the head size even (rotary pairs). */
  heads: number;
  /** Key/value heads (grouped-query attention); must divide heads. Default heads (plain multi-head attention). */
  kvHeads?: number;
  /** Hidden width C. */
  width: number;
  /** SwiGLU inner width (intermediate_size). Default 8C/3 rounded up to a multiple of 32. */
  hidden?: number;
  /** Rotary embedding base (rope_theta). Default 10000. */
  ropeTheta?: number;
  /** RMSNorm epsilon (rms_norm_eps). Default 1e-5. */
  rmsNormEps?: number;
  /** The LM head reuses the token embedding matrix. Default true. */
  tiedEmbeddings?: boolean;
  /** Dropout on the residual branches while training. Default 0. */
  dropout?: number;
}

/** A LlamaConfig with every default filled in. */
export type ResolvedLlamaConfig = Required<LlamaConfig>;

/** The SwiGLU width that keeps the MLP at about 8C² parameters, as the Llama paper's 2/3 · 4C does. */
export function defaultHidden(width: number): number {
  return Math.ceil((8 * width) / 3 / 32) * 32;
}

/** Fills defaults and checks every field, failing with one sentence that names the field. */
export function resolveLlamaConfig(config: LlamaConfig): ResolvedLlamaConfig {
  if (typeof config !== 'object' || config === null) throw new Error('Llama: expected a config object { vocabSize, context, layers, heads, width }');
  if (config.arch !== undefined && config.arch !== 'llama') throw new Error(`Llama: config.arch must be 'llama', got ${show(config.arch)}`);
  const c: ResolvedLlamaConfig = {
    arch: 'llama',
    vocabSize: config.vocabSize,
    context: config.context,
    layers: config.layers,
    heads: config.heads,
    kvHeads: config.kvHeads ?? config.heads,
    width: config.width,
    hidden: config.hidden ?? (Number.isInteger(config.width) ? defaultHidden(config.width) : NaN),
    ropeTheta: config.ropeTheta ?? 10000,
    rmsNormEps: config.rmsNormEps ?? 1e-5,
    tiedEmbeddings: config.tiedEmbeddings ?? true,
    dropout: config.dropout ?? 0,
  };
  for (const k of ['vocabSize', 'context', 'layers', 'heads', 'kvHeads', 'width', 'hidden'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new Error(`Llama: config.${k} must be a positive integer, got ${show(c[k])}`);
  }
  if (c.width % c.heads !== 0) throw new Error(`Llama: config.width (${c.width}) must be a multiple of config.heads (${c.heads})`);
  if ((c.width / c.heads) % 2 !== 0) throw new Error(`Llama: the head size width / heads = ${c.width / c.heads} must be even for rotary embeddings`);
  if (c.heads % c.kvHeads !== 0) throw new Error(`Llama: config.kvHeads (${c.kvHeads}) must divide config.heads (${c.heads})`);
  if (!(typeof c.ropeTheta === 'number' && Number.isFinite(c.ropeTheta) && c.ropeTheta > 0)) throw new Error(`Llama: config.ropeTheta must be a positive number, got ${show(c.ropeTheta)}`);
  if (!(typeof c.rmsNormEps === 'number' && c.rmsNormEps > 0 && c.rmsNormEps < 1)) throw new Error(`Llama: config.rmsNormEps must be in (0, 1), got ${show(c.rmsNormEps)}`);
  if (typeof c.tiedEmbeddings !== 'boolean') throw new Error(`Llama: config.tiedEmbeddings must be true or false, got ${show(c.tiedEmbeddings)}`);
  if (typeof c.dropout !== 'number' || !(c.dropout >= 0 && c.dropout < 1)) throw new Error(`Llama: config.dropout must be in [0, 1), got ${show(c.dropout)}`);
  return c;
}

/** A Hugging Face LlamaForCausalLM config.json for this model. */
export function toHFLlamaConfig(config: LlamaConfig): Record<string, unknown> {
  const c = resolveLlamaConfig(config);
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: c.vocabSize,
    hidden_size: c.width,
    intermediate_size: c.hidden,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    head_dim: c.width / c.heads,
    hidden_act: 'silu',
    max_position_embeddings: c.context,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    attention_bias: false,
    mlp_bias: false,
    attention_dropout: 0,
    tie_word_embeddings: c.tiedEmbeddings,
    initializer_range: 0.02,
    torch_dtype: 'float32',
  };
}

/** True when a parsed config describes a Llama decoder: Kiln's (arch: 'llama') or Hugging Face's (model_type 'llama'). */
export function isLlamaConfigJSON(o: Record<string, unknown>): boolean {
  const archs = Array.isArray(o.architectures) ? o.architectures : [];
  return o.arch === 'llama' || o.model_type === 'llama' || archs.includes('LlamaForCausalLM');
}

/** A LlamaConfig from a parsed config file: Kiln's keys (with arch 'llama'), the same under `model`, or Hugging Face's. */
export function llamaConfigFromJSON(json: unknown): ResolvedLlamaConfig {
  if (typeof json !== 'object' || json === null) throw new Error('Llama config: expected a JSON object');
  const o = json as Record<string, unknown>;
  if (typeof o.model === 'object' && o.model !== null) return llamaConfigFromJSON(o.model);
  if ('vocabSize' in o) return resolveLlamaConfig(o as unknown as LlamaConfig);
  if ('vocab_size' in o && 'hidden_size' in o) {
    if (o.hidden_act !== undefined && o.hidden_act !== 'silu') throw new Error(`Llama config: hidden_act '${show(o.hidden_act)}' is not supported (Kiln's Llama uses silu)`);
    if (o.rope_scaling !== undefined && o.rope_scaling !== null) throw new Error('Llama config: rope_scaling is not supported (Kiln applies plain rotary embeddings)');
    if (o.attention_bias === true || o.mlp_bias === true) throw new Error('Llama config: attention_bias and mlp_bias are not supported (Kiln\'s Llama has no biases)');
    const heads = o.num_attention_heads as number;
    if (o.head_dim !== undefined && o.head_dim !== null && o.head_dim !== (o.hidden_size as number) / heads) {
      throw new Error(`Llama config: head_dim ${show(o.head_dim)} is not hidden_size / num_attention_heads, which Kiln's Llama needs`);
    }
    return resolveLlamaConfig({
      vocabSize: o.vocab_size as number,
      context: o.max_position_embeddings as number,
      layers: o.num_hidden_layers as number,
      heads,
      kvHeads: (o.num_key_value_heads as number | undefined) ?? heads,
      width: o.hidden_size as number,
      hidden: o.intermediate_size as number,
      ropeTheta: (o.rope_theta as number | undefined) ?? 10000,
      rmsNormEps: (o.rms_norm_eps as number | undefined) ?? 1e-6,
      tiedEmbeddings: (o.tie_word_embeddings as boolean | undefined) ?? false,
    });
  }
  throw new Error('Llama config: found neither Kiln keys (arch, vocabSize, context, layers, heads, width) nor Hugging Face Llama keys (vocab_size, hidden_size, num_hidden_layers, ...)');
}

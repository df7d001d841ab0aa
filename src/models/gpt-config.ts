// The GPT's configuration: Kiln's camelCase form, its defaults and checks, and the mapping to and from a
// Hugging Face GPT-2 config.json, so a config file from either side rebuilds the same model.

/** A GPT-2 model's shape: vocabulary, context, layers, heads, width, dropout, bias, tying. */
export interface GPTConfig {
  /** Number of token ids (the tokenizer's vocabulary size). */
  vocabSize: number;
  /** Longest sequence the model sees (number of position embeddings). */
  context: number;
  /** Transformer blocks. */
  layers: number;
  /** Attention heads; width must be a multiple of heads. */
  heads: number;
  /** Embedding width (channels), C. */
  width: number;
  /** Dropout on embeddings and residual branches while training. Default 0. */
  dropout?: number;
  /** Biases in the projections and LayerNorms. Default true. */
  bias?: boolean;
  /** The LM head reuses the token embedding matrix. Default true. */
  tiedEmbeddings?: boolean;
}

/** A GPTConfig with every default filled in. */
export type ResolvedGPTConfig = Required<GPTConfig>;

/** Fills defaults and checks every field, failing with one sentence that names the field. */
export function resolveGPTConfig(config: GPTConfig): ResolvedGPTConfig {
  if (typeof config !== 'object' || config === null) throw new Error('GPT: expected a config object { vocabSize, context, layers, heads, width }');
  const c: ResolvedGPTConfig = {
    vocabSize: config.vocabSize,
    context: config.context,
    layers: config.layers,
    heads: config.heads,
    width: config.width,
    dropout: config.dropout ?? 0,
    bias: config.bias ?? true,
    tiedEmbeddings: config.tiedEmbeddings ?? true,
  };
  for (const k of ['vocabSize', 'context', 'layers', 'heads', 'width'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new Error(`GPT: config.${k} must be a positive integer, got ${show(c[k])}`);
  }
  if (c.width % c.heads !== 0) throw new Error(`GPT: config.width (${c.width}) must be a multiple of config.heads (${c.heads})`);
  if (typeof c.dropout !== 'number' || !(c.dropout >= 0 && c.dropout < 1)) throw new Error(`GPT: config.dropout must be in [0, 1), got ${show(c.dropout)}`);
  if (typeof c.bias !== 'boolean') throw new Error(`GPT: config.bias must be true or false, got ${show(c.bias)}`);
  if (typeof c.tiedEmbeddings !== 'boolean') throw new Error(`GPT: config.tiedEmbeddings must be true or false, got ${show(c.tiedEmbeddings)}`);
  return c;
}

/** A Hugging Face GPT-2 config.json for this model (GPT2LMHeadModel loads it with the safetensors). */
export function toHFConfig(config: GPTConfig): Record<string, unknown> {
  const c = resolveGPTConfig(config);
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: c.vocabSize,
    n_positions: c.context,
    n_ctx: c.context,
    n_embd: c.width,
    n_layer: c.layers,
    n_head: c.heads,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    resid_pdrop: c.dropout,
    embd_pdrop: c.dropout,
    attn_pdrop: 0,
    tie_word_embeddings: c.tiedEmbeddings,
    initializer_range: 0.02,
    torch_dtype: 'float32',
  };
}

/**
 * A GPTConfig from a parsed config file: Kiln's keys ({ vocabSize, ... }), the same under `model`, or a Hugging
 * Face GPT-2 config (vocab_size, n_positions, n_embd, n_layer, n_head).
 */
/** A value from a config file as JSON for an error message (String() throws on an object without a prototype). */
export function show(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return typeof v;
  }
}

/** A resolved config from JSON (a Kiln config.json or a Hugging Face GPT-2 config), checking every field. */
export function gptConfigFromJSON(json: unknown): ResolvedGPTConfig {
  if (typeof json !== 'object' || json === null) throw new Error('GPT config: expected a JSON object');
  const o = json as Record<string, unknown>;
  if (typeof o.model === 'object' && o.model !== null) return gptConfigFromJSON(o.model);
  if ('vocabSize' in o) return resolveGPTConfig(o as unknown as GPTConfig);
  if ('vocab_size' in o && 'n_embd' in o) {
    if (o.model_type !== undefined && o.model_type !== 'gpt2') throw new Error(`GPT config: model_type is ${show(o.model_type)}, expected 'gpt2'`);
    if (o.activation_function !== undefined && o.activation_function !== 'gelu_new') {
      throw new Error(`GPT config: activation_function ${show(o.activation_function)} is not supported (Kiln's GPT uses gelu_new)`);
    }
    return resolveGPTConfig({
      vocabSize: o.vocab_size as number,
      context: (o.n_positions ?? o.n_ctx) as number,
      layers: o.n_layer as number,
      heads: o.n_head as number,
      width: o.n_embd as number,
      dropout: 0,
      bias: true,
      tiedEmbeddings: (o.tie_word_embeddings as boolean | undefined) ?? true,
    });
  }
  throw new Error('GPT config: found neither Kiln keys (vocabSize, context, layers, heads, width) nor Hugging Face GPT-2 keys (vocab_size, n_positions, n_embd, n_layer, n_head)');
}

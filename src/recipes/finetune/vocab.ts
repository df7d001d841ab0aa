// Growing a model's vocabulary for new special tokens: the token embedding gains rows (the mean of the existing
// rows plus small noise, so a new token starts as an "average" token and the tokens differ from each other),
// the LM head grows with it (the same Parameter when tied, its own new rows when not: a Llama's untied
// lm_head), position embeddings stay, and config.vocabSize follows. GPT (transformer.wte) and Llama
// (model.embed_tokens) differ only in where the embedding lives.

import { noGrad } from '../../tensor/autograd.js';
import { defaultGenerator, type Generator } from '../../tensor/random.js';
import { allocFloat } from '../../tensor/storage.js';
import { Tensor } from '../../tensor/tensor.js';
import { Parameter } from '../../nn/module.js';
import { Llama } from '../../models/llama.js';
import type { CausalLM } from '../../models/arch.js';

function grownRows(old: Parameter, rows: number, noise: number, g: Generator): Parameter {
  const [V, C] = old.shape;
  const src = old.storage;
  const out = allocFloat(old.dtype === 'float64' ? 'float64' : 'float32', rows * C);
  out.set(src.subarray(0, V * C));
  const mean = new Float64Array(C);
  for (let i = 0; i < V; i++) for (let c = 0; c < C; c++) mean[c] += src[i * C + c];
  for (let c = 0; c < C; c++) mean[c] /= V;
  for (let i = V; i < rows; i++) for (let c = 0; c < C; c++) out[i * C + c] = mean[c] + noise * g.normal();
  return new Parameter(new Tensor(out, [rows, C]), old.requiresGrad);
}

/** The module that holds a model's token embedding (`weight` (V, C)): transformer.wte or model.embed_tokens. */
export function tokenEmbedding(model: CausalLM): { weight: Parameter } {
  return model instanceof Llama ? model.model.embed_tokens : model.transformer.wte;
}

/** The dotted parameter name of a model's token embedding: 'transformer.wte.weight' or 'model.embed_tokens.weight'. */
export function tokenEmbeddingName(model: CausalLM): string {
  return model instanceof Llama ? 'model.embed_tokens.weight' : 'transformer.wte.weight';
}

/**
 * Grows the token embedding (and the LM head) of a GPT or Llama to `vocabSize` rows; a no-op when it is already
 * that size. Call it before building the optimizer: the embedding is a new Parameter.
 * `resizeTokenEmbeddings(gpt, tok.vocabSize)`
 */
export function resizeTokenEmbeddings(gpt: CausalLM, vocabSize: number, options: { noise?: number; generator?: Generator } = {}): number {
  const V = gpt.config.vocabSize;
  if (!Number.isInteger(vocabSize) || vocabSize < V) {
    throw new Error(`resizeTokenEmbeddings: the new vocabulary size must be an integer of at least ${V} (the model's), got ${vocabSize}`);
  }
  if (vocabSize === V) return 0;
  const g = options.generator ?? defaultGenerator;
  const noise = options.noise ?? 0.02;
  noGrad(() => {
    const wte = tokenEmbedding(gpt);
    const tied = gpt.lm_head.weight === wte.weight;
    const grown = grownRows(wte.weight, vocabSize, noise, g);
    wte.weight = grown;
    gpt.lm_head.weight = tied ? grown : grownRows(gpt.lm_head.weight, vocabSize, noise, g);
  });
  (gpt as unknown as { config: CausalLM['config'] }).config = Object.freeze({ ...gpt.config, vocabSize });
  return vocabSize - V;
}

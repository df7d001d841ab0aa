// Checks and the generate loop shared by the decoders that follow GPT.forward's contract (the Llama decoder uses
// them; they mirror GPT's own so both fail with the same sentences): token ids and targets against the vocabulary,
// a KV cache's rows against the model, and `generate` over the one decoding loop (BatchDecoder).

import { fmt } from '../tensor/shape.js';
import { defaultGenerator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { acquireDecoder, type LanguageModel } from './generate.js';
import { KVCache, type GenerateOptions, type GPTForwardOptions } from './gpt.js';

/** The cache rows a forward continues and how many positions each held before it. */
export interface CacheView {
  cache: KVCache;
  rows: readonly number[];
  starts: readonly number[];
}

/** idx must be int32 (B, T) token ids inside the vocabulary, T within the context unless a cache continues it. */
export function checkIdx(name: string, idx: Tensor, config: { context: number; vocabSize: number }, cache?: KVCache): void {
  if (!(idx instanceof Tensor)) throw new Error(`${name}: idx must be a Tensor of token ids, got ${typeof idx}`);
  if (idx.dtype !== 'int32') {
    throw new Error(`${name}: idx must be an int32 tensor of token ids, got ${idx.dtype} (make it with { dtype: 'int32' } or .int())`);
  }
  if (idx.ndim !== 2 || idx.shape[1] === 0) throw new Error(`${name}: idx must have shape (batch, time) with time >= 1, got ${fmt(idx.shape)}`);
  const [, T] = idx.shape;
  const { context, vocabSize } = config;
  if (!cache && T > context) {
    throw new Error(`${name}: the sequence has ${T} tokens but the model's context is ${context}; crop idx to the last ${context}`);
  }
  const s = idx.storage as Int32Array;
  for (let i = 0; i < s.length; i++) {
    if (s[i] < 0 || s[i] >= vocabSize) {
      throw new Error(`${name}: token id ${s[i]} at [${Math.floor(i / T)}, ${i % T}] is outside the vocabulary of ${vocabSize} tokens`);
    }
  }
}

/** targets must be int32 of idx's shape, each a token id or the ignore index. */
export function checkTargets(name: string, idx: Tensor, targets: Tensor, V: number, options: GPTForwardOptions): void {
  if (!(targets instanceof Tensor) || targets.dtype !== 'int32') {
    throw new Error(`${name}: targets must be an int32 tensor of token ids, got ${targets instanceof Tensor ? targets.dtype : typeof targets}`);
  }
  if (options.lastOnly) throw new Error(`${name}: targets need the logits of every position; drop lastOnly`);
  if (targets.ndim !== 2 || targets.shape[0] !== idx.shape[0] || targets.shape[1] !== idx.shape[1]) {
    throw new Error(`${name}: targets have shape ${fmt(targets.shape)} but idx has ${fmt(idx.shape)}; they must match`);
  }
  const T = idx.shape[1];
  const ignoreIndex = options.ignoreIndex ?? -100;
  const ts = targets.storage as Int32Array;
  for (let i = 0; i < ts.length; i++) {
    if (ts[i] !== ignoreIndex && (ts[i] < 0 || ts[i] >= V)) {
      throw new Error(`${name}: target ${ts[i]} at [${Math.floor(i / T)}, ${i % T}] is outside the vocabulary ` +
        `of ${V} tokens (use ${ignoreIndex} to ignore a position)`);
    }
  }
}

/** Checks a cache against the model (context, cached width, layers) and idx, and notes where each row starts. */
export function decoderCacheView(name: string, idx: Tensor, cache: KVCache, rows: readonly number[] | undefined,
  context: number, width: number, layers: number): CacheView {
  if (!(cache instanceof KVCache)) throw new Error(`${name}: cache must be a KVCache from the model's createCache()`);
  const [B, T] = idx.shape;
  if (cache.width !== width || cache.keys.length !== layers || cache.context !== context) {
    throw new Error(`${name}: the cache was made for a different model`);
  }
  const use = rows ?? Array.from({ length: B }, (_, b) => b);
  if (use.length !== B) throw new Error(`${name}: rows has ${use.length} entries but idx has batch ${B}`);
  if (new Set(use).size !== B) throw new Error(`${name}: rows must not repeat a cache row`);
  const starts = use.map((r) => {
    if (!Number.isInteger(r) || r < 0 || r >= cache.batch) {
      throw new Error(rows ? `${name}: cache row ${r} is outside the cache's ${cache.batch} rows`
        : `${name}: the cache was made for batch ${cache.batch} but idx has batch ${B}`);
    }
    const held = cache.lengths[r];
    if (held + T > context) {
      throw new Error(`${name}: the cache holds ${held} tokens and ${T} more would exceed the model's context of ${context}`);
    }
    return held;
  });
  return { cache, rows: use, starts };
}

/**
 * Extends idx (int32, (B, T)) by maxNewTokens sampled tokens through the one decoding loop, as GPT.generate:
 * temperature default 1 (0 is greedy), rows decoded together, past the context the last `context` tokens.
 */
export function generateFrom(model: LanguageModel, name: string, idx: Tensor, maxNewTokens: number, options: GenerateOptions): Tensor {
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new Error(`${name}: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  if (!(idx instanceof Tensor) || idx.dtype !== 'int32' || idx.ndim !== 2 || idx.shape[1] === 0) {
    throw new Error(`${name}: idx must be an int32 tensor of shape (batch, time) with time >= 1, got ` +
      `${idx instanceof Tensor ? `${idx.dtype} ${fmt(idx.shape)}` : typeof idx}`);
  }
  const [B, T0] = idx.shape;
  const P = model.config.context;
  const sampling = { temperature: options.temperature ?? 1, topK: options.topK, topP: options.topP,
    repetitionPenalty: options.repetitionPenalty, generator: options.generator ?? defaultGenerator, maxNewTokens, slide: true };
  const ids = idx.storage as Int32Array;
  const { decoder, release } = acquireDecoder(model, B);
  try {
    const seqs = decoder.startAll(Array.from({ length: B }, (_, b) => {
      const row = Array.from(ids.subarray(b * T0, (b + 1) * T0));
      return { prompt: row.length > P ? row.slice(row.length - P) : row, options: sampling };
    }));
    for (let step = 0; step < maxNewTokens; step++) {
      const events = decoder.step();
      options.onToken?.(events.map((e) => e.id as number), step);
    }
    const out = new Int32Array(B * (T0 + maxNewTokens));
    seqs.forEach((s, b) => {
      out.set(ids.subarray(b * T0, (b + 1) * T0), b * (T0 + maxNewTokens));
      out.set(s.ids.slice(s.ids.length - s.generated), b * (T0 + maxNewTokens) + T0);
    });
    return new Tensor(out, [B, T0 + maxNewTokens]);
  } finally {
    release();
  }
}

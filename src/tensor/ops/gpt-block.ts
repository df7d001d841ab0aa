// The decoding step of one pre-norm block as one backend call: for a GPT-2 block x + attn(ln_1(x)), then
// + mlp(ln_2(x)); for a Llama layer the same with RMSNorm, rotary embeddings, grouped-query attention and SwiGLU;
// one new token per sequence, its keys and values appended to the KV cache. Without the backend's fused kernel
// (the reference backend, float64) the caller composes the block from the ops instead; the kernel must give
// bitwise that result. It saves the ~20 JavaScript round trips a block costs per token.

import { backend, type FloatArray } from '../../backend/index.js';
import { isGradEnabled } from '../autograd.js';
import { autocastPrecision } from '../autocast.js';
import { fmt } from '../shape.js';
import { allocFloatUninit, allocLasting, weightsEpoch } from '../storage.js';
import { Tensor } from '../tensor.js';
import type { KVBuffers } from './attention.js';

/** A GPT-2 block's parameters; Conv1D weights are stored (in, out); biases and norm parameters may be absent. */
export interface GPTBlockWeights {
  ln1Weight: Tensor | null; ln1Bias: Tensor | null;
  attnWeight: Tensor; attnBias: Tensor | null; // (C, 3C), (3C)
  projWeight: Tensor; projBias: Tensor | null; // (C, C), (C)
  ln2Weight: Tensor | null; ln2Bias: Tensor | null;
  fcWeight: Tensor; fcBias: Tensor | null; // (C, 4C), (4C)
  fc2Weight: Tensor; fc2Bias: Tensor | null; // (4C, C), (C)
}

const ORDER = ['ln1Weight', 'ln1Bias', 'attnWeight', 'attnBias', 'projWeight', 'projBias', 'ln2Weight', 'ln2Bias',
  'fcWeight', 'fcBias', 'fc2Weight', 'fc2Bias'] as const;

/**
 * The block's output (A, 1, C) for x (A, 1, C), or null when the backend has no fused kernel for these tensors
 * (then compose the block). Sequence a continues cache row rows[a], which holds starts[a] positions. No graph.
 */
export function gptBlockDecode(x: Tensor, w: GPTBlockWeights, cache: KVBuffers, rows: readonly number[],
  starts: readonly number[], heads: number, eps: number): Tensor | null {
  const be = backend();
  if (!be.gptBlockDecode) return null;
  const weights = ORDER.map((k) => (w[k]?.storage ?? null) as FloatArray | null);
  return stepInPlace('gptBlockDecode', x, rows, starts, (out, r, s, A, C) =>
    be.gptBlockDecode!(out, weights, cache.keys, cache.values, r, s, A, C, heads, cache.context, eps));
}

/**
 * Runs a fused step on a copy of x (A, 1, C): checks the shapes, hands the kernel the copy with rows and starts
 * as Int32Array, and returns the copy, or null when the kernel declines (or when x is part of a graph).
 */
function stepInPlace(name: string, x: Tensor, rows: readonly number[], starts: readonly number[],
  kernel: (out: FloatArray, rows: Int32Array, starts: Int32Array, A: number, C: number) => boolean): Tensor | null {
  if (isGradEnabled() && x.requiresGrad) return null;
  if (autocastPrecision() !== 'float32') return null; // the composed GEMMs run in bf16 then
  if (x.ndim !== 3 || x.shape[1] !== 1) throw new Error(`${name}: x must be (A, 1, C), got ${fmt(x.shape)}`);
  const [A, , C] = x.shape;
  if (rows.length !== A || starts.length !== A) {
    throw new Error(`${name}: ${A} sequences need ${A} rows and starts, got ${rows.length} and ${starts.length}`);
  }
  const out = allocFloatUninit(x.dtype, A * C); // (A, C): x, updated in place by the kernel
  out.set(x.storage as FloatArray);
  return kernel(out, Int32Array.from(rows), Int32Array.from(starts), A, C) ? new Tensor(out, x.shape) : null;
}

/** A whole GPT-2 model's parameters for a decoding step. */
export interface GPTModelWeights {
  wte: Tensor; wpe: Tensor; // (V, C), (P, C)
  blocks: readonly GPTBlockWeights[];
  lnfWeight: Tensor | null; lnfBias: Tensor | null; // (C) each
  head: Tensor; // (V, C)
}

/**
 * The logits (A, 1, V) of a whole GPT-2 decoding step, one new token per entry (tokens (A), continuing cache row
 * rows[a], which holds starts[a] positions; entries of one prompt continue the same row), or null when the backend
 * has no fused step for it (then run the model's layers). With headRows (ascending entry indices), only those
 * entries' logits, (headRows.length, 1, V). Writes each layer's new keys and values; the caller advances the cache
 * lengths. No graph.
 */
export function gptModelDecode(tokens: Int32Array, w: GPTModelWeights, caches: readonly KVBuffers[],
  rows: readonly number[], starts: readonly number[], heads: number, eps: number,
  packed: PackedGPTWeights | null = null, headRows: Int32Array | null = null): Tensor | null {
  const be = backend();
  if (!be.gptDecode || autocastPrecision() !== 'float32') return null;
  const [V, C] = w.head.shape;
  const A = tokens.length;
  if (caches.length !== w.blocks.length || rows.length !== A || starts.length !== A) {
    throw new Error(`gptDecode: ${w.blocks.length} blocks, ${caches.length} caches, ${A} tokens, ${rows.length} rows and ${starts.length} starts do not match`);
  }
  const blocks = w.blocks.map((b) => ORDER.map((k) => (b[k]?.storage ?? null) as FloatArray | null));
  const out = headRows ? headRows.length : A;
  const logits = allocFloatUninit(w.head.dtype, out * V); // (out, V)
  const done = be.gptDecode(logits, tokens, Int32Array.from(rows), Int32Array.from(starts), w.wte.storage as FloatArray,
    w.wpe.storage as FloatArray, blocks, caches.map((c) => c.keys), caches.map((c) => c.values),
    (w.lnfWeight?.storage ?? null) as FloatArray | null, (w.lnfBias?.storage ?? null) as FloatArray | null,
    w.head.storage as FloatArray, A, C, heads, caches[0]?.context ?? w.wpe.shape[0], V, eps,
    packed?.matches(w) ? packed.panels : null, headRows);
  return done ? new Tensor(logits, [out, 1, V]) : null;
}

/** The GPT weights a batched step reads, in packPanels' order: each block's attn, proj, fc and fc2 weights, the head. */
function panelSources(w: GPTModelWeights): { t: Tensor; transB: boolean }[] {
  return [...w.blocks.flatMap((b) => [b.attnWeight, b.projWeight, b.fcWeight, b.fc2Weight].map((t) => ({ t, transB: false }))),
    { t: w.head, transB: true }];
}

/**
 * A GPT's weights packed for batched decoding steps (5 to 16 sequences): each weight as column panels of 16, which
 * the step streams from memory about twice as fast as the weight itself (a 16-sequence step of the T3 model 1.7 ->
 * 1.2 ms); the logits are bitwise the same. A copy of every block weight and the head: a KV cache keeps one while
 * it serves batches. It goes stale when a weight is replaced or written in place (weightsEpoch).
 */
export class PackedGPTWeights {
  private constructor(private readonly sources: FloatArray[], readonly panels: (Float32Array | null)[], private readonly epoch: number) {}

  /** Packs w for steps of A sequences, or null when the backend would not use panels for them. */
  static pack(w: GPTModelWeights, A: number): PackedGPTWeights | null {
    const be = backend();
    const C = w.head.shape[1];
    if (!be.packPanels || !be.panelsApply || !be.panelsApply(false, A, C)) return null;
    const sources = panelSources(w);
    if (!sources.every(({ t }) => t.storage instanceof Float32Array && t.ndim === 2)) return null;
    const panels = sources.map(({ t, transB }) => {
      const [K, N] = transB ? [t.shape[1], t.shape[0]] : [t.shape[0], t.shape[1]];
      if (transB && !be.panelsApply!(true, A, K)) return null; // this product keeps the weight as it is
      const dst = allocLasting('float32', Math.ceil(N / 16) * 16 * K) as Float32Array; // kept past this step's scope
      be.packPanels!(dst, t.storage as Float32Array, transB, N, K);
      return dst;
    });
    return new PackedGPTWeights(sources.map(({ t }) => t.storage as FloatArray), panels, weightsEpoch());
  }

  /** Whether these panels are w's current weights (none replaced, none written in place since). */
  matches(w: GPTModelWeights): boolean {
    if (this.epoch !== weightsEpoch()) return false;
    const now = panelSources(w);
    return now.length === this.sources.length && now.every(({ t }, i) => t.storage === this.sources[i]);
  }
}

/** A Llama decoder layer's parameters; projections stored (out, in); the norm weights may be absent. */
export interface LlamaBlockWeights {
  inputNorm: Tensor | null; postNorm: Tensor | null; // (C) each
  q: Tensor; k: Tensor; v: Tensor; o: Tensor; // (C, C), (KW, C), (KW, C), (C, C)
  gate: Tensor; up: Tensor; down: Tensor; // (hidden, C), (hidden, C), (C, hidden)
}

const LLAMA_ORDER = ['inputNorm', 'postNorm', 'q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;

/** The shapes a fused Llama step needs besides the tensors. */
export interface LlamaBlockShape { heads: number; kvHeads: number; hidden: number; eps: number; theta: number }

/**
 * A Llama layer's output (A, 1, C) for x (A, 1, C), or null when the backend has no fused kernel for these tensors
 * (then compose the layer). The cache holds key/value heads only, (rows, context, KW). No graph.
 */
export function llamaBlockDecode(x: Tensor, w: LlamaBlockWeights, cache: KVBuffers, rows: readonly number[],
  starts: readonly number[], shape: LlamaBlockShape): Tensor | null {
  const be = backend();
  if (!be.llamaBlockDecode) return null;
  const weights = LLAMA_ORDER.map((k) => (w[k]?.storage ?? null) as FloatArray | null);
  return stepInPlace('llamaBlockDecode', x, rows, starts, (out, r, s, A, C) =>
    be.llamaBlockDecode!(out, weights, cache.keys, cache.values, r, s, A, C, shape.heads, shape.kvHeads, shape.hidden,
      cache.context, shape.eps, shape.theta));
}

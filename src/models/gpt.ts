// A GPT-2 style decoder in one file: token and position embeddings, pre-norm blocks of causal self-attention
// and a tanh-GELU MLP, a final LayerNorm and a tied LM head. Names and layout follow Hugging Face GPT-2, so
// state dicts move across unchanged; a KV cache makes generation one small forward per new token.

import type { DType, FloatArray } from '../backend/index.js';
import { activationScope, isGradEnabled, noGrad } from '../tensor/autograd.js';
import { checkpoint } from '../tensor/checkpoint.js';
import { zeros } from '../tensor/creation.js';
import { linear } from '../tensor/ops/matmul.js';
import { crossEntropy, dropout, embedding } from '../tensor/ops/nn-ops.js';
import { narrow } from '../tensor/ops/shape-ops.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { fmt } from '../tensor/shape.js';
import { allocationScope, allocFloat } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';
import { normal_ } from '../nn/init.js';
import { LayerNorm } from '../nn/layers/norm.js';
import { Module, ModuleList, Parameter } from '../nn/module.js';
import { cachedAttention, qkvAttention, type KVBuffers } from '../tensor/ops/attention.js';
import { gptBlockDecode, gptModelDecode, PackedGPTWeights, type GPTBlockWeights, type GPTModelWeights } from '../tensor/ops/gpt-block.js';
import { Conv1D } from './conv1d.js';
import { generateFrom } from './decoder-common.js';
import { resolveGPTConfig, type GPTConfig, type ResolvedGPTConfig } from './gpt-config.js';
import type { SamplingOptions } from './sampling.js';

/**
 * Per-layer key and value buffers for incremental decoding, preallocated to the full context for `batch`
 * sequences: keys[l] and values[l] are (batch, context, width), of which row b's first lengths[b] positions are
 * filled.
 */
export class KVCache {
  /** Positions already cached in each row (the next token's position). */
  readonly lengths: Int32Array;
  readonly keys: FloatArray[];
  readonly values: FloatArray[];
  /** @internal the model's weights packed for batched steps, made at the first step that uses them (PackedGPTWeights) */
  packed: PackedGPTWeights | null = null;

  constructor(readonly batch: number, readonly context: number, readonly width: number, layers: number, dtype: DType) {
    const n = batch * context * width;
    this.lengths = new Int32Array(batch);
    this.keys = Array.from({ length: layers }, () => allocFloat(dtype, n));
    this.values = Array.from({ length: layers }, () => allocFloat(dtype, n));
  }

  /** Positions cached in row 0 (the whole cache, for batch 1). */
  get length(): number { return this.lengths[0]; }

  /** Empties every row for new sequences (the buffers are reused). */
  reset(): this {
    this.lengths.fill(0);
    return this;
  }

  /** Layer l's buffers, as the attention op takes them. */
  layer(l: number): KVBuffers { return { keys: this.keys[l], values: this.values[l], context: this.context }; }
}

/** Options of GPT.forward. */
export interface GPTForwardOptions {
  /** Incremental decoding: attend over the cached prefix, append the new keys and values, advance the lengths. */
  cache?: KVCache;
  /** With a cache: the cache row of each batch row of idx (default 0, 1, ...); rows may hold different lengths. */
  rows?: readonly number[];
  /** Compute logits only for the last position (B, 1, V): what sampling needs. */
  lastOnly?: boolean;
  /** Target value that does not count in the loss (default -100, as fine-tuning masks prompts). */
  ignoreIndex?: number;
}

/** What GPT.forward returns: logits, and the loss when targets are given. */
export interface GPTOutput {
  /** (B, T, V), or (B, 1, V) with lastOnly. */
  logits: Tensor;
  /** Mean cross-entropy over non-ignored targets, when targets were given. */
  loss?: Tensor;
}

export interface GenerateOptions extends SamplingOptions {
  /** Random stream for sampling (default: the global generator). */
  generator?: Generator;
  /** Called with each new column of tokens (one id per batch row) as it is chosen. */
  onToken?: (ids: number[], step: number) => void;
}

/** The tied (or separate) output projection: logits = x @ W^T with W (V, C), no copy of wte. */
class LMHead extends Module {
  constructor(public weight: Parameter) { super(); }
  forward(x: Tensor): Tensor { return linear(x, this.weight, null); }
}

class CausalSelfAttention extends Module {
  c_attn: Conv1D;
  c_proj: Conv1D;

  constructor(private readonly cfg: ResolvedGPTConfig) {
    super();
    const C = cfg.width;
    this.c_attn = new Conv1D(C, 3 * C, { bias: cfg.bias, std: 0 });
    this.c_proj = new Conv1D(C, C, { bias: cfg.bias, std: 0 });
  }

  forward(x: Tensor, cache?: CacheView, layer = 0): Tensor {
    const qkv = this.c_attn.forward(x); // (B, T, 3C), columns [q | k | v]
    const y = cache
      ? cachedAttention(qkv, cache.cache.layer(layer), cache.rows, cache.starts, this.cfg.heads)
      : qkvAttention(qkv, this.cfg.heads); // = attention(narrow q, k, v) without the copies in backward
    return dropout(this.c_proj.forward(y), this.cfg.dropout, this.training);
  }

  /** Attention heads. */
  get heads(): number { return this.cfg.heads; }
}

/** The cache rows a forward continues and how many positions each held before it. */
/** Entries one fused decoding step takes (KILN_GEMV_MAX_M: its products keep every row in registers). */
const DECODE_ENTRIES = 16;
/**
 * Longest prompt that goes through fused steps (in chunks of DECODE_ENTRIES); longer ones run the layers, whose
 * packed GEMM reads each weight once for all positions. At 32 the fused steps were still faster on the T3 model
 * (2.1 against 3.1 ms) and on GPT-2 small (66 against 69 ms); at 64 on GPT-2 small they took 129 against 95.
 */
const FUSED_PROMPT_MAX = 32;

interface CacheView {
  cache: KVCache;
  rows: readonly number[];
  starts: readonly number[];
}

class MLP extends Module {
  c_fc: Conv1D;
  c_proj: Conv1D;

  constructor(private readonly cfg: ResolvedGPTConfig) {
    super();
    const C = cfg.width;
    this.c_fc = new Conv1D(C, 4 * C, { bias: cfg.bias, std: 0 });
    this.c_proj = new Conv1D(4 * C, C, { bias: cfg.bias, std: 0 });
  }

  forward(x: Tensor): Tensor {
    const h = this.c_fc.forward(x).gelu('tanh'); // (B, T, 4C)
    return dropout(this.c_proj.forward(h), this.cfg.dropout, this.training);
  }
}

/** One pre-norm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)). */
class Block extends Module {
  ln_1: LayerNorm;
  attn: CausalSelfAttention;
  ln_2: LayerNorm;
  mlp: MLP;

  constructor(cfg: ResolvedGPTConfig) {
    super();
    this.ln_1 = new LayerNorm(cfg.width, { eps: 1e-5, bias: cfg.bias });
    this.attn = new CausalSelfAttention(cfg);
    this.ln_2 = new LayerNorm(cfg.width, { eps: 1e-5, bias: cfg.bias });
    this.mlp = new MLP(cfg);
  }

  forward(x: Tensor, cache?: CacheView, layer = 0): Tensor {
    if (cache && x.shape[1] === 1 && !this.training) {
      const fused = this.decodeStep(x, cache, layer);
      if (fused) return fused;
    }
    const h = x.add(this.attn.forward(this.ln_1.forward(x), cache, layer));
    return h.add(this.mlp.forward(this.ln_2.forward(h)));
  }

  /** One new token per sequence in one backend call (null when the backend composes it instead). */
  private decodeStep(x: Tensor, cache: CacheView, layer: number): Tensor | null {
    const w = this.fusedWeights();
    return w && gptBlockDecode(x, w, cache.cache.layer(layer), cache.rows, cache.starts, this.attn.heads, this.ln_1.eps);
  }

  /**
   * The block's weights for a fused decoding step, or null unless every layer is the plain one: a LoRA wrapper (or
   * any replaced module) has a forward of its own to run.
   */
  fusedWeights(): GPTBlockWeights | null {
    const { ln_1, ln_2, attn, mlp } = this;
    const plain = [attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj].every((m) => m.constructor === Conv1D) &&
      [ln_1, ln_2].every((m) => m.constructor === LayerNorm) && ln_1.eps === ln_2.eps;
    if (!plain) return null;
    return {
      ln1Weight: ln_1.weight, ln1Bias: ln_1.bias, attnWeight: attn.c_attn.weight, attnBias: attn.c_attn.bias,
      projWeight: attn.c_proj.weight, projBias: attn.c_proj.bias, ln2Weight: ln_2.weight, ln2Bias: ln_2.bias,
      fcWeight: mlp.c_fc.weight, fcBias: mlp.c_fc.bias, fc2Weight: mlp.c_proj.weight, fc2Bias: mlp.c_proj.bias,
    };
  }
}


class Transformer extends Module {
  wte: EmbeddingTable;
  wpe: EmbeddingTable;
  h: ModuleList;
  ln_f: LayerNorm;

  constructor(cfg: ResolvedGPTConfig) {
    super();
    this.wte = new EmbeddingTable(cfg.vocabSize, cfg.width);
    this.wpe = new EmbeddingTable(cfg.context, cfg.width);
    this.h = new ModuleList(Array.from({ length: cfg.layers }, () => new Block(cfg)));
    this.ln_f = new LayerNorm(cfg.width, { eps: 1e-5, bias: cfg.bias });
  }
}

/** An embedding table (rows, width), named `weight` as in nn.Embedding; GPT.initWeights fills it. */
class EmbeddingTable extends Module {
  weight: Parameter;
  constructor(rows: number, width: number) {
    super();
    this.weight = new Parameter(zeros([rows, width]));
  }
}

/**
 * A GPT-2 style language model.
 *
 * ```ts
 * const gpt = new kiln.models.GPT({ vocabSize: 256, context: 64, layers: 2, heads: 2, width: 64 });
 * const idx = kiln.randint(0, 256, [4, 64], { dtype: 'int32' });
 * const { logits, loss } = gpt.forward(idx, idx);  // logits (4, 64, 256), loss a scalar
 * loss!.backward();
 * const out = gpt.generate(idx.narrow(0, 0, 1).narrow(1, 0, 8), 20, { temperature: 0.8, topK: 40 });
 * ```
 */
export class GPT extends Module {
  /** Size presets; vocabSize is a default that the tokenizer usually overrides. */
  static readonly presets: Readonly<Record<'tiny' | 'small' | 'base', Readonly<ResolvedGPTConfig>>> = Object.freeze({
    tiny: Object.freeze({ vocabSize: 512, context: 64, layers: 2, heads: 2, width: 64, dropout: 0, bias: true, tiedEmbeddings: true }),
    small: Object.freeze({ vocabSize: 1024, context: 128, layers: 4, heads: 4, width: 128, dropout: 0, bias: true, tiedEmbeddings: true }),
    base: Object.freeze({ vocabSize: 4096, context: 256, layers: 6, heads: 6, width: 384, dropout: 0.1, bias: true, tiedEmbeddings: true }),
  });

  readonly config: Readonly<ResolvedGPTConfig>;
  /** forward under noGrad hands out logits nobody else holds (see LanguageModel.ownsForwardOutput). */
  readonly ownsForwardOutput = true;
  transformer: Transformer;
  lm_head: LMHead;
  /**
   * Gradient checkpointing: when true, training forwards keep only each block's input and recompute the block in
   * backward (kiln.nn.checkpoint), for less memory at about one more forward pass. Decoding with a cache is unaffected.
   */
  checkpointActivations = false;

  /**
   * Builds the model with GPT-2 initialisation: N(0, 0.02) for embeddings and weights, c_proj weights
   * N(0, 0.02 / sqrt(2 * layers)), zero biases, LayerNorm ones and zeros. Draws from `generator` (default: the
   * global one, so `kiln.manualSeed(n)` first makes it reproducible).
   */
  constructor(config: GPTConfig, options: { generator?: Generator; dtype?: DType } = {}) {
    super();
    this.config = Object.freeze(resolveGPTConfig(config));
    const cfg = this.config;
    const projStd = 0.02 / Math.sqrt(2 * cfg.layers);
    this.transformer = new Transformer(cfg);
    this.lm_head = new LMHead(cfg.tiedEmbeddings ? this.transformer.wte.weight : new Parameter(zeros([cfg.vocabSize, cfg.width])));
    this.initWeights(options.generator ?? defaultGenerator, projStd);
    if (options.dtype && options.dtype !== 'float32') this.to(options.dtype);
  }

  /** Draws every parameter in a fixed order (names sorted as namedParameters lists them), so a seed fixes the model. */
  private initWeights(g: Generator, projStd: number): void {
    for (const [name, p] of this.namedParameters()) {
      if (name.endsWith('.bias')) p.storage.fill(0);
      else if (/ln_\d\.weight$|ln_f\.weight$/.test(name)) p.storage.fill(1);
      else normal_(p, 0, /c_proj\.weight$/.test(name) ? projStd : 0.02, g);
    }
  }

  /** The blocks, typed. */
  private get blocks(): Block[] { return [...this.transformer.h] as Block[]; }

  /** An empty KV cache for `batch` sequences, sized to the model's context. */
  createCache(batch = 1): KVCache {
    if (!Number.isInteger(batch) || batch <= 0) throw new Error(`GPT.createCache: batch must be a positive integer, got ${batch}`);
    const c = this.config;
    return new KVCache(batch, c.context, c.width, c.layers, this.transformer.wte.weight.dtype);
  }

  /**
   * Logits for every position of idx (int32, (B, T), T <= context) and, with targets (int32, (B, T), -100 to
   * ignore a position), the mean cross-entropy loss. With options.cache the tokens continue the cached sequence.
   */
  forward(idx: Tensor, targets?: Tensor | null, options: GPTForwardOptions = {}): GPTOutput {
    const cache = options.cache;
    this.checkIdx(idx, cache);
    if (cache) {
      if (targets) throw new Error('GPT.forward: targets cannot be combined with a KV cache (the cache is for inference)');
      const view = this.cacheView(idx, cache, options.rows);
      // A decoding step: every buffer but the logits goes back to the pool for the next step.
      return noGrad(() => allocationScope(() => this.run(idx, view, options.lastOnly ?? false), (r) => [r.logits]));
    }
    if (options.rows) throw new Error('GPT.forward: rows select cache rows; give a cache too');
    if (targets !== undefined && targets !== null) this.checkTargets(idx, targets, options);
    if (!isGradEnabled()) {
      // Evaluation or inference without a graph: the intermediates are dead once the forward returns.
      return allocationScope(() => this.runWithLoss(idx, targets ?? null, options), (r) => [r.logits, r.loss]);
    }
    // Every activation but the logits and the loss stays inside: backward hands their memory to the next step.
    return activationScope(() => this.runWithLoss(idx, targets ?? null, options), (r) => [r.logits, r.loss]);
  }

  /**
   * The training objective alone: forward(idx, targets).loss, but the logits stay inside the model too, so
   * backward() hands their memory (B·T·V floats) to the next step. What a training loop wants.
   * `model.loss(idx, targets).backward()`
   */
  loss(idx: Tensor, targets: Tensor, options: Omit<GPTForwardOptions, 'cache' | 'lastOnly'> = {}): Tensor {
    this.checkIdx(idx, undefined);
    this.checkTargets(idx, targets, options);
    if (!isGradEnabled()) return allocationScope(() => this.runWithLoss(idx, targets, options), (r) => [r.loss]).loss as Tensor;
    return activationScope(() => this.runWithLoss(idx, targets, options), (r) => [r.loss]).loss as Tensor;
  }

  private runWithLoss(idx: Tensor, targets: Tensor | null, options: GPTForwardOptions): GPTOutput {
    const out = this.run(idx, undefined, options.lastOnly ?? false);
    if (!targets) return out;
    const [B, T] = idx.shape;
    const loss = crossEntropy(out.logits.reshape([B * T, this.config.vocabSize]), targets.reshape([B * T]),
      { ignoreIndex: options.ignoreIndex ?? -100 });
    return { logits: out.logits, loss };
  }

  private checkTargets(idx: Tensor, targets: Tensor, options: GPTForwardOptions): void {
    if (!(targets instanceof Tensor) || targets.dtype !== 'int32') {
      throw new Error(`GPT.forward: targets must be an int32 tensor of token ids, got ${targets instanceof Tensor ? targets.dtype : typeof targets}`);
    }
    if (options.lastOnly) throw new Error('GPT.forward: targets need the logits of every position; drop lastOnly');
    if (targets.ndim !== 2 || targets.shape[0] !== idx.shape[0] || targets.shape[1] !== idx.shape[1]) {
      throw new Error(`GPT.forward: targets have shape ${fmt(targets.shape)} but idx has ${fmt(idx.shape)}; they must match`);
    }
    const [B, T] = idx.shape;
    const V = this.config.vocabSize;
    const ignoreIndex = options.ignoreIndex ?? -100;
    const ts = targets.storage as Int32Array;
    for (let i = 0; i < ts.length; i++) {
      if (ts[i] !== ignoreIndex && (ts[i] < 0 || ts[i] >= V)) {
        throw new Error(`GPT.forward: target ${ts[i]} at [${Math.floor(i / T)}, ${i % T}] is outside the vocabulary ` +
          `of ${V} tokens (use ${ignoreIndex} to ignore a position)`);
      }
    }
  }

  private run(idx: Tensor, cache: CacheView | undefined, lastOnly: boolean): GPTOutput {
    const [B, T] = idx.shape;
    const tr = this.transformer;
    if (cache && !this.training && (T === 1 || (lastOnly && T <= FUSED_PROMPT_MAX))) {
      const logits = this.fusedSteps(idx, cache);
      if (logits) {
        for (let b = 0; b < B; b++) cache.cache.lengths[cache.rows[b]] += T;
        return { logits };
      }
    }
    const pos = cache
      ? embedding(positions(cache.starts, T), tr.wpe.weight) // (B, T, C): each row from its own position
      : narrow(tr.wpe.weight, 0, 0, T); // (T, C)
    let x = embedding(idx, tr.wte.weight).add(pos); // (B, T, C)
    x = dropout(x, this.config.dropout, this.training);
    const blocks = this.blocks;
    for (let l = 0; l < blocks.length; l++) {
      const block = blocks[l];
      x = this.checkpointActivations && !cache ? checkpoint((t: Tensor) => block.forward(t), x) : block.forward(x, cache, l);
    }
    if (cache) for (let b = 0; b < B; b++) cache.cache.lengths[cache.rows[b]] += T;
    if (lastOnly && T > 1) x = narrow(x, 1, T - 1, 1); // (B, 1, C): the norm and head only where needed
    x = tr.ln_f.forward(x);
    return { logits: this.lm_head.forward(x) }; // (B, T, V)
  }

  /**
   * idx (B, T) through the fused decoding step: the logits (B, 1, V) of each row's last position, or null when the
   * backend has no fused step for this model (then the layers run one by one). A prompt's positions go in as
   * entries of the step on the same cache row, at most DECODE_ENTRIES at a time, in order: each entry attends over
   * its row's positions up to its own, which the step writes before any entry reads them, so the cache holds bitwise
   * what T single-token steps write. The LM head runs only for each row's last position, as lastOnly does (its
   * sums, like a decoding step's, are in another order for 1 to 4 rows than for 5 to 16: the last bits of the logits
   * depend on how many rows there are). A 16-token prompt of the T3 model took 1.2 ms through the layers and 0.95 as
   * one step; on GPT-2 small (124M) 36 against 42 ms before the head was limited to the last position.
   */
  private fusedSteps(idx: Tensor, cache: CacheView): Tensor | null {
    const [B, T] = idx.shape;
    const ids = idx.storage as Int32Array;
    if (T === 1) return this.decodeStep(ids, cache.cache, cache.rows, cache.starts, true);
    const total = B * T;
    const V = this.config.vocabSize;
    let last: FloatArray | null = null; // (B, V)
    for (let e0 = 0; e0 < total; e0 += DECODE_ENTRIES) {
      const n = Math.min(DECODE_ENTRIES, total - e0); // entries e0 .. e0+n: row e / T, position e % T
      const rows = Array.from({ length: n }, (_, i) => cache.rows[Math.floor((e0 + i) / T)]);
      const starts = Array.from({ length: n }, (_, i) => cache.starts[Math.floor((e0 + i) / T)] + ((e0 + i) % T));
      // the LM head only for the rows' last positions (a chunk without one asks for its last entry, unused)
      const ends = Array.from({ length: n }, (_, i) => i).filter((i) => (e0 + i) % T === T - 1);
      const headRows = Int32Array.from(ends.length ? ends : [n - 1]);
      const logits = this.decodeStep(ids.subarray(e0, e0 + n), cache.cache, rows, starts, false, headRows);
      if (!logits) return null; // the first chunk already declines when the backend has no fused step
      const out = logits.storage as FloatArray;
      last ??= allocFloat(logits.dtype, B * V);
      ends.forEach((i, k) => last!.set(out.subarray(k * V, (k + 1) * V), Math.floor((e0 + i) / T) * V));
    }
    return new Tensor(last!, [B, 1, V]);
  }

  /**
   * One new token per entry through the whole model in one backend call: token i at position starts[i] of cache
   * row rows[i] (null when the backend has none for this model or step, or a layer is not the plain one: then the
   * layers run one by one). `mayPack`: a step of that many sequences may pack the weights for the cache (a batch
   * decodes on with it; one prompt's entries alone do not pay for a copy of the weights).
   */
  private decodeStep(tokens: Int32Array, kv: KVCache, rows: readonly number[], starts: readonly number[],
    mayPack: boolean, headRows: Int32Array | null = null): Tensor | null {
    const tr = this.transformer;
    const blocks = this.blocks.map((b) => b.fusedWeights());
    const plain = blocks.every((b) => b !== null) && tr.ln_f.constructor === LayerNorm && this.lm_head.constructor === LMHead &&
      this.blocks.every((b) => b.ln_1.eps === tr.ln_f.eps);
    if (!plain) return null;
    const weights: GPTModelWeights = {
      wte: tr.wte.weight, wpe: tr.wpe.weight, blocks: blocks as GPTBlockWeights[], lnfWeight: tr.ln_f.weight,
      lnfBias: tr.ln_f.bias, head: this.lm_head.weight,
    };
    if (kv.packed && !kv.packed.matches(weights)) kv.packed = null; // a weight was replaced or trained since
    if (mayPack) kv.packed ??= PackedGPTWeights.pack(weights, tokens.length);
    return gptModelDecode(tokens, weights, this.blocks.map((_, l) => kv.layer(l)), rows, starts, this.config.heads,
      tr.ln_f.eps, kv.packed, headRows);
  }

  /** Checks a cache against the model and idx, and notes where each row starts. */
  private cacheView(idx: Tensor, cache: KVCache, rows?: readonly number[]): CacheView {
    if (!(cache instanceof KVCache)) throw new Error('GPT.forward: cache must be a KVCache from gpt.createCache()');
    const [B, T] = idx.shape;
    if (cache.width !== this.config.width || cache.keys.length !== this.config.layers || cache.context !== this.config.context) {
      throw new Error('GPT.forward: the cache was made for a different model');
    }
    const use = rows ?? Array.from({ length: B }, (_, b) => b);
    if (use.length !== B) throw new Error(`GPT.forward: rows has ${use.length} entries but idx has batch ${B}`);
    if (new Set(use).size !== B) throw new Error('GPT.forward: rows must not repeat a cache row');
    const starts = use.map((r) => {
      if (!Number.isInteger(r) || r < 0 || r >= cache.batch) {
        throw new Error(rows ? `GPT.forward: cache row ${r} is outside the cache's ${cache.batch} rows`
          : `GPT.forward: the cache was made for batch ${cache.batch} but idx has batch ${B}`);
      }
      const held = cache.lengths[r];
      if (held + T > this.config.context) {
        throw new Error(`GPT.forward: the cache holds ${held} tokens and ${T} more would exceed the model's context of ${this.config.context}`);
      }
      return held;
    });
    return { cache, rows: use, starts };
  }

  private checkIdx(idx: Tensor, cache?: KVCache): void {
    if (!(idx instanceof Tensor)) throw new Error(`GPT.forward: idx must be a Tensor of token ids, got ${typeof idx}`);
    if (idx.dtype !== 'int32') {
      throw new Error(`GPT.forward: idx must be an int32 tensor of token ids, got ${idx.dtype} (make it with { dtype: 'int32' } or .int())`);
    }
    if (idx.ndim !== 2 || idx.shape[1] === 0) {
      throw new Error(`GPT.forward: idx must have shape (batch, time) with time >= 1, got ${fmt(idx.shape)}`);
    }
    const [, T] = idx.shape;
    const { context, vocabSize } = this.config;
    if (!cache && T > context) {
      throw new Error(`GPT.forward: the sequence has ${T} tokens but the model's context is ${context}; crop idx to the last ${context}`);
    }
    const s = idx.storage as Int32Array;
    for (let i = 0; i < s.length; i++) {
      if (s[i] < 0 || s[i] >= vocabSize) {
        throw new Error(`GPT.forward: token id ${s[i]} at [${Math.floor(i / T)}, ${i % T}] is outside the vocabulary of ${vocabSize} tokens`);
      }
    }
  }

  /**
   * Extends idx (int32, (B, T)) by maxNewTokens sampled tokens and returns (B, T + maxNewTokens). Sampling as in
   * kiln.infer (temperature, default 1 here as in nanoGPT; 0 is greedy; topK, topP, repetitionPenalty), from
   * `generator` (default the global one). Decodes all rows together with a KV cache; past the context the model
   * sees the last `context` tokens.
   */
  generate(idx: Tensor, maxNewTokens: number, options: GenerateOptions = {}): Tensor {
    return generateFrom(this, 'GPT.generate', idx, maxNewTokens, options);
  }

  /**
   * Two AdamW parameter groups in nanoGPT's way: weight decay on matrices (2-D: embeddings and weights), none on
   * biases and LayerNorm parameters. `new kiln.optim.AdamW(gpt.paramGroups(0.1), { lr: 3e-4 })`
   */
  paramGroups(weightDecay: number): { params: Parameter[]; weightDecay: number }[] {
    const ps = this.trainableParameters();
    return [
      { params: ps.filter((p) => p.ndim >= 2), weightDecay },
      { params: ps.filter((p) => p.ndim < 2), weightDecay: 0 },
    ];
  }

  /** Training FLOPs per token (forward and backward) at a sequence length, as nanoGPT/PaLM count: 6N + 12 L T C. */
  flopsPerToken(seqLen = this.config.context): number {
    const c = this.config;
    const n = this.numParameters() - c.context * c.width; // position embeddings do no matmul
    return 6 * n + 12 * c.layers * seqLen * c.width;
  }
}

/** Position ids (B, T): row b counts from starts[b]. */
function positions(starts: readonly number[], T: number): Tensor {
  const ids = new Int32Array(starts.length * T);
  starts.forEach((s, b) => { for (let t = 0; t < T; t++) ids[b * T + t] = s + t; });
  return new Tensor(ids, [starts.length, T]);
}

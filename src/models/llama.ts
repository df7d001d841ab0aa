// A Llama-style decoder beside the GPT: token embeddings only (positions enter as rotary embeddings on queries
// and keys), pre-norm blocks of RMSNorm, grouped-query causal attention and a SwiGLU MLP, no biases, a final
// RMSNorm and a tied or separate LM head. Parameter names are Hugging Face LlamaForCausalLM's, so state dicts
// move across unchanged. Its forward with a KV cache (holding the key/value heads only) follows GPT.forward's
// contract, so the one decoding loop, Trainer, recipes and the hub serve both.

import type { DType } from '../backend/index.js';
import { activationScope, isGradEnabled, noGrad } from '../tensor/autograd.js';
import { zeros } from '../tensor/creation.js';
import { linear } from '../tensor/ops/matmul.js';
import { cachedGroupedAttention } from '../tensor/ops/attention.js';
import { llamaBlockDecode } from '../tensor/ops/gpt-block.js';
import { attention, crossEntropy, dropout, embedding } from '../tensor/ops/nn-ops.js';
import { rope } from '../tensor/ops/rope.js';
import { narrow } from '../tensor/ops/shape-ops.js';
import { defaultGenerator, type Generator } from '../tensor/random.js';
import { allocationScope } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';
import { normal_ } from '../nn/init.js';
import { RMSNorm } from '../nn/layers/norm.js';
import { Module, ModuleList, Parameter } from '../nn/module.js';
import { checkIdx, checkTargets, decoderCacheView, generateFrom, type CacheView } from './decoder-common.js';
import { KVCache, type GenerateOptions, type GPTForwardOptions, type GPTOutput } from './gpt.js';
import { resolveLlamaConfig, type LlamaConfig, type ResolvedLlamaConfig } from './llama-config.js';

/** A bias-free projection y = x @ W^T with W (out, in), as torch.nn.Linear(bias=False) stores it. */
class Proj extends Module {
  weight: Parameter;
  constructor(inFeatures: number, outFeatures: number) {
    super();
    this.weight = new Parameter(zeros([outFeatures, inFeatures]));
  }
  forward(x: Tensor): Tensor { return linear(x, this.weight, null); }
}

/** An embedding table (rows, width), named `weight` as in nn.Embedding; Llama.initWeights fills it. */
class EmbeddingTable extends Module {
  weight: Parameter;
  constructor(rows: number, width: number) {
    super();
    this.weight = new Parameter(zeros([rows, width]));
  }
}

/** The tied (or separate) output projection: logits = x @ W^T with W (V, C). */
class LMHead extends Module {
  constructor(public weight: Parameter) { super(); }
  forward(x: Tensor): Tensor { return linear(x, this.weight, null); }
}

class LlamaAttention extends Module {
  q_proj: Proj;
  k_proj: Proj;
  v_proj: Proj;
  o_proj: Proj;

  constructor(private readonly cfg: ResolvedLlamaConfig) {
    super();
    const C = cfg.width;
    const KW = (C / cfg.heads) * cfg.kvHeads;
    this.q_proj = new Proj(C, C);
    this.k_proj = new Proj(C, KW);
    this.v_proj = new Proj(C, KW);
    this.o_proj = new Proj(C, C);
  }

  forward(x: Tensor, cache: CacheView | undefined, layer: number): Tensor {
    const { heads, kvHeads, ropeTheta } = this.cfg;
    const start = cache ? cache.starts : 0;
    const q = rope(this.q_proj.forward(x), heads, { theta: ropeTheta, start }); // (B, T, C)
    const k = rope(this.k_proj.forward(x), kvHeads, { theta: ropeTheta, start }); // (B, T, KW)
    const v = this.v_proj.forward(x); // (B, T, KW)
    const y = cache
      ? cachedGroupedAttention(q, k, v, cache.cache.layer(layer), cache.rows, cache.starts, heads, kvHeads)
      : attention(q, repeatKV(k, heads, kvHeads), repeatKV(v, heads, kvHeads), { heads });
    return dropout(this.o_proj.forward(y), this.cfg.dropout, this.training);
  }

  /** The model's configuration. */
  get config(): ResolvedLlamaConfig { return this.cfg; }
}

/** (B, T, KV * HS) -> (B, T, NH * HS): key/value head j serves query heads j*G .. j*G+G-1 (HF's repeat_kv). */
function repeatKV(x: Tensor, heads: number, kvHeads: number): Tensor {
  if (heads === kvHeads) return x;
  const [B, T, KW] = x.shape;
  const HS = KW / kvHeads;
  const G = heads / kvHeads;
  // A gather of whole heads: its backward is the backend's scatter-add, where expand's would be a strided reduction.
  const pick = new Tensor(Int32Array.from({ length: heads }, (_, h) => Math.floor(h / G)), [heads]);
  return x.reshape([B * T, kvHeads, HS]).indexSelect(1, pick).reshape([B, T, heads * HS]);
}

/** SwiGLU: down(silu(gate(x)) * up(x)). */
class LlamaMLP extends Module {
  gate_proj: Proj;
  up_proj: Proj;
  down_proj: Proj;

  constructor(private readonly cfg: ResolvedLlamaConfig) {
    super();
    this.gate_proj = new Proj(cfg.width, cfg.hidden);
    this.up_proj = new Proj(cfg.width, cfg.hidden);
    this.down_proj = new Proj(cfg.hidden, cfg.width);
  }

  forward(x: Tensor): Tensor {
    const h = this.gate_proj.forward(x).silu().mul(this.up_proj.forward(x)); // (B, T, hidden)
    return dropout(this.down_proj.forward(h), this.cfg.dropout, this.training);
  }
}

/** One pre-norm decoder layer: x + attn(norm(x)), then + mlp(norm(x)). */
class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;

  constructor(cfg: ResolvedLlamaConfig) {
    super();
    this.self_attn = new LlamaAttention(cfg);
    this.mlp = new LlamaMLP(cfg);
    this.input_layernorm = new RMSNorm(cfg.width, { eps: cfg.rmsNormEps });
    this.post_attention_layernorm = new RMSNorm(cfg.width, { eps: cfg.rmsNormEps });
  }

  forward(x: Tensor, cache: CacheView | undefined, layer: number): Tensor {
    if (cache && x.shape[1] === 1 && !this.training) {
      const fused = this.decodeStep(x, cache, layer);
      if (fused) return fused;
    }
    const h = x.add(this.self_attn.forward(this.input_layernorm.forward(x), cache, layer));
    return h.add(this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }

  /** One new token per sequence in one backend call (null when the backend composes it instead). */
  private decodeStep(x: Tensor, cache: CacheView, layer: number): Tensor | null {
    const { self_attn: at, mlp, input_layernorm: n1, post_attention_layernorm: n2 } = this;
    // Only the plain layers: a LoRA wrapper (or any replaced module) has a forward of its own to run.
    const plain = [at.q_proj, at.k_proj, at.v_proj, at.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj].every((m) => m.constructor === Proj) &&
      [n1, n2].every((m) => m.constructor === RMSNorm) && n1.eps !== undefined && n1.eps === n2.eps;
    if (!plain) return null;
    const cfg = at.config;
    return llamaBlockDecode(x, {
      inputNorm: n1.weight, postNorm: n2.weight, q: at.q_proj.weight, k: at.k_proj.weight, v: at.v_proj.weight,
      o: at.o_proj.weight, gate: mlp.gate_proj.weight, up: mlp.up_proj.weight, down: mlp.down_proj.weight,
    }, cache.cache.layer(layer), cache.rows, cache.starts,
    { heads: cfg.heads, kvHeads: cfg.kvHeads, hidden: cfg.hidden, eps: n1.eps as number, theta: cfg.ropeTheta });
  }
}

class LlamaModel extends Module {
  embed_tokens: EmbeddingTable;
  layers: ModuleList;
  norm: RMSNorm;

  constructor(cfg: ResolvedLlamaConfig) {
    super();
    this.embed_tokens = new EmbeddingTable(cfg.vocabSize, cfg.width);
    this.layers = new ModuleList(Array.from({ length: cfg.layers }, () => new LlamaDecoderLayer(cfg)));
    this.norm = new RMSNorm(cfg.width, { eps: cfg.rmsNormEps });
  }
}

/**
 * A Llama-style language model with the GPT's public surface (forward with a KV cache, loss, generate,
 * paramGroups) and Hugging Face LlamaForCausalLM parameter names.
 *
 * ```ts
 * const llama = new kiln.models.Llama({ vocabSize: 256, context: 64, layers: 2, heads: 4, kvHeads: 2, width: 64 });
 * const idx = kiln.randint(0, 256, [4, 64], { dtype: 'int32' });
 * const { logits, loss } = llama.forward(idx, idx);  // logits (4, 64, 256), loss a scalar
 * loss!.backward();
 * const out = llama.generate(idx.narrow(0, 0, 1).narrow(1, 0, 8), 20, { temperature: 0 });
 * ```
 */
export class Llama extends Module {
  readonly config: Readonly<ResolvedLlamaConfig>;
  model: LlamaModel;
  lm_head: LMHead;

  /**
   * Builds the model with N(0, 0.02) embeddings and projections, o_proj and down_proj N(0, 0.02 / sqrt(2 *
   * layers)) as GPT-2 scales its residual projections, RMSNorm weights one. Draws from `generator` (default the
   * global one), in the order namedParameters lists them.
   */
  constructor(config: LlamaConfig, options: { generator?: Generator; dtype?: DType } = {}) {
    super();
    this.config = Object.freeze(resolveLlamaConfig(config));
    const cfg = this.config;
    this.model = new LlamaModel(cfg);
    this.lm_head = new LMHead(cfg.tiedEmbeddings ? this.model.embed_tokens.weight : new Parameter(zeros([cfg.vocabSize, cfg.width])));
    this.initWeights(options.generator ?? defaultGenerator);
    if (options.dtype && options.dtype !== 'float32') this.to(options.dtype);
  }

  private initWeights(g: Generator): void {
    const projStd = 0.02 / Math.sqrt(2 * this.config.layers);
    for (const [name, p] of this.namedParameters()) {
      if (/(layernorm|norm)\.weight$/.test(name)) p.storage.fill(1);
      else normal_(p, 0, /(o_proj|down_proj)\.weight$/.test(name) ? projStd : 0.02, g);
    }
  }

  private get blocks(): LlamaDecoderLayer[] { return [...this.model.layers] as LlamaDecoderLayer[]; }

  /** Width of one layer's cached keys (and values): kvHeads * head size. */
  get kvWidth(): number { return (this.config.width / this.config.heads) * this.config.kvHeads; }

  /** An empty KV cache for `batch` sequences, sized to the model's context; it holds the key/value heads only. */
  createCache(batch = 1): KVCache {
    if (!Number.isInteger(batch) || batch <= 0) throw new Error(`Llama.createCache: batch must be a positive integer, got ${batch}`);
    const c = this.config;
    return new KVCache(batch, c.context, this.kvWidth, c.layers, this.model.embed_tokens.weight.dtype);
  }

  /**
   * Logits for every position of idx (int32, (B, T), T <= context) and, with targets (int32, (B, T), -100 to
   * ignore a position), the mean cross-entropy loss. With options.cache the tokens continue the cached sequence.
   */
  forward(idx: Tensor, targets?: Tensor | null, options: GPTForwardOptions = {}): GPTOutput {
    const cache = options.cache;
    checkIdx('Llama.forward', idx, this.config, cache);
    if (cache) {
      if (targets) throw new Error('Llama.forward: targets cannot be combined with a KV cache (the cache is for inference)');
      const view = decoderCacheView('Llama.forward', idx, cache, options.rows, this.config.context, this.kvWidth, this.config.layers);
      return noGrad(() => allocationScope(() => this.run(idx, view, options.lastOnly ?? false), (r) => [r.logits]));
    }
    if (options.rows) throw new Error('Llama.forward: rows select cache rows; give a cache too');
    if (targets !== undefined && targets !== null) checkTargets('Llama.forward', idx, targets, this.config.vocabSize, options);
    const scope = isGradEnabled() ? activationScope : allocationScope;
    return scope(() => this.runWithLoss(idx, targets ?? null, options), (r) => [r.logits, r.loss]);
  }

  /** The training objective alone (the logits stay inside, so backward frees them): `model.loss(idx, targets).backward()`. */
  loss(idx: Tensor, targets: Tensor, options: Omit<GPTForwardOptions, 'cache' | 'lastOnly'> = {}): Tensor {
    checkIdx('Llama.forward', idx, this.config, undefined);
    checkTargets('Llama.forward', idx, targets, this.config.vocabSize, options);
    const scope = isGradEnabled() ? activationScope : allocationScope;
    return scope(() => this.runWithLoss(idx, targets, options), (r) => [r.loss]).loss as Tensor;
  }

  private runWithLoss(idx: Tensor, targets: Tensor | null, options: GPTForwardOptions): GPTOutput {
    const out = this.run(idx, undefined, options.lastOnly ?? false);
    if (!targets) return out;
    const [B, T] = idx.shape;
    const loss = crossEntropy(out.logits.reshape([B * T, this.config.vocabSize]), targets.reshape([B * T]),
      { ignoreIndex: options.ignoreIndex ?? -100 });
    return { logits: out.logits, loss };
  }

  private run(idx: Tensor, cache: CacheView | undefined, lastOnly: boolean): GPTOutput {
    const [B, T] = idx.shape;
    let x = embedding(idx, this.model.embed_tokens.weight); // (B, T, C)
    const blocks = this.blocks;
    for (let l = 0; l < blocks.length; l++) x = blocks[l].forward(x, cache, l);
    if (cache) for (let b = 0; b < B; b++) cache.cache.lengths[cache.rows[b]] += T;
    if (lastOnly && T > 1) x = narrow(x, 1, T - 1, 1); // (B, 1, C): the norm and head only where needed
    x = this.model.norm.forward(x);
    return { logits: this.lm_head.forward(x) }; // (B, T, V)
  }

  /** Extends idx (int32, (B, T)) by maxNewTokens sampled tokens, as GPT.generate does (the one decoding loop). */
  generate(idx: Tensor, maxNewTokens: number, options: GenerateOptions = {}): Tensor {
    return generateFrom(this, 'Llama.generate', idx, maxNewTokens, options);
  }

  /** AdamW groups: weight decay on matrices (embeddings, projections), none on RMSNorm weights. */
  paramGroups(weightDecay: number): { params: Parameter[]; weightDecay: number }[] {
    const ps = this.trainableParameters();
    return [
      { params: ps.filter((p) => p.ndim >= 2), weightDecay },
      { params: ps.filter((p) => p.ndim < 2), weightDecay: 0 },
    ];
  }

  /** Training FLOPs per token (forward and backward) at a sequence length: 6N + 12 L T C, N without the embedding gather. */
  flopsPerToken(seqLen = this.config.context): number {
    const c = this.config;
    const n = this.numParameters() - (c.tiedEmbeddings ? 0 : c.vocabSize * c.width);
    return 6 * n + 12 * c.layers * seqLen * c.width;
  }
}

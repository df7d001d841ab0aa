// Decoders turn "append these tokens" into "logits of the last position". Three kinds: the lean GPT path
// (preallocated buffers, KV cache, the backend's kernels and a SIMD mat-vec for single tokens), the model's own
// forward with its KV cache, and the same forward recomputing the whole sequence (no cache, for comparison).

import { backend, type FloatArray } from '../backend/index.js';
import { noGrad } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { createMatVec, type MatVec } from './matvec.js';

/** What generation needs from a language model: Kiln's GPT fits, and so does any model with this shape. */
export interface LanguageModel {
  readonly config: { readonly vocabSize: number; readonly context: number; readonly [key: string]: unknown };
  forward(idx: Tensor, targets?: Tensor | null, options?: { cache?: unknown; lastOnly?: boolean }): { logits: Tensor };
  createCache?(batch: number): unknown;
  stateDict?(): Record<string, Tensor>;
  parameters?(): readonly { requiresGrad: boolean }[];
  eval?(): unknown;
  training?: boolean;
}

/** Appends tokens to a running sequence and returns the logits of its last position. */
export interface Decoder {
  /**
   * 'fast' (the lean GPT path with its cache), 'module' (the model's forward with its cache), 'fast-recompute'
   * or 'recompute' (the same without a cache: the whole sequence every step).
   */
  readonly kind: 'fast' | 'module' | 'fast-recompute' | 'recompute';
  readonly vocabSize: number;
  /** Longest sequence the model can hold. */
  readonly context: number;
  /** Tokens in the sequence so far. */
  readonly length: number;
  /** Starts a new, empty sequence. */
  reset(): void;
  /**
   * Appends ids and returns the logits (vocabSize) of the last position. The array is reused by the next call:
   * read or copy it before feeding again.
   */
  feed(ids: readonly number[]): FloatArray;
}

export type DecoderEngine = 'auto' | 'fast' | 'module' | 'recompute';

/**
 * The best decoder for a model: the lean GPT path when its weights are a float32 GPT-2 state dict, else the
 * model's forward with its KV cache, else recomputation. `cache: false` recomputes the whole sequence for every
 * token, on the lean path when it applies ('fast-recompute') or the model's forward ('recompute', also what
 * engine 'recompute' asks for).
 */
export function createDecoder(model: LanguageModel, options: { engine?: DecoderEngine; cache?: boolean } = {}): Decoder {
  const engine = options.engine ?? 'auto';
  if (engine === 'recompute' || (options.cache === false && engine === 'module')) return new RecomputeDecoder(model);
  if (engine === 'module') return new ModuleDecoder(model);
  const fast = FastGPTDecoder.tryCreate(model);
  if (fast) return options.cache === false ? new FastRecomputeDecoder(fast) : fast;
  if (engine === 'fast') throw new Error('generate: the fast decoder needs a float32 GPT-2 style model (Kiln GPT or Hugging Face names)');
  if (options.cache === false) return new RecomputeDecoder(model);
  return typeof model.createCache === 'function' ? new ModuleDecoder(model) : new RecomputeDecoder(model);
}

/** The model's own forward with its KV cache, asking for the last position's logits only. */
class ModuleDecoder implements Decoder {
  readonly kind = 'module';
  readonly vocabSize: number;
  readonly context: number;
  private cache: unknown;
  private n = 0;

  constructor(private readonly model: LanguageModel) {
    if (typeof model.createCache !== 'function') throw new Error('generate: this model has no createCache(), so it cannot decode with a KV cache');
    this.vocabSize = model.config.vocabSize;
    this.context = model.config.context;
    this.cache = model.createCache(1);
  }

  get length(): number { return this.n; }

  reset(): void {
    this.cache = this.model.createCache!(1);
    this.n = 0;
  }

  feed(ids: readonly number[]): FloatArray {
    checkRoom(this, ids.length);
    const logits = lastLogits(this.model, ids, this.cache);
    this.n += ids.length;
    return logits;
  }
}

/** The model's logits for the last of ids (batch 1), through the cache when one is given. */
function lastLogits(model: LanguageModel, ids: readonly number[], cache?: unknown): FloatArray {
  const x = new Tensor(Int32Array.from(ids), [1, ids.length]);
  const logits = noGrad(() => model.forward(x, null, { cache, lastOnly: true }).logits);
  const s = logits.storage as FloatArray;
  return s.subarray(s.length - model.config.vocabSize);
}

/** No cache: every step runs the whole sequence through the model (what a KV cache saves). */
class RecomputeDecoder implements Decoder {
  readonly kind = 'recompute';
  readonly vocabSize: number;
  readonly context: number;
  private ids: number[] = [];

  constructor(private readonly model: LanguageModel) {
    this.vocabSize = model.config.vocabSize;
    this.context = model.config.context;
  }

  get length(): number { return this.ids.length; }
  reset(): void { this.ids = []; }

  feed(ids: readonly number[]): FloatArray {
    checkRoom(this, ids.length);
    this.ids.push(...ids);
    return lastLogits(this.model, this.ids);
  }
}

/** The lean path without a cache: every step rewinds it and runs the whole sequence again in one pass. */
class FastRecomputeDecoder implements Decoder {
  readonly kind = 'fast-recompute';
  readonly vocabSize: number;
  readonly context: number;
  private ids: number[] = [];

  constructor(private readonly inner: FastGPTDecoder) {
    this.vocabSize = inner.vocabSize;
    this.context = inner.context;
  }

  get length(): number { return this.ids.length; }

  reset(): void {
    this.ids = [];
    this.inner.reset();
  }

  feed(ids: readonly number[]): FloatArray {
    checkRoom(this, ids.length);
    this.ids.push(...ids);
    this.inner.rewind();
    return this.inner.feed(this.ids);
  }
}

function checkRoom(d: Decoder, n: number): void {
  if (n === 0) throw new Error('generate: nothing to feed (an empty prompt?)');
  if (d.length + n > d.context) {
    throw new Error(`generate: the sequence would reach ${d.length + n} tokens but the model's context is ${d.context}`);
  }
}

interface LayerWeights {
  ln1w: Float32Array | null; ln1b: Float32Array | null;
  attnW: Float32Array; attnB: Float32Array | null; // (C, 3C)
  projW: Float32Array; projB: Float32Array | null; // (C, C)
  ln2w: Float32Array | null; ln2b: Float32Array | null;
  fcW: Float32Array; fcB: Float32Array | null; // (C, 4C)
  fc2W: Float32Array; fc2B: Float32Array | null; // (4C, C)
  k: Float32Array; v: Float32Array; // cache (context, C)
  mv: { attn: number; proj: number; fc: number; fc2: number };
}

/**
 * The lean decoding path for a GPT-2 style model (Kiln's GPT or a Hugging Face GPT-2 state dict): every buffer
 * is allocated once, the KV cache is one (context, C) array per layer and per K/V, no autograd, no tensors. A
 * prompt goes through the backend's GEMM in one pass (logits for its last position only); each new token then
 * costs one mat-vec per weight matrix, on a SIMD mat-vec kernel when one is available.
 *
 * The weights are read from the model's parameters (shared, not copied) at every reset(); the mat-vec kernel
 * keeps its own copy, refreshed at reset(), so sampling from a model that is still training sees its current
 * weights.
 */
export class FastGPTDecoder implements Decoder {
  readonly kind = 'fast';
  readonly vocabSize: number;
  readonly context: number;
  private n = 0;
  private readonly C: number;
  private readonly NH: number;
  private readonly layers: LayerWeights[];
  private readonly wte: Float32Array; // (V, C)
  private readonly wpe: Float32Array; // (context, C)
  private readonly lnfW: Float32Array | null;
  private readonly lnfB: Float32Array | null;
  private readonly head: Float32Array; // (V, C)
  private readonly mv: MatVec | null;
  private headHandle = -1;
  private loaded = false;
  private readonly model: LanguageModel;
  // Scratch, sized for `rows` positions at a time (grown on demand for long prompts).
  private rows = 0;
  private x = new Float32Array(0); // (rows, C) residual stream
  private h = new Float32Array(0); // (rows, C) normed
  private qkv = new Float32Array(0); // (rows, 3C)
  private q = new Float32Array(0); // (rows, C)
  private att = new Float32Array(0); // (rows, C)
  private big = new Float32Array(0); // (rows, 4C)
  private tmp = new Float32Array(0); // (rows, C)
  private mean = new Float32Array(0);
  private rstd = new Float32Array(0);
  private lse = new Float32Array(0);
  private readonly logits: Float32Array;

  private constructor(model: LanguageModel, sd: Record<string, Tensor>, prefix: string,
    cfg: { vocabSize: number; context: number; heads: number; width: number; layers: number }) {
    this.model = model;
    const get = (name: string, optional = false): Float32Array | null => {
      const t = sd[prefix + name];
      if (!t) {
        if (optional) return null;
        throw new Error(`FastGPTDecoder: missing weight ${prefix + name}`);
      }
      return t.storage as Float32Array;
    };
    this.vocabSize = cfg.vocabSize;
    this.context = cfg.context;
    this.C = cfg.width;
    this.NH = cfg.heads;
    const C = this.C;
    this.wte = get('wte.weight')!;
    this.wpe = get('wpe.weight')!;
    this.lnfW = get('ln_f.weight', true);
    this.lnfB = get('ln_f.bias', true);
    this.head = (sd['lm_head.weight']?.storage as Float32Array | undefined) ?? this.wte;
    this.layers = [];
    for (let l = 0; l < cfg.layers; l++) {
      const p = `h.${l}.`;
      this.layers.push({
        ln1w: get(`${p}ln_1.weight`, true), ln1b: get(`${p}ln_1.bias`, true),
        attnW: get(`${p}attn.c_attn.weight`)!, attnB: get(`${p}attn.c_attn.bias`, true),
        projW: get(`${p}attn.c_proj.weight`)!, projB: get(`${p}attn.c_proj.bias`, true),
        ln2w: get(`${p}ln_2.weight`, true), ln2b: get(`${p}ln_2.bias`, true),
        fcW: get(`${p}mlp.c_fc.weight`)!, fcB: get(`${p}mlp.c_fc.bias`, true),
        fc2W: get(`${p}mlp.c_proj.weight`)!, fc2B: get(`${p}mlp.c_proj.bias`, true),
        k: new Float32Array(cfg.context * C), v: new Float32Array(cfg.context * C),
        mv: { attn: -1, proj: -1, fc: -1, fc2: -1 },
      });
    }
    this.logits = new Float32Array(cfg.vocabSize);
    this.mv = createMatVec();
    if (this.mv) {
      for (const L of this.layers) {
        L.mv.attn = this.mv.add(C, 3 * C);
        L.mv.proj = this.mv.add(C, C);
        L.mv.fc = this.mv.add(C, 4 * C);
        L.mv.fc2 = this.mv.add(4 * C, C);
      }
      this.headHandle = this.mv.add(C, cfg.vocabSize);
    }
    this.reset();
  }

  /** A fast decoder for the model, or null when its weights are not a float32 GPT-2 state dict. */
  static tryCreate(model: LanguageModel): FastGPTDecoder | null {
    if (typeof model.stateDict !== 'function') return null;
    const c = model.config as Record<string, unknown>;
    const cfg = {
      vocabSize: c.vocabSize as number, context: c.context as number, heads: c.heads as number,
      width: c.width as number, layers: c.layers as number,
    };
    if (![cfg.vocabSize, cfg.context, cfg.heads, cfg.width, cfg.layers].every((v) => Number.isInteger(v) && v > 0)) return null;
    const sd = model.stateDict();
    // Adapters (LoRA) or any other extra layer change the forward: only a plain GPT-2 takes the fast path.
    if (Object.keys(sd).some((k) => /lora_|base_layer/.test(k))) return null;
    const prefix = 'transformer.wte.weight' in sd ? 'transformer.' : 'wte.weight' in sd ? '' : null;
    if (prefix === null) return null;
    const C = cfg.width;
    const shapes: [string, number[]][] = [['wte.weight', [cfg.vocabSize, C]], ['wpe.weight', [cfg.context, C]]];
    for (let l = 0; l < cfg.layers; l++) {
      shapes.push([`h.${l}.attn.c_attn.weight`, [C, 3 * C]], [`h.${l}.attn.c_proj.weight`, [C, C]],
        [`h.${l}.mlp.c_fc.weight`, [C, 4 * C]], [`h.${l}.mlp.c_proj.weight`, [4 * C, C]]);
    }
    for (const [name, shape] of shapes) {
      const t = sd[prefix + name];
      if (!t || t.dtype !== 'float32' || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) return null;
    }
    for (const [name, t] of Object.entries(sd)) if (t.dtype !== 'float32' && name.startsWith(prefix)) return null;
    const head = sd['lm_head.weight'];
    if (head && (head.dtype !== 'float32' || head.shape[0] !== cfg.vocabSize || head.shape[1] !== C)) return null;
    return new FastGPTDecoder(model, sd, prefix, cfg);
  }

  get length(): number { return this.n; }

  /**
   * Starts a new sequence and refreshes the mat-vec kernel's copy of the weights, unless every parameter is
   * frozen (requiresGrad off, as loadModel leaves a model): then the copy made once is kept, which saves
   * copying every weight per request. Changing a frozen model's weights in place needs a new decoder.
   */
  reset(): void {
    this.n = 0;
    const mv = this.mv;
    if (!mv) return;
    const frozen = typeof this.model.parameters === 'function' && this.model.parameters().every((p) => !p.requiresGrad);
    if (frozen && this.loaded) return;
    this.loaded = true;
    const C = this.C;
    for (const L of this.layers) {
      mv.load(L.mv.attn, L.attnW, L.attnB);
      mv.load(L.mv.proj, L.projW, L.projB);
      mv.load(L.mv.fc, L.fcW, L.fcB);
      mv.load(L.mv.fc2, L.fc2W, L.fc2B);
    }
    mv.loadTransposed(this.headHandle, this.head, this.vocabSize, C);
  }

  /** Empties the sequence without refreshing the weights (for recomputation within one generation). */
  rewind(): void { this.n = 0; }

  private ensureRows(T: number): void {
    if (T <= this.rows) return;
    const C = this.C;
    this.rows = T;
    this.x = new Float32Array(T * C);
    this.h = new Float32Array(T * C);
    this.qkv = new Float32Array(T * 3 * C);
    this.q = new Float32Array(T * C);
    this.att = new Float32Array(T * C);
    this.big = new Float32Array(T * 4 * C);
    this.tmp = new Float32Array(T * C);
    this.mean = new Float32Array(T);
    this.rstd = new Float32Array(T);
    this.lse = new Float32Array(T * this.NH);
  }

  /** y (T, N) = x (T, K) @ W (K, N) + b, on the mat-vec kernel for one row, else the backend's GEMM. */
  private matmul(T: number, x: Float32Array, W: Float32Array, b: Float32Array | null, K: number, N: number,
    y: Float32Array, handle: number): void {
    if (T === 1 && this.mv) {
      this.mv.run(handle, x, y);
      return;
    }
    const out = y.subarray(0, T * N);
    if (b) for (let r = 0; r < T; r++) out.set(b, r * N);
    backend().gemm(false, false, 1, T, N, K, 1, x.subarray(0, T * K), 0, W, 0, b ? 1 : 0, out, 0);
  }

  feed(ids: readonly number[]): Float32Array {
    const T = ids.length;
    checkRoom(this, T);
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new Error(`generate: token id ${id} is outside the vocabulary of ${this.vocabSize} tokens`);
      }
    }
    this.ensureRows(T);
    const be = backend();
    const C = this.C;
    const NH = this.NH;
    const HS = C / NH;
    const start = this.n;
    const Tk = start + T;
    const { x, h, qkv, q, att, big, tmp, mean, rstd, lse } = this;
    const xs = x.subarray(0, T * C);
    // x = wte[ids] + wpe[start ..]
    for (let t = 0; t < T; t++) {
      const eo = ids[t] * C;
      const po = (start + t) * C;
      const o = t * C;
      for (let c = 0; c < C; c++) x[o + c] = this.wte[eo + c] + this.wpe[po + c];
    }
    const hs = h.subarray(0, T * C);
    const scale = 1 / Math.sqrt(HS);
    for (const L of this.layers) {
      be.layerNorm(xs, L.ln1w, L.ln1b, T, C, 1e-5, hs, mean.subarray(0, T), rstd.subarray(0, T));
      this.matmul(T, hs, L.attnW, L.attnB, C, 3 * C, qkv, L.mv.attn);
      for (let t = 0; t < T; t++) {
        const row = t * 3 * C;
        q.set(qkv.subarray(row, row + C), t * C);
        L.k.set(qkv.subarray(row + C, row + 2 * C), (start + t) * C);
        L.v.set(qkv.subarray(row + 2 * C, row + 3 * C), (start + t) * C);
      }
      be.attention(q.subarray(0, T * C), L.k.subarray(0, Tk * C), L.v.subarray(0, Tk * C), 1, T, Tk, NH, HS, true, scale,
        att.subarray(0, T * C), lse.subarray(0, T * NH));
      this.matmul(T, att, L.projW, L.projB, C, C, tmp, L.mv.proj);
      for (let i = 0; i < T * C; i++) x[i] += tmp[i];
      be.layerNorm(xs, L.ln2w, L.ln2b, T, C, 1e-5, hs, mean.subarray(0, T), rstd.subarray(0, T));
      this.matmul(T, hs, L.fcW, L.fcB, C, 4 * C, big, L.mv.fc);
      const bs = big.subarray(0, T * 4 * C);
      be.unary('gelu_tanh', bs, bs);
      this.matmul(T, bs, L.fc2W, L.fc2B, 4 * C, C, tmp, L.mv.fc2);
      for (let i = 0; i < T * C; i++) x[i] += tmp[i];
    }
    this.n += T;
    // Final norm and LM head on the last position only.
    const last = x.subarray((T - 1) * C, T * C);
    const hl = h.subarray(0, C);
    be.layerNorm(last, this.lnfW, this.lnfB, 1, C, 1e-5, hl, mean.subarray(0, 1), rstd.subarray(0, 1));
    if (this.mv) this.mv.run(this.headHandle, hl, this.logits);
    else be.gemm(false, true, 1, 1, this.vocabSize, C, 1, hl, 0, this.head, 0, 0, this.logits, 0);
    return this.logits;
  }
}

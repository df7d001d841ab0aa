// The one decoding loop. A BatchDecoder holds a KV cache with room for several sequences; each step samples
// the next token of every running sequence and runs one batched forward over all of them (iteration-level
// scheduling, as Orca and vLLM do), so sequences join and leave at step boundaries. `gpt.generate`,
// `kiln.infer.generate*`, the server, pre-training samples and fine-tuning scores all decode through it.
//
// Context policy: a prompt must fit in the model's context. When a sequence fills the context it finishes with
// 'length' (the token predicted from the last position is still emitted), or, with `slide`, runs its last
// `context` tokens again from an empty cache row: exactly what cropping the input and running the model again
// gives (nanoGPT's generate).

import { noGrad } from '../tensor/autograd.js';
import { allocationScopeOpen, recycle } from '../tensor/storage.js';
import { defaultGenerator, Generator as RandomGenerator } from '../tensor/random.js';
import { Tensor } from '../tensor/tensor.js';
import { checkSamplingOptions, Sampler, type SamplingOptions } from './sampling.js';

/** Why generation ended: a stop token or sequence ('stop'), or the token limit ('length'). */
export type FinishReason = 'stop' | 'length';

/** What decoding needs from a model: Kiln's GPT fits, and so does any model with this shape. */
export interface LanguageModel {
  readonly config: { readonly vocabSize: number; readonly context: number; readonly [key: string]: unknown };
  /** Logits (B, T, V) for token ids idx (B, T); with a cache, only the new tokens. */
  forward(idx: Tensor, targets?: Tensor | null, options?: { cache?: unknown; rows?: readonly number[]; lastOnly?: boolean }): { logits: Tensor };
  /** A KV cache with room for `batch` sequences; without it every step recomputes the whole sequence. */
  createCache?(batch: number): DecodingCache;
  /** Evaluation mode (dropout off) for decoding. */
  eval?(): unknown;
  /** Restores the training mode afterwards. */
  train?(mode?: boolean): unknown;
  training?: boolean;
  /**
   * True when forward under noGrad returns logits in a buffer nobody else holds (Kiln's models do): the loop then
   * hands that buffer back to the allocator once it has copied the logits, and the next step reuses it instead of
   * taking fresh memory every token.
   */
  readonly ownsForwardOutput?: boolean;
}

/** The part of a KV cache the loop manages: one length per row. */
export interface DecodingCache {
  readonly batch: number;
  readonly lengths: Int32Array;
}

/** How one sequence is decoded. Every field is optional; the defaults decode greedily for 64 tokens. */
export interface SequenceOptions extends SamplingOptions {
  /** Most tokens to add (default 64). Decoding also ends at an end-of-sequence id or a full context. */
  maxNewTokens?: number;
  /** Seed for a fresh random stream: the same seed, prompt and options give the same output. */
  seed?: number;
  /** A random stream to draw from instead of a seed (default: a fresh one from `seed`, else the global one). */
  generator?: RandomGenerator;
  /** Token ids that end the sequence and are not part of the output. Default none. */
  eosTokenIds?: readonly number[];
  /** At a full context, drop the oldest token and go on (nanoGPT's cropping) instead of finishing with 'length'. */
  slide?: boolean;
}

/** A sequence to start: its prompt and how to decode it. */
export interface StartRequest {
  prompt: readonly number[];
  options?: SequenceOptions;
}

/** One step's outcome for one sequence: a new token, or the end (id absent when an end-of-sequence id was drawn). */
export interface StepEvent {
  readonly sequence: Sequence;
  readonly id?: number;
  readonly finishReason?: FinishReason;
}

const DEFAULT_MAX_NEW_TOKENS = 64;

/** Checks the options shared by every generation entry point; throws one sentence naming the option. */
export function checkSequenceOptions(o: SequenceOptions): void {
  checkSamplingOptions(o);
  if (o.maxNewTokens !== undefined && !(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 0)) {
    throw new Error(`generate: maxNewTokens must be an integer >= 0, got ${JSON.stringify(o.maxNewTokens)}`);
  }
  if (o.seed !== undefined && !Number.isSafeInteger(o.seed)) throw new Error(`generate: seed must be an integer, got ${JSON.stringify(o.seed)}`);
  if (o.eosTokenIds !== undefined && (!Array.isArray(o.eosTokenIds) || o.eosTokenIds.some((id) => !Number.isInteger(id)))) {
    throw new Error('generate: eosTokenIds must be a list of integer token ids');
  }
}

/** A sequence being decoded: its tokens so far, and the logits its next token is drawn from. */
export class Sequence {
  /** Every token: the prompt, then what was generated. */
  readonly ids: number[];
  /** Tokens generated so far. */
  generated = 0;
  finishReason: FinishReason | null = null;
  /** Logits of the last position (vocabSize), filled by the last forward. */
  readonly logits: Float32Array;
  readonly sampler: Sampler;
  readonly maxNewTokens: number;
  readonly eos: ReadonlySet<number>;
  readonly slide: boolean;

  constructor(readonly row: number, prompt: readonly number[], vocabSize: number, options: SequenceOptions) {
    this.ids = [...prompt];
    this.logits = new Float32Array(vocabSize);
    const generator = options.generator ?? (options.seed !== undefined ? new RandomGenerator(options.seed) : defaultGenerator);
    this.sampler = new Sampler(vocabSize, options, generator);
    if (options.repetitionPenalty !== undefined && options.repetitionPenalty !== 1) this.sampler.observe(prompt);
    this.maxNewTokens = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
    this.eos = new Set(options.eosTokenIds ?? []);
    this.slide = options.slide ?? false;
  }

  /** Whether the sequence has finished (finishReason is set). */
  get done(): boolean { return this.finishReason !== null; }
}

/**
 * Decodes up to `capacity` sequences together over one KV cache.
 *
 * ```ts
 * const dec = new kiln.models.BatchDecoder(gpt, 4);
 * const a = dec.start(promptA, { maxNewTokens: 20 });
 * const b = dec.start(promptB, { temperature: 0.8, seed: 1 });
 * while (dec.running > 0) for (const e of dec.step()) if (e.id !== undefined) console.log(e.sequence.row, e.id);
 * ```
 */
export class BatchDecoder {
  private readonly cache: DecodingCache | null;
  private readonly sequences: (Sequence | null)[];
  readonly vocabSize: number;
  readonly context: number;

  /** `cache: false` recomputes every sequence in full at each step (what a KV cache saves; for comparison). */
  constructor(readonly model: LanguageModel, readonly capacity = 1, options: { cache?: boolean } = {}) {
    if (!Number.isInteger(capacity) || capacity <= 0) throw new Error(`BatchDecoder: capacity must be a positive integer, got ${capacity}`);
    this.vocabSize = model.config.vocabSize;
    this.context = model.config.context;
    const useCache = options.cache !== false && typeof model.createCache === 'function';
    this.cache = useCache ? model.createCache!(capacity) : null;
    this.sequences = new Array<Sequence | null>(capacity).fill(null);
  }

  /** Sequences still decoding. */
  get running(): number { return this.sequences.reduce((n, s) => n + (s && !s.done ? 1 : 0), 0); }

  /** Whether a new sequence can start now. */
  get hasRoom(): boolean { return this.freeRows > 0; }

  /** Rows a new sequence can start in now. */
  get freeRows(): number { return this.sequences.reduce((n, s) => n + (s === null || s.done ? 1 : 0), 0); }

  /** Drops every sequence (their rows become free). */
  clear(): void { this.sequences.fill(null); }

  /**
   * Starts a sequence: runs its prompt through the model (into a free cache row) and keeps the logits of its last
   * position. Throws when no row is free or the prompt is empty, too long or holds an id outside the vocabulary.
   */
  start(prompt: readonly number[], options: SequenceOptions = {}): Sequence {
    return this.startAll([{ prompt, options }])[0];
  }

  /**
   * Starts several sequences at once: prompts of the same length share one forward (a batched prefill), which
   * multiplies bigger matrices than one prompt at a time does. Throws on the first request it refuses (a bad prompt
   * or options, or no free row), before any forward, or when a forward fails; then none of them has started.
   */
  startAll(requests: readonly StartRequest[]): Sequence[] {
    const opened: Sequence[] = [];
    try {
      for (const r of requests) opened.push(this.open(r.prompt, r.options ?? {}));
      this.prefillGroups(opened);
    } catch (err) {
      this.release(opened);
      throw err;
    }
    return opened;
  }

  /**
   * startAll for requests that succeed or fail one by one: returns, in order, each request's sequence or the error
   * that refused it, and the others still start. Throws only when a forward fails, and then none of them has started.
   */
  startMany(requests: readonly StartRequest[]): (Sequence | Error)[] {
    const out = requests.map((r): Sequence | Error => {
      try {
        return this.open(r.prompt, r.options ?? {});
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err));
      }
    });
    const opened = out.filter((x): x is Sequence => x instanceof Sequence);
    try {
      this.prefillGroups(opened);
    } catch (err) {
      this.release(opened);
      throw err;
    }
    return out;
  }

  /** Frees the rows of sequences that did not start after all. */
  private release(seqs: readonly Sequence[]): void {
    for (const seq of seqs) if (this.sequences[seq.row] === seq) this.sequences[seq.row] = null;
  }

  /** Checks a prompt and its options and claims a free row for it (its logits come from prefillGroups). */
  private open(prompt: readonly number[], options: SequenceOptions): Sequence {
    checkSequenceOptions(options);
    if (!Array.isArray(prompt) || prompt.length === 0) throw new Error('generate: the prompt is empty; give at least one token');
    if (prompt.length > this.context) {
      throw new Error(`generate: the prompt has ${prompt.length} tokens but the model's context is ${this.context}; ` +
        `shorten it to at most ${this.context} tokens`);
    }
    for (const id of prompt) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new Error(`generate: token id ${id} is outside the vocabulary of ${this.vocabSize} tokens`);
      }
    }
    const row = this.sequences.findIndex((s) => s === null || s.done);
    if (row < 0) throw new Error(`BatchDecoder: all ${this.capacity} rows are decoding; wait for one to finish`);
    const seq = new Sequence(row, prompt, this.vocabSize, options);
    this.sequences[row] = seq;
    if (seq.maxNewTokens === 0) seq.finishReason = 'length';
    return seq;
  }

  /** Runs the prompts of new sequences: one forward for each prompt length (rows of a forward share a length). */
  private prefillGroups(seqs: readonly Sequence[]): void {
    const byLength = new Map<number, Sequence[]>();
    for (const seq of seqs) {
      if (seq.done) continue;
      const group = byLength.get(seq.ids.length);
      if (group) group.push(seq);
      else byLength.set(seq.ids.length, [seq]);
    }
    for (const group of byLength.values()) this.prefill(group, group.map((s) => s.ids));
  }

  /** Ends a sequence now (e.g. its client went away); its row is free at the next start. */
  cancel(seq: Sequence): void {
    if (!seq.done) seq.finishReason = 'stop';
  }

  /**
   * One decoding step: draws the next token of every running sequence, then runs one batched forward over those
   * that go on. Returns what happened to each sequence that was running.
   */
  step(): StepEvent[] {
    const events: StepEvent[] = [];
    const next: Sequence[] = [];
    for (const seq of this.sequences) {
      if (!seq || seq.done) continue;
      const id = seq.sampler.pick(seq.logits);
      if (seq.eos.has(id)) {
        seq.finishReason = 'stop';
        events.push({ sequence: seq, finishReason: 'stop' });
        continue;
      }
      seq.sampler.observe([id]);
      seq.ids.push(id);
      seq.generated++;
      const full = !seq.slide && seq.ids.length > this.context;
      if (seq.generated >= seq.maxNewTokens || full) {
        seq.finishReason = 'length';
        events.push({ sequence: seq, id, finishReason: 'length' });
        continue;
      }
      events.push({ sequence: seq, id });
      next.push(seq);
    }
    this.advance(next);
    return events;
  }

  /** Feeds each sequence's newest token: one batched forward for those with room, a re-prefill for the rest. */
  private advance(seqs: Sequence[]): void {
    const cache = this.cache;
    if (!cache) {
      for (const seq of seqs) this.prefill([seq], [seq.ids.slice(-this.context)]);
      return;
    }
    const batch: Sequence[] = [];
    for (const seq of seqs) {
      if (cache.lengths[seq.row] + 1 <= this.context) batch.push(seq);
      else this.prefill([seq], [seq.ids.slice(-this.context)]); // sliding: the last `context` tokens from scratch
    }
    if (batch.length === 0) return;
    const idx = new Tensor(Int32Array.from(batch, (s) => s.ids[s.ids.length - 1]), [batch.length, 1]);
    const logits = this.run(idx, batch.map((s) => s.row));
    const V = this.vocabSize;
    batch.forEach((s, a) => s.logits.set(logits.subarray(a * V, (a + 1) * V)));
    this.done(logits);
  }

  /** Runs ids[a] (one length) as the whole content of seqs[a]'s row (a prompt, or a cropped window); keeps the logits. */
  private prefill(seqs: readonly Sequence[], ids: readonly (readonly number[])[]): void {
    const T = ids[0].length;
    if (this.cache) for (const seq of seqs) this.cache.lengths[seq.row] = 0;
    const flat = new Int32Array(seqs.length * T);
    ids.forEach((row, a) => flat.set(row, a * T));
    const logits = this.run(new Tensor(flat, [seqs.length, T]), seqs.map((s) => s.row));
    const V = this.vocabSize;
    seqs.forEach((s, a) => s.logits.set(logits.subarray(a * V, (a + 1) * V)));
    this.done(logits);
  }

  /** The forward's logits, copied out: their buffer goes back to the allocator when the model gave it away. */
  private done(logits: Float32Array): void {
    if (this.model.ownsForwardOutput === true && !allocationScopeOpen()) recycle(logits);
  }

  /** The model's last-position logits (A, V) for idx (A, T) continuing the given cache rows. */
  private run(idx: Tensor, rows: number[]): Float32Array {
    const model = this.model;
    const wasTraining = model.training === true;
    if (wasTraining) model.eval?.();
    try {
      const out = noGrad(() => model.forward(idx, null, this.cache ? { cache: this.cache, rows, lastOnly: true } : { lastOnly: true }));
      return out.logits.storage as Float32Array;
    } finally {
      if (wasTraining) model.train?.(true);
    }
  }
}

// A decoder's cache is the biggest thing it holds (layers x 2 x rows x context x width floats) and fresh memory
// is slow: keep a few per model and capacity for the next call.
const pool = new WeakMap<LanguageModel, Map<string, BatchDecoder[]>>();

/** A decoder for `capacity` sequences from the model's pool (empty), and the function that gives it back. */
export function acquireDecoder(model: LanguageModel, capacity = 1, options: { cache?: boolean } = {}): {
  /** The decoder to run. */
  decoder: BatchDecoder;
  /** Hands the decoder (and its cache) back for the next call. */
  release: () => void;
} {
  const key = `${capacity}:${options.cache !== false}`;
  let byKey = pool.get(model);
  if (!byKey) pool.set(model, (byKey = new Map()));
  const free = byKey.get(key) ?? [];
  byKey.set(key, free);
  const decoder = free.pop() ?? new BatchDecoder(model, capacity, options);
  decoder.clear();
  return { decoder, release: () => { if (free.length < 2) free.push(decoder); } };
}

/**
 * The token-level loop for one sequence: yields each new token id until an end-of-sequence id, maxNewTokens or a
 * full context, and returns why it stopped. `signal` ends it early ('stop'), checked before each token.
 */
export function* generateTokens(model: LanguageModel, promptIds: readonly number[],
  options: SequenceOptions & { cache?: boolean; signal?: AbortSignal } = {}): Generator<number, FinishReason> {
  const { decoder, release } = acquireDecoder(model, 1, { cache: options.cache });
  try {
    const seq = decoder.start(promptIds, options);
    while (!seq.done) {
      if (options.signal?.aborted) return 'stop';
      const [e] = decoder.step();
      if (e.id !== undefined) yield e.id;
    }
    return seq.finishReason ?? 'length';
  } finally {
    release();
  }
}

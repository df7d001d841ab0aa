// Continuous batching for the server: every request in flight decodes together in one BatchDecoder (the one
// decoding loop, models/generate.ts), one batched forward per step. Requests join at step boundaries while rows
// are free and leave as soon as they finish, stop or are cancelled (iteration-level scheduling, as Orca and vLLM
// do). Each request keeps its own sampling options and random stream, so a seeded or greedy request gives the
// same tokens whatever else is decoding beside it. Past `maxBatch` rows, requests wait in a bounded FIFO queue;
// beyond that, submit() refuses with QueueFullError. The event loop runs between steps, so streams flush and new
// requests arrive while others decode.

import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { BatchDecoder, type LanguageModel, type Sequence } from '../models/generate.js';
import { checkGenerateOptions, TextStreamer, type FinishReason, type GenerateOptions } from './generate.js';

/** Thrown by submit() when every row is decoding and the queue is full. */
export class QueueFullError extends Error {}

/** Options of the batched decoder the server runs requests through. */
export interface BatcherOptions {
  /** Sequences decoded together (default: 16, fewer when the KV cache would pass 512 MiB). */
  maxBatch?: number;
  /** Requests that may wait for a free row (default 256); past that, submit() throws QueueFullError. */
  maxWaiting?: number;
  /**
   * How long one turn of the event loop may keep decoding, in milliseconds (default 4): steps run back to back
   * until then, or until a request waits for a row. 0 runs one step per turn.
   */
  stepBudgetMs?: number;
}

/** One piece of a request's output: new text, and the token it came from (absent on the text left at the end). */
export interface BatchChunk {
  text: string;
  id?: number;
}

/** A finished request. */
export interface BatchResult {
  text: string;
  /** Generated tokens that are part of the output (a token that completed a stop sequence is not). */
  completionTokens: number;
  finishReason: FinishReason;
}

/** What a request asks for: its prompt, sampling options, and optionally a chunk callback and a signal. */
export interface BatchRequest {
  promptIds: readonly number[];
  options?: Omit<GenerateOptions, 'cache' | 'tokenizer' | 'signal' | 'generator'>;
  /** Called with each piece of text as soon as its step ends (streaming). */
  onChunk?: (chunk: BatchChunk) => void;
  /** Aborting ends the request at the next step boundary with finishReason 'stop', and frees its row. */
  signal?: AbortSignal;
}

interface Entry {
  request: BatchRequest;
  streamer: TextStreamer;
  seq: Sequence | null;
  tokens: number;
  resolve: (r: BatchResult) => void;
  reject: (err: Error) => void;
  onAbort: () => void;
}

const CACHE_BUDGET_BYTES = 512 * 1024 * 1024;

/** The default batch: 16 rows, or as many as keep the KV cache (layers x 2 x rows x context x width floats) in budget. */
export function defaultMaxBatch(config: { [key: string]: unknown; context: number }): number {
  const layers = Number(config.layers ?? 1);
  const width = Number(config.width ?? 1);
  const perRow = layers * 2 * config.context * width * 4;
  return Math.max(1, Math.min(16, Math.floor(CACHE_BUDGET_BYTES / (perRow || 1))));
}

/**
 * Decodes concurrent requests together.
 *
 * @example
 * ```ts
 * const batcher = new kiln.infer.Batcher(gpt, tok, { maxBatch: 8 });
 * const [a, b] = await Promise.all([
 *   batcher.submit({ promptIds: tok.encode('Once'), options: { maxNewTokens: 20 } }),
 *   batcher.submit({ promptIds: tok.encode('The'), options: { temperature: 0.8, seed: 1 } }),
 * ]);
 * ```
 */
export class Batcher {
  readonly maxBatch: number;
  readonly maxWaiting: number;
  readonly stepBudgetMs: number;
  private readonly decoder: BatchDecoder;
  private readonly waiting: Entry[] = [];
  private readonly active = new Map<Sequence, Entry>();
  private scheduled = false;
  private readonly defaultEos: number[];
  /** Batched forward steps run so far (for the health route and tests). */
  steps = 0;
  /** The most sequences one step has decoded together. */
  peakBatch = 0;

  constructor(readonly model: LanguageModel, readonly tokenizer: Tokenizer, options: BatcherOptions = {}) {
    this.maxBatch = options.maxBatch ?? defaultMaxBatch(model.config);
    this.maxWaiting = options.maxWaiting ?? 256;
    this.stepBudgetMs = options.stepBudgetMs ?? 4;
    if (!(this.stepBudgetMs >= 0 && Number.isFinite(this.stepBudgetMs))) {
      throw new Error(`Batcher: stepBudgetMs must be a finite number >= 0, got ${this.stepBudgetMs}`);
    }
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new Error(`Batcher: maxBatch must be an integer >= 1, got ${this.maxBatch}`);
    if (!Number.isInteger(this.maxWaiting) || this.maxWaiting < 0) throw new Error(`Batcher: maxWaiting must be an integer >= 0, got ${this.maxWaiting}`);
    this.decoder = new BatchDecoder(model, this.maxBatch);
    const eos = tokenizer.specialTokens().get('<|endoftext|>');
    this.defaultEos = eos === undefined ? [] : [eos];
  }

  /** Requests decoding now. */
  get running(): number { return this.active.size; }

  /** Requests waiting for a row. */
  get pending(): number { return this.waiting.length; }

  /**
   * Queues a request; resolves when it finishes. Throws QueueFullError (synchronously) when every row is busy
   * and the queue is full, and a 'generate: ...' error for bad options.
   */
  submit(request: BatchRequest): Promise<BatchResult> {
    checkGenerateOptions({ ...request.options });
    if (this.active.size + this.waiting.length >= this.maxBatch + this.maxWaiting) {
      throw new QueueFullError(`the server is busy: ${this.maxBatch + this.maxWaiting} requests are in flight, as many as it ` +
        `takes (a batch of ${this.maxBatch} decoding together and a queue of ${this.maxWaiting}); retry later`);
    }
    return new Promise<BatchResult>((resolve, reject) => {
      const entry: Entry = {
        request, streamer: new TextStreamer(this.tokenizer, request.options?.stop ?? []), seq: null, tokens: 0, resolve, reject,
        onAbort: () => this.wake(),
      };
      if (request.signal?.aborted) {
        resolve({ text: '', completionTokens: 0, finishReason: 'stop' });
        return;
      }
      request.signal?.addEventListener('abort', entry.onAbort, { once: true });
      this.waiting.push(entry);
      this.wake();
    });
  }

  /** Schedules a step on the event loop, once. */
  private wake(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.tick();
    });
  }

  /**
   * One scheduling round: drop cancelled requests, admit waiting ones into free rows, run batched steps for up to
   * stepBudgetMs while no request waits for a row. A turn of the event loop per step cost a lone stream about a
   * third of its speed (the loop's own work, and the kernel threads falling asleep between steps); new requests,
   * cancellations and stream writes still go through at least every few milliseconds.
   */
  private tick(): void {
    try {
      this.dropCancelled();
      this.admit();
      const t0 = performance.now();
      while (this.active.size > 0) {
        this.step();
        if (this.waiting.length > 0 || performance.now() - t0 >= this.stepBudgetMs) break;
      }
    } catch (err) {
      // A failed forward leaves the batch in an unknown state: fail everything in it and start clean.
      for (const e of [...this.active.values()]) this.finish(e, null, err as Error);
      this.decoder.clear();
    }
    if (this.active.size > 0 || this.waiting.length > 0) this.wake();
  }

  private dropCancelled(): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      if (this.waiting[i].request.signal?.aborted) this.finish(this.waiting.splice(i, 1)[0], 'stop');
    }
    for (const e of [...this.active.values()]) if (e.request.signal?.aborted) this.finish(e, 'stop');
  }

  /** Moves waiting requests into free rows; their prompts run together (one forward per prompt length). */
  private admit(): void {
    const entries = this.waiting.splice(0, this.decoder.freeRows);
    if (entries.length === 0) return;
    let started: (Sequence | Error)[];
    try {
      started = this.decoder.startMany(entries.map((e) => {
        const o = e.request.options ?? {};
        return { prompt: e.request.promptIds, options: { ...o, eosTokenIds: o.eosTokenIds ?? this.defaultEos, slide: false } };
      }));
    } catch (err) {
      for (const e of entries) this.finish(e, null, err as Error);
      throw err;
    }
    entries.forEach((e, i) => {
      const seq = started[i];
      if (seq instanceof Error) {
        this.finish(e, null, seq);
        return;
      }
      e.seq = seq;
      this.active.set(seq, e);
      if (seq.done) this.finish(e, seq.finishReason ?? 'length'); // maxNewTokens 0
    });
  }

  private step(): void {
    this.peakBatch = Math.max(this.peakBatch, this.active.size);
    this.steps++;
    for (const ev of this.decoder.step()) {
      const e = this.active.get(ev.sequence);
      if (!e) continue;
      try {
        this.deliver(e, ev.id, ev.finishReason);
      } catch (err) {
        // A callback that throws fails its own request only.
        if (this.active.has(ev.sequence)) this.finish(e, null, err as Error);
      }
    }
  }

  /** Passes one step's token to its request: text to the callback, and the end when it came. */
  private deliver(e: Entry, id: number | undefined, finishReason: FinishReason | undefined): void {
    if (id !== undefined) {
      const text = e.streamer.push(id);
      if (e.streamer.stopped) {
        if (text) e.request.onChunk?.({ text });
        this.finish(e, 'stop');
        return;
      }
      e.tokens++;
      if (text || !finishReason) e.request.onChunk?.({ text, id });
    }
    if (finishReason) this.finish(e, finishReason);
  }

  /** Ends a request: frees its row, sends the rest of its text, settles its promise. */
  private finish(e: Entry, reason: FinishReason | null, err?: Error): void {
    if (e.seq) {
      this.decoder.cancel(e.seq);
      this.active.delete(e.seq);
    }
    e.request.signal?.removeEventListener('abort', e.onAbort);
    if (err || reason === null) {
      e.reject(err ?? new Error('generation failed'));
      return;
    }
    const rest = e.streamer.stopped ? '' : e.streamer.flush();
    try {
      if (rest) e.request.onChunk?.({ text: rest });
    } finally {
      e.resolve({ text: e.streamer.text, completionTokens: e.tokens, finishReason: reason });
    }
  }
}

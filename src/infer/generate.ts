// Text generation: a KV-cached decoding loop with seeded sampling, end-of-text and stop sequences, as token ids
// (generate), as text (generateText) and as a stream of text pieces (streamGenerate).
//
// Context policy: the prompt must fit in the model's context (else an error says so); generation stops with
// finishReason 'length' once the context is full (the token predicted from the last position is still
// emitted, so prompt + output is at most context + 1 tokens). Nothing slides.

import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { defaultGenerator, Generator as RandomGenerator } from '../tensor/random.js';
import { createDecoder, type Decoder, type DecoderEngine, type LanguageModel } from './decoder.js';
import { checkSamplingOptions, Sampler, type SamplingOptions } from './sampling.js';

export type FinishReason = 'stop' | 'length';

/** Options of every generation function. All are optional; the defaults decode greedily for 64 tokens. */
export interface GenerateOptions extends SamplingOptions {
  /** Most tokens to add (default 64). Generation also ends at end-of-text, a stop sequence or a full context. */
  maxNewTokens?: number;
  /** Seed for a fresh random stream: the same seed, prompt and options give the same output. */
  seed?: number;
  /** A random stream to draw from instead of a seed (default: a fresh one from `seed`, else the global one). */
  generator?: RandomGenerator;
  /** Strings that end generation; the text stops just before the first one (needs a tokenizer for id APIs). */
  stop?: readonly string[];
  /**
   * Token ids that end generation and are not part of the output. Default: the tokenizer's <|endoftext|> when
   * a tokenizer is known; [] disables.
   */
  eosTokenIds?: readonly number[];
  /** The KV cache (default true); false recomputes the whole sequence for every token (for comparison). */
  cache?: boolean;
  /**
   * Which decoding path: 'auto' (default: the lean GPT path when the model is a float32 GPT-2, else its own
   * forward), 'fast' (the lean path or an error), 'module' (the model's own forward), 'recompute' (the model's
   * own forward without a cache).
   */
  engine?: DecoderEngine;
  /** Needed by `generate` for stop sequences and the default end-of-text id. */
  tokenizer?: Tokenizer;
  /** Stops early (finishReason 'stop') when aborted; checked before each token. */
  signal?: AbortSignal;
}

/** A finished generation. */
export interface GenerationResult {
  /** The new text (stop sequences and end-of-text excluded). */
  text: string;
  /** The new token ids. */
  ids: number[];
  finishReason: FinishReason;
  promptTokens: number;
}

/** One piece of a streamed generation. */
export interface StreamChunk {
  /** New text since the previous chunk (may be '' while a multi-byte character or a possible stop is pending). */
  text: string;
  /** The token this chunk follows from, absent on the closing chunk. */
  id?: number;
  /** Set on the last chunk only. */
  finishReason?: FinishReason;
}

const DEFAULT_MAX_NEW_TOKENS = 64;

function checkOptions(o: GenerateOptions): void {
  checkSamplingOptions(o);
  if (o.maxNewTokens !== undefined && !(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 0)) {
    throw new Error(`generate: maxNewTokens must be an integer >= 0, got ${JSON.stringify(o.maxNewTokens)}`);
  }
  if (o.seed !== undefined && !Number.isSafeInteger(o.seed)) throw new Error(`generate: seed must be an integer, got ${JSON.stringify(o.seed)}`);
  if (o.stop !== undefined && (!Array.isArray(o.stop) || o.stop.some((s) => typeof s !== 'string' || s.length === 0))) {
    throw new Error('generate: stop must be a list of non-empty strings');
  }
}

// Decoders keep big buffers (and a copy of the weights for the mat-vec kernel): reuse one per model and engine.
const pool = new WeakMap<object, Map<string, Decoder[]>>();

function acquire(model: LanguageModel, o: GenerateOptions): { decoder: Decoder; release: () => void } {
  const key = `${o.cache === false ? 'nocache:' : ''}${o.engine ?? 'auto'}`;
  let byKey = pool.get(model);
  if (!byKey) pool.set(model, (byKey = new Map()));
  const free = byKey.get(key) ?? [];
  byKey.set(key, free);
  const reused = free.pop();
  const decoder = reused ?? createDecoder(model, { engine: o.engine, cache: o.cache }); // a new one starts empty
  if (reused) decoder.reset();
  return { decoder, release: () => { if (free.length < 2) free.push(decoder); } };
}

/**
 * The token-level loop: yields each new token id until end-of-text, maxNewTokens or a full context, and returns
 * why it stopped. The lowest layer; generate, generateText and streamGenerate are built on it.
 */
export function* generateTokens(model: LanguageModel, promptIds: readonly number[], options: GenerateOptions = {}): Generator<number, FinishReason> {
  checkOptions(options);
  const maxNew = options.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  const context = model.config.context;
  if (!Array.isArray(promptIds) || promptIds.length === 0) throw new Error('generate: the prompt is empty; give at least one token');
  if (promptIds.length > context) {
    throw new Error(`generate: the prompt has ${promptIds.length} tokens but the model's context is ${context}; ` +
      `shorten it to at most ${context} tokens`);
  }
  const eos = new Set(options.eosTokenIds ?? defaultEos(options.tokenizer));
  const gen = options.generator ?? (options.seed !== undefined ? new RandomGenerator(options.seed) : defaultGenerator);
  const sampler = new Sampler(model.config.vocabSize, options, gen);
  if (options.repetitionPenalty !== undefined && options.repetitionPenalty !== 1) sampler.observe(promptIds);
  if (maxNew === 0) return 'length';
  const { decoder, release } = acquire(model, options);
  const wasTraining = model.training;
  model.eval?.();
  try {
    let logits = decoder.feed(promptIds);
    for (let step = 0; ; step++) {
      if (options.signal?.aborted) return 'stop';
      const id = sampler.pick(logits);
      if (eos.has(id)) return 'stop';
      sampler.observe([id]);
      yield id;
      if (step + 1 >= maxNew || decoder.length >= context) return 'length';
      logits = decoder.feed([id]);
    }
  } finally {
    release();
    if (wasTraining && typeof (model as { train?: (m: boolean) => unknown }).train === 'function') {
      (model as unknown as { train(m: boolean): unknown }).train(true);
    }
  }
}

function defaultEos(tokenizer?: Tokenizer): number[] {
  const id = tokenizer?.specialTokens().get('<|endoftext|>');
  return id === undefined ? [] : [id];
}

/**
 * Turns token ids into text as they come: decodes the whole generated suffix each time (so characters split
 * across tokens come out whole), holds back an incomplete character and any tail that could begin a stop
 * sequence, and cuts the text before the first stop sequence.
 */
export class TextStreamer {
  private ids: number[] = [];
  private emitted = 0;
  private readonly maxStop: number;
  /** Set once a stop sequence appeared. */
  stopped = false;

  constructor(private readonly tokenizer: Tokenizer, private readonly stops: readonly string[] = []) {
    this.maxStop = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** The full text so far (up to a stop sequence, when one appeared). */
  text = '';

  /** Adds a token; returns the new text that is safe to show (possibly ''). */
  push(id: number): string {
    this.ids.push(id);
    let full = this.tokenizer.decode(this.ids);
    // Stop sequences: search only where a new match can be (the tail that changed).
    if (this.stops.length) {
      const from = Math.max(0, this.emitted - this.maxStop);
      let cut = -1;
      for (const s of this.stops) {
        const i = full.indexOf(s, from);
        if (i >= 0 && (cut < 0 || i < cut)) cut = i;
      }
      if (cut >= 0) {
        this.stopped = true;
        full = full.slice(0, cut);
        return this.emit(full, full.length);
      }
    }
    let stable = full.length;
    while (stable > this.emitted && full.charCodeAt(stable - 1) === 0xfffd) stable--;
    if (this.stops.length) stable -= this.heldForStop(full, stable);
    return this.emit(full, Math.max(stable, this.emitted));
  }

  /** Everything not yet shown (the end of generation). */
  flush(): string {
    if (this.stopped) return '';
    const full = this.tokenizer.decode(this.ids);
    return this.emit(full, full.length);
  }

  private emit(full: string, upTo: number): string {
    const out = full.slice(this.emitted, upTo);
    this.emitted = upTo;
    this.text = full.slice(0, upTo);
    return out;
  }

  /** Length of the longest tail of full[0, end) that is a proper prefix of a stop sequence. */
  private heldForStop(full: string, end: number): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, end - this.emitted); n > best; n--) {
        if (full.startsWith(s.slice(0, n), end - n)) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}

/**
 * New token ids for a prompt of ids (the prompt is not repeated). With `tokenizer` and `stop`, generation ends
 * at the token that completes a stop sequence, and that token is left out.
 *
 * @example
 * ```ts
 * const ids = kiln.infer.generate(gpt, tok.encode('Once upon'), { maxNewTokens: 20, temperature: 0.8, seed: 1 });
 * tok.decode(ids);
 * ```
 */
export function generate(model: LanguageModel, promptIds: readonly number[], options: GenerateOptions = {}): number[] {
  const out: number[] = [];
  const streamer = options.tokenizer && options.stop?.length ? new TextStreamer(options.tokenizer, options.stop) : null;
  for (const id of generateTokens(model, promptIds, options)) {
    if (streamer) {
      streamer.push(id);
      if (streamer.stopped) break;
    }
    out.push(id);
  }
  return out;
}

function promptIdsOf(tokenizer: Tokenizer, prompt: string | readonly number[]): number[] {
  if (typeof prompt === 'string') return tokenizer.encode(prompt);
  if (Array.isArray(prompt)) return [...prompt];
  throw new Error(`generate: the prompt must be a string or a list of token ids, got ${typeof prompt}`);
}

/**
 * Generates text for a prompt (text or ids) in one call.
 * `kiln.infer.generateText(gpt, tok, 'Once upon a time', { maxNewTokens: 50, stop: ['\n\n'] }).text`
 */
export function generateText(model: LanguageModel, tokenizer: Tokenizer, prompt: string | readonly number[],
  options: GenerateOptions = {}): GenerationResult {
  const promptIds = promptIdsOf(tokenizer, prompt);
  const streamer = new TextStreamer(tokenizer, options.stop ?? []);
  const ids: number[] = [];
  const it = generateTokens(model, promptIds, { ...options, tokenizer });
  let finishReason: FinishReason = 'length';
  for (;;) {
    const r = it.next();
    if (r.done) {
      finishReason = r.value;
      streamer.flush();
      break;
    }
    streamer.push(r.value);
    if (streamer.stopped) {
      finishReason = 'stop';
      it.return('stop');
      break;
    }
    ids.push(r.value);
  }
  return { text: streamer.text, ids, finishReason, promptTokens: promptIds.length };
}

/**
 * Streams a generation as text pieces, one per token (the event loop runs between tokens, so a server stays
 * responsive); the last chunk carries finishReason. Stop sequences never reach the stream, not even in part.
 *
 * @example
 * ```ts
 * for await (const chunk of kiln.infer.streamGenerate(gpt, tok, 'Once upon a time', { maxNewTokens: 40 })) {
 *   process.stdout.write(chunk.text);
 * }
 * ```
 */
export async function* streamGenerate(model: LanguageModel, tokenizer: Tokenizer, prompt: string | readonly number[],
  options: GenerateOptions = {}): AsyncGenerator<StreamChunk, void> {
  const promptIds = promptIdsOf(tokenizer, prompt);
  const streamer = new TextStreamer(tokenizer, options.stop ?? []);
  const it = generateTokens(model, promptIds, { ...options, tokenizer });
  try {
    for (;;) {
      const r = it.next();
      if (r.done) {
        yield { text: streamer.flush(), finishReason: r.value };
        return;
      }
      const text = streamer.push(r.value);
      if (streamer.stopped) {
        yield { text, finishReason: 'stop' };
        return;
      }
      yield { text, id: r.value };
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    it.return('stop');
  }
}

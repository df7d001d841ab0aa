// Text generation over the one decoding loop (models/generate.ts): token ids (generate), text (generateText) and
// a stream of text pieces (streamGenerate), with end-of-text, stop sequences and incremental detokenisation.
//
// Context policy: the prompt must fit in the model's context (else an error says so); generation stops with
// finishReason 'length' once the context is full (the token predicted from the last position is still
// emitted, so prompt + output is at most context + 1 tokens). Nothing slides.

import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { checkSequenceOptions, generateTokens as decodeTokens, type FinishReason, type LanguageModel, type SequenceOptions } from '../models/generate.js';

export type { FinishReason, LanguageModel };

/** Options of every generation function. All are optional; the defaults decode greedily for 64 tokens. */
export interface GenerateOptions extends Omit<SequenceOptions, 'slide'> {
  /** Strings that end generation; the text stops just before the first one (needs a tokenizer for id APIs). */
  stop?: readonly string[];
  /**
   * Token ids that end generation and are not part of the output. Default: the tokenizer's <|endoftext|> when
   * a tokenizer is known; [] disables.
   */
  eosTokenIds?: readonly number[];
  /** The KV cache (default true); false recomputes the whole sequence for every token (for comparison). */
  cache?: boolean;
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

/** Checks generation options; throws one sentence naming the option at fault. */
export function checkGenerateOptions(o: GenerateOptions): void {
  checkSequenceOptions(o);
  if (o.stop !== undefined && (!Array.isArray(o.stop) || o.stop.some((s) => typeof s !== 'string' || s.length === 0))) {
    throw new Error('generate: stop must be a list of non-empty strings');
  }
}

/**
 * The token-level loop: yields each new token id until end-of-text, maxNewTokens or a full context, and returns
 * why it stopped. generate, generateText and streamGenerate are built on it; it runs models/generate.ts's loop.
 */
export function* generateTokens(model: LanguageModel, promptIds: readonly number[], options: GenerateOptions = {}): Generator<number, FinishReason> {
  checkGenerateOptions(options);
  const eosTokenIds = options.eosTokenIds ?? defaultEos(options.tokenizer);
  return yield* decodeTokens(model, promptIds, { ...options, eosTokenIds, slide: false });
}

function defaultEos(tokenizer?: Tokenizer): number[] {
  const id = tokenizer?.specialTokens().get('<|endoftext|>');
  return id === undefined ? [] : [id];
}

/**
 * Turns token ids into text as they come, at constant cost per token: it decodes only the last few tokens (from
 * a prefix offset a little behind the newest, as vLLM's incremental detokeniser does, so decoders that treat a
 * sequence's first token specially still see context), holds back an incomplete character and any tail that
 * could begin a stop sequence, and cuts the text before the first stop sequence.
 */
export class TextStreamer {
  private ids: number[] = [];
  private prefixOffset = 0; // decoding starts here
  private readOffset = 0; // text of ids before this is already in `decoded`
  private decoded = ''; // text of ids[0, readOffset)
  private emitted = 0; // characters of `decoded` (plus pending) shown so far
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
    const tail = this.pending(); // first: it may commit text to `decoded`
    let full = this.decoded + tail;
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
    const tail = this.pending();
    const full = this.decoded + tail;
    return this.emit(full, full.length);
  }

  /**
   * Text of the tokens after readOffset, decoded with the few tokens before them as context; once it ends in a
   * whole character it is committed to `decoded` and the offsets move up.
   */
  private pending(): string {
    const before = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const after = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    if (!after.startsWith(before)) return after.slice(Math.min(before.length, after.length)); // decoder changed its mind
    const delta = after.slice(before.length);
    if (delta.length > 0 && delta.charCodeAt(delta.length - 1) !== 0xfffd) {
      this.decoded += delta;
      this.readOffset = this.ids.length;
      this.prefixOffset = Math.max(this.prefixOffset, this.readOffset - PREFIX_TOKENS);
      return '';
    }
    return delta;
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

/** Tokens of context kept before the newest when detokenising incrementally. */
const PREFIX_TOKENS = 5;

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
      await yieldToHost();
    }
  } finally {
    it.return('stop');
  }
}

/** Lets other work run between streamed tokens: setImmediate in Node, a message round trip in a browser. */
function yieldToHost(): Promise<void> {
  if (typeof setImmediate === 'function') return new Promise<void>((resolve) => setImmediate(resolve));
  return new Promise<void>((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => { ch.port1.close(); resolve(); };
    ch.port2.postMessage(0);
  });
}

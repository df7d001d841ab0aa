// The contract every Kiln tokenizer keeps (byte-level BPE, GPT-2, characters, any tokenizer.json),
// and the Hugging Face tokenizer.json shapes Kiln reads and writes.

/** Options for {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /**
   * Whether special-token strings in the text ("<|endoftext|>") become their special ids (true, the default,
   * as Hugging Face does) or are encoded as ordinary text (false: what a corpus of untrusted text wants).
   */
  allowSpecial?: boolean;
}

/** A text-to-ids mapping with a fixed vocabulary plus special tokens. */
export interface Tokenizer {
  /** 'byte-bpe', 'gpt2', 'char' or 'hf' (any tokenizer.json, through @huggingface/tokenizers). */
  readonly kind: string;
  /** Number of ids, special tokens included: every id is in [0, vocabSize). */
  readonly vocabSize: number;
  /** Text to token ids. */
  encode(text: string, options?: EncodeOptions): number[];
  /** Token ids back to text. Decoding a whole encoded sequence gives back the text exactly. */
  decode(ids: ArrayLike<number>): string;
  /** Special tokens by content, with their ids. */
  specialTokens(): Map<string, number>;
  /**
   * Adds special tokens (chat markers such as "<|im_start|>") and returns their ids, in order. A token that
   * already exists keeps its id. New ids are appended at the end, so vocabSize grows.
   */
  addSpecialTokens(tokens: readonly string[]): number[];
  /** The id of a token (special or ordinary, in tokenizer.json spelling), or undefined. */
  tokenToId(token: string): number | undefined;
  /** The tokenizer as a Hugging Face tokenizer.json object. */
  toJSON(): HfTokenizerJson;
  /** Writes tokenizer.json atomically (temporary name, fsync, rename). */
  save(path: string): void;
}

/** One entry of tokenizer.json's `added_tokens`. */
export interface HfAddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** The parts of a Hugging Face tokenizer.json that Kiln reads and writes (other keys pass through). */
export interface HfTokenizerJson {
  version: string;
  truncation: unknown;
  padding: unknown;
  added_tokens: HfAddedToken[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  post_processor: unknown;
  decoder: unknown;
  model: {
    type: string;
    vocab: Record<string, number>;
    merges?: (string | [string, string])[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** An added_tokens entry for a special token, with the flags Hugging Face gives GPT-2's <|endoftext|>. */
export function specialAddedToken(id: number, content: string): HfAddedToken {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** A regex matching any of the given special tokens, longest first, or null for none. */
export function specialTokenRegex(tokens: Iterable<string>): RegExp | null {
  const list = [...tokens].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
  if (list.length === 0) return null;
  return new RegExp(list.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gu');
}

/**
 * Calls `ordinary` on each stretch of text between special tokens and `special` on each special token, in
 * order. With `re` null the whole text is ordinary.
 */
export function splitOnSpecial(
  text: string,
  re: RegExp | null,
  ordinary: (part: string) => void,
  special: (token: string) => void,
): void {
  if (re === null) {
    if (text.length > 0) ordinary(text);
    return;
  }
  re.lastIndex = 0;
  let last = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m.index > last) ordinary(text.slice(last, m.index));
    special(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) ordinary(text.slice(last));
}

/** Checks that a list of special tokens is a list of non-empty strings. */
export function checkSpecialTokens(tokens: readonly string[], what: string): void {
  if (!Array.isArray(tokens)) throw new Error(`${what}: expected an array of strings, found ${typeof tokens}.`);
  for (const t of tokens) {
    if (typeof t !== 'string' || t.length === 0) {
      throw new Error(`${what}: expected non-empty strings, found ${JSON.stringify(t)}.`);
    }
  }
}

/** Checks that every id is an integer in [0, vocabSize). */
export function checkIds(ids: ArrayLike<number>, vocabSize: number, what: string): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new Error(`${what}: token id at position ${i} must be an integer in [0, ${vocabSize}), found ${id}.`);
    }
  }
}

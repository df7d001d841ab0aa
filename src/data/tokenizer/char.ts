// A character-level tokenizer for tiny demos: one id per Unicode code point seen in the training text.
// Its tokenizer.json is a BPE model with no merges and a Fuse decoder, which Hugging Face reads as-is.

import { fileAccess } from '../../io/files.js';
import { readTokenizerJson } from './bpe.js';
import {
  checkIds,
  checkSpecialTokens,
  specialAddedToken,
  specialTokenRegex,
  splitOnSpecial,
  type EncodeOptions,
  type HfTokenizerJson,
  type Tokenizer,
} from './tokenizer.js';

/**
 * One token per character (Unicode code point), ids in code-point order, special tokens after. Encoding a
 * character the tokenizer never saw is an error that names it.
 *
 * @example
 * ```ts
 * const tok = CharTokenizer.fromText('hello world');
 * tok.vocabSize; // 9 ('d', 'e', 'h', 'l', 'o', 'r', 'w', ' ' and <|endoftext|>)
 * tok.decode(tok.encode('hold')); // 'hold'
 * ```
 */
export class CharTokenizer implements Tokenizer {
  readonly kind = 'char';
  private chars: string[];
  private ids = new Map<string, number>();
  private special = new Map<string, number>();
  private specialById = new Map<number, string>();
  private specialRe: RegExp | null = null;
  private size: number;

  /** Builds from a list of characters (ids in that order) and special tokens with their ids. */
  constructor(chars: readonly string[], special: readonly [string, number][] = []) {
    this.chars = chars.slice();
    this.chars.forEach((c, i) => {
      if ([...c].length !== 1) throw new Error(`CharTokenizer: expected single characters, found ${JSON.stringify(c)} at id ${i}.`);
      if (this.ids.has(c)) throw new Error(`CharTokenizer: character ${JSON.stringify(c)} appears twice.`);
      this.ids.set(c, i);
    });
    this.size = this.chars.length;
    for (const [t, id] of special) this.setSpecial(t, id);
  }

  /** Collects the characters of the text (a string or documents); special tokens take the next ids. */
  static fromText(text: string | Iterable<string>, options: { specialTokens?: readonly string[] } = {}): CharTokenizer {
    const set = new Set<string>();
    for (const doc of typeof text === 'string' ? [text] : text) for (const c of doc) set.add(c);
    if (set.size === 0) throw new Error('CharTokenizer.fromText: expected some text, found none.');
    const chars = [...set].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
    const special = options.specialTokens ?? ['<|endoftext|>'];
    checkSpecialTokens(special, 'CharTokenizer specialTokens');
    return new CharTokenizer(
      chars,
      special.map((t, i) => [t, chars.length + i]),
    );
  }

  get vocabSize(): number {
    return this.size;
  }

  private setSpecial(content: string, id: number): void {
    this.special.set(content, id);
    this.specialById.set(id, content);
    this.size = Math.max(this.size, id + 1);
    this.specialRe = specialTokenRegex(this.special.keys());
  }

  specialTokens(): Map<string, number> {
    return new Map(this.special);
  }

  addSpecialTokens(tokens: readonly string[]): number[] {
    checkSpecialTokens(tokens, 'addSpecialTokens');
    return tokens.map((t) => {
      const have = this.special.get(t);
      if (have !== undefined) return have;
      const id = this.size;
      this.setSpecial(t, id);
      return id;
    });
  }

  tokenToId(token: string): number | undefined {
    return this.special.get(token) ?? this.ids.get(token);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    let offset = 0;
    splitOnSpecial(
      text,
      options.allowSpecial === false ? null : this.specialRe,
      (part) => {
        for (const c of part) {
          const id = this.ids.get(c);
          if (id === undefined) {
            const cp = c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
            throw new Error(
              `CharTokenizer.encode: expected characters of its ${this.chars.length}-character vocabulary, found ${JSON.stringify(c)} (U+${cp}) at offset ${offset}.`,
            );
          }
          out.push(id);
          offset += c.length;
        }
      },
      (tok) => {
        out.push(this.special.get(tok)!);
        offset += tok.length;
      },
    );
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    checkIds(ids, this.size, 'decode');
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const t = this.specialById.get(id) ?? this.chars[id];
      if (t === undefined) throw new Error(`decode: token id ${id} at position ${i} is not in the vocabulary.`);
      s += t;
    }
    return s;
  }

  toJSON(): HfTokenizerJson {
    const vocab: Record<string, number> = {};
    this.chars.forEach((c, i) => (vocab[c] = i));
    for (const [t, id] of this.special) if (vocab[t] === undefined) vocab[t] = id;
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [...this.special].sort((a, b) => a[1] - b[1]).map(([t, id]) => specialAddedToken(id, t)),
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: { type: 'Fuse' },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: [],
      },
    };
  }

  save(path: string): void {
    fileAccess('CharTokenizer.save').writeFileAtomic(path, JSON.stringify(this.toJSON()));
  }

  /** Reads a tokenizer.json written by save(). */
  static load(path: string): CharTokenizer {
    return CharTokenizer.fromJSON(readTokenizerJson(path), path);
  }

  /** Whether a tokenizer.json has the shape {@link CharTokenizer.toJSON} writes. */
  static matches(json: HfTokenizerJson): boolean {
    const d = json.decoder as { type?: string } | null;
    return (
      json.model.type === 'BPE' &&
      (json.model.merges ?? []).length === 0 &&
      (json.pre_tokenizer ?? null) === null &&
      (json.normalizer ?? null) === null &&
      d?.type === 'Fuse'
    );
  }

  /** Builds the tokenizer from a parsed tokenizer.json (Hugging Face format). */
  static fromJSON(json: HfTokenizerJson, what = 'tokenizer.json'): CharTokenizer {
    if (!CharTokenizer.matches(json)) {
      throw new Error(`${what}: expected a character tokenizer (BPE without merges or pre-tokenizer, Fuse decoder), found another kind.`);
    }
    const added = new Set(json.added_tokens.map((t) => t.id));
    const chars: string[] = [];
    for (const [c, id] of Object.entries(json.model.vocab)) if (!added.has(id)) chars[id] = c;
    for (let i = 0; i < chars.length; i++) {
      if (chars[i] === undefined) throw new Error(`${what}: expected character ids 0..n-1 without gaps, found none at id ${i}.`);
    }
    return new CharTokenizer(
      chars,
      json.added_tokens.map((t) => [t.content, t.id]),
    );
  }
}

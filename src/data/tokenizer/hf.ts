// Any Hugging Face tokenizer.json (Llama, Mistral, BERT, ...), loaded and run by the @huggingface/tokenizers
// library behind Kiln's Tokenizer interface. Kiln's own tokenizers are checked against this library.

import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { fileAccess } from '../../io/files.js';
import { readTokenizerJson } from './bpe.js';
import { checkIds, checkSpecialTokens, specialAddedToken, type EncodeOptions, type HfTokenizerJson, type Tokenizer } from './tokenizer.js';

/**
 * A tokenizer.json run by the @huggingface/tokenizers library (pure JavaScript, offline). Special tokens in
 * the text are recognised by default; with `allowSpecial: false` they are encoded as ordinary text (what
 * transformers' `split_special_tokens=True` does), by a second library instance built without them.
 *
 * @example
 * ```ts
 * const tok = new HfTokenizer(JSON.parse(readFileSync('tokenizer.json', 'utf8')));
 * tok.decode(tok.encode('Hello')); // 'Hello'
 * ```
 */
export class HfTokenizer implements Tokenizer {
  readonly kind = 'hf';
  private json: HfTokenizerJson;
  private config: Record<string, unknown>;
  private lib: HfLibTokenizer;
  /** The same tokenizer without its special added tokens, built on first use by encode(allowSpecial: false). */
  private plainLib: HfLibTokenizer | null = null;
  private size = 0;
  private what: string;

  /**
   * @param json a parsed tokenizer.json
   * @param config the model's tokenizer_config.json, when there is one (it holds decode-time settings)
   * @param what how errors name the file
   */
  constructor(json: HfTokenizerJson, config: Record<string, unknown> = {}, what = 'tokenizer.json') {
    this.json = structuredClone(json);
    this.config = { ...config };
    this.what = what;
    this.lib = this.build();
  }

  private build(): HfLibTokenizer {
    const lib = this.libFor(this.json);
    this.plainLib = null;
    let max = -1;
    for (const id of lib.get_vocab(true).values()) max = Math.max(max, id);
    this.size = max + 1;
    return lib;
  }

  private libFor(json: HfTokenizerJson): HfLibTokenizer {
    try {
      return new HfLibTokenizer(json, { clean_up_tokenization_spaces: false, ...this.config });
    } catch (err) {
      throw new Error(`${this.what}: expected a file @huggingface/tokenizers can load, found an error (${(err as Error).message}).`);
    }
  }

  get vocabSize(): number {
    return this.size;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    // The library has no switch for special tokens: a copy whose added_tokens leave them out encodes them as text.
    const lib = options.allowSpecial === false
      ? (this.plainLib ??= this.libFor({ ...this.json, added_tokens: this.json.added_tokens.filter((t) => !t.special) }))
      : this.lib;
    let ids: number[];
    try {
      ids = lib.encode(text, { add_special_tokens: false }).ids;
    } catch (err) {
      throw new Error(`${this.what}: @huggingface/tokenizers could not encode the text with this file (${(err as Error).message}).`);
    }
    // A file whose vocabulary has no token for some text (and no unk_token) gives holes instead of ids.
    const bad = ids.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= this.size);
    if (bad >= 0) throw new Error(`${this.what}: the text has no token in this file's vocabulary at token ${bad} (found ${String(ids[bad])}), and no unk_token stands in.`);
    return ids;
  }

  decode(ids: ArrayLike<number>): string {
    checkIds(ids, this.size, 'decode');
    if (ids.length === 0) return ''; // the library refuses an empty list; no tokens are no text
    try {
      return this.lib.decode(Array.from(ids), { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    } catch (err) {
      throw new Error(`${this.what}: @huggingface/tokenizers could not decode with this file (${(err as Error).message}).`);
    }
  }

  specialTokens(): Map<string, number> {
    return new Map(this.json.added_tokens.filter((t) => t.special).map((t) => [t.content, t.id]));
  }

  addSpecialTokens(tokens: readonly string[]): number[] {
    checkSpecialTokens(tokens, 'addSpecialTokens');
    const ids = tokens.map((t) => {
      const have = this.tokenToId(t);
      if (have !== undefined) return have;
      const id = this.size++;
      this.json.added_tokens.push(specialAddedToken(id, t));
      return id;
    });
    this.lib = this.build();
    return ids;
  }

  tokenToId(token: string): number | undefined {
    return this.lib.token_to_id(token);
  }

  toJSON(): HfTokenizerJson {
    return structuredClone(this.json);
  }

  save(path: string): void {
    fileAccess('HfTokenizer.save').writeFileAtomic(path, JSON.stringify(this.json));
  }

  /** Reads a tokenizer.json file (and, optionally, its tokenizer_config.json contents). */
  static load(path: string, config: Record<string, unknown> = {}): HfTokenizer {
    return new HfTokenizer(readTokenizerJson(path), config, `Tokenizer file ${path}`);
  }
}

// Loads any tokenizer.json into the Tokenizer that runs it best: Kiln's own encoder for the shapes Kiln
// writes (byte-level BPE, characters), the @huggingface/tokenizers library for everything else.

import { ByteLevelBPE, byteLevelMismatch, checkTokenizerJson, readTokenizerJson } from './bpe.js';
import { CharTokenizer } from './char.js';
import { GPT2_EOT, GPT2_EOT_ID } from './gpt2.js';
import { HfTokenizer } from './hf.js';
import type { HfTokenizerJson, Tokenizer } from './tokenizer.js';

/** Options for {@link loadTokenizer}. */
export interface LoadTokenizerOptions {
  /**
   * 'auto' (default): Kiln's encoder when the file is a byte-level BPE or character tokenizer, else the
   * library; 'hf': always @huggingface/tokenizers; 'kiln': Kiln's encoder or an error.
   */
  engine?: 'auto' | 'hf' | 'kiln';
  /** tokenizer_config.json contents, passed to the library. */
  config?: Record<string, unknown>;
}

/**
 * Loads a tokenizer.json (a path, or the parsed object). Files Kiln writes come back as the class that wrote
 * them, and encode exactly as Hugging Face does (the tests hold them against @huggingface/tokenizers).
 *
 * @example
 * ```ts
 * const tok = loadTokenizer('runs/gpt/tokenizer.json');
 * tok.decode(tok.encode('any text')); // 'any text'
 * ```
 */
export function loadTokenizer(pathOrJson: string | HfTokenizerJson, options: LoadTokenizerOptions = {}): Tokenizer {
  const what = typeof pathOrJson === 'string' ? `Tokenizer file ${pathOrJson}` : 'tokenizer.json object';
  const json = typeof pathOrJson === 'string' ? readTokenizerJson(pathOrJson) : checkTokenizerJson(pathOrJson, what);
  const engine = options.engine ?? 'auto';
  if (engine !== 'auto' && engine !== 'hf' && engine !== 'kiln') {
    throw new Error(`loadTokenizer engine: expected 'auto', 'hf' or 'kiln', found ${JSON.stringify(engine)}.`);
  }
  if (engine !== 'hf') {
    if (byteLevelMismatch(json) === null) {
      const v = json.model.vocab;
      const isGpt2 = Object.keys(v).length === 50257 && json.model.merges?.length === 50000 && v[GPT2_EOT] === GPT2_EOT_ID && v['Ġthe'] === 262;
      return ByteLevelBPE.fromJSON(json, what, isGpt2 ? 'gpt2' : undefined);
    }
    if (CharTokenizer.matches(json)) return CharTokenizer.fromJSON(json, what);
    if (engine === 'kiln') {
      throw new Error(`${what}: expected a byte-level BPE or character tokenizer for Kiln's encoder, found ${byteLevelMismatch(json)}.`);
    }
  }
  return new HfTokenizer(json, options.config, what);
}

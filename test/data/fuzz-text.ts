// Seeded random text for tokenizer tests: ASCII words, Latin-1, CJK, emoji (astral), combining marks,
// digits, contractions and many kinds of white space. Not a test file itself.

import { Generator } from '../../src/tensor/random.js';

const PIECES = [
  'the', ' cat', "'s", "'ll", "n't", ' 42', '3.14', '\n', '\n\n', '  ', '\t', ' ', '\r\n', '!!', '?', '...', '"', '(', ')',
  'é', 'ß', 'ñ', 'Ω', 'Ж', 'ש', 'ع', '中文', '日本語', '한국어', 'ไทย', '😀', '👩‍💻', '🇫🇷', '𝔘𝔫𝔦', 'e\u0301', '\u00a0', '\u2028', '\u3000',
  '\u2003', '½', '٣', '〇', '\u200b', '\u00ad', '\u0000', '\u007f', '\uffff', '\u{10ffff}', '<|endoftext|>', '<|im_start|>',
];

/** Characters where @huggingface/tokenizers and js-tiktoken (JavaScript `\s`) split differently from Rust. */
export const JS_WHITESPACE_QUIRKS = ['\u0085', '\ufeff'];

/** A random string of `pieces` pieces; `extra` adds more pieces to draw from, `raw` adds random code points. */
export function fuzzText(rng: Generator, pieces: number, options: { extra?: string[]; raw?: boolean } = {}): string {
  const pool = [...PIECES, ...(options.extra ?? [])];
  let s = '';
  for (let i = 0; i < pieces; i++) {
    if (options.raw && rng.int(0, 4) === 0) {
      let cp = rng.int(0, 0x110000);
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41; // no lone surrogates: not representable in UTF-8
      s += String.fromCodePoint(cp);
    } else s += pool[rng.int(0, pool.length)];
  }
  return s;
}

// GPT-2's byte-level pieces: the byte-to-printable-character table and the pre-tokenization regex.
// Shared by the BPE trainer, the BPE encoder and the tokenizer.json writer, so all three agree byte for byte.

/**
 * GPT-2's reversible map from the 256 byte values to printable Unicode characters (Hugging Face's
 * `bytes_to_unicode`): printable Latin-1 bytes map to themselves, the rest to U+0100 upwards.
 * A byte-level token's string in tokenizer.json is its bytes through this table ("Ġ" is a space).
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const out = new Array<string>(256);
  for (const b of bs) out[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (out[b] === undefined) out[b] = String.fromCharCode(256 + n++);
  }
  return out;
})();

/** The inverse of {@link BYTE_TO_CHAR}: char code to byte value, -1 for characters outside the table. */
const CHAR_TO_BYTE: Int16Array = (() => {
  const t = new Int16Array(512).fill(-1);
  BYTE_TO_CHAR.forEach((c, b) => (t[c.charCodeAt(0)] = b));
  return t;
})();

/** A byte string as GPT-2's printable characters ("hi there" bytes -> "hiĠthere"). */
export function bytesToTokenString(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]!];
  return s;
}

/** The bytes behind a byte-level token string, or null when a character is outside GPT-2's table. */
export function tokenStringToBytes(token: string): Uint8Array | null {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    const b = c < 512 ? CHAR_TO_BYTE[c]! : -1;
    if (b < 0) return null;
    out[i] = b;
  }
  return out;
}

/**
 * The pre-tokenization pattern of GPT-2 and of Hugging Face's `ByteLevel` pre-tokenizer, as the Rust
 * library reads it (Oniguruma): `\s` there is Unicode White_Space, which JavaScript's `\s` is not (JS adds
 * U+FEFF and lacks U+0085), so the class is spelled out with `\p{White_Space}`.
 *
 * Known differences, checked by hand against the Rust `tokenizers` 0.23.2 (npm `tokenizers`) on the whole
 * Brown corpus plus 2,000 random strings: identical ids, except where the text holds letters added in
 * Unicode 16-17 (for example U+16EB2, U+32FDC): Node 20's ICU calls them `\p{L}`, Oniguruma's older tables
 * do not, so the pieces around them differ. @huggingface/tokenizers and js-tiktoken use JavaScript's `\s`
 * as is, so on U+0085 and U+FEFF they may split differently from Rust and from Kiln.
 */
export const GPT2_SPLIT_PATTERN =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** {@link GPT2_SPLIT_PATTERN} compiled for JavaScript with Oniguruma's meaning of `\s`. */
export function gpt2SplitRegex(): RegExp {
  const js = GPT2_SPLIT_PATTERN.replaceAll('\\s', '\\p{White_Space}').replaceAll('\\S', '\\P{White_Space}');
  return new RegExp(js, 'gu');
}

/** Splits text into GPT-2 pre-tokens ("Hello world!" -> ["Hello", " world", "!"]). */
export function preTokenize(text: string, re: RegExp = gpt2SplitRegex()): string[] {
  return text.match(re) ?? [];
}

const utf8 = new TextEncoder();

/** UTF-8 bytes of a string (lone surrogates become U+FFFD, as in every UTF-8 encoder). */
export function utf8Bytes(text: string): Uint8Array {
  return utf8.encode(text);
}

// Strict UTF-8: decoding that refuses bad bytes and says where, for text files and byte-level tokenizers.

/**
 * The offset of the first byte that does not begin a well-formed UTF-8 sequence (overlong forms,
 * surrogates and code points above U+10FFFF count as malformed), or -1 when all of `bytes` from `from` on
 * is well-formed.
 */
export function firstInvalidUtf8(bytes: Uint8Array, from = 0): number {
  const n = bytes.length;
  let i = from;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    if (i + need >= n) return i;
    const c1 = bytes[i + 1]!;
    if (c1 < lo || c1 > hi) return i;
    for (let k = 2; k <= need; k++) {
      const c = bytes[i + k]!;
      if (c < 0x80 || c > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

const fatal = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes UTF-8 bytes, or throws one sentence naming `what` and the offset of the first bad byte.
 * A leading byte-order mark is dropped.
 */
export function decodeUtf8Strict(bytes: Uint8Array, what: string): string {
  try {
    return fatal.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const shown = at >= 0 ? `byte 0x${bytes[at]!.toString(16).padStart(2, '0')} at offset ${at}` : 'a malformed sequence';
    throw new Error(`${what} is not valid UTF-8 text: expected UTF-8, found ${shown}.`);
  }
}

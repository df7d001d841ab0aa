// The GPT-2 tokenizer (50,257 tokens), offline: its byte order and merge list ship in gpt2-table.ts (267 KB,
// made from the ranks in js-tiktoken by tools/gpt2/make-table.ts), so the same ByteLevelBPE encoder and
// tokenizer.json writer serve it without the 22 MB js-tiktoken package.

import { bytesToTokenString } from './byte-level.js';
import { GPT2_TABLE_BASE64 } from './gpt2-table.js';
import { fromBase64 } from './ranks.js';
import { ByteLevelBPE } from './bpe.js';

let gpt2Parts: { tokens: string[]; merges: [number, number][] } | null = null;

/** GPT-2's end-of-text token and its id. */
export const GPT2_EOT = '<|endoftext|>';
export const GPT2_EOT_ID = 50256;

/** GPT-2's merges (merge i makes token 256 + i) and the bytes of each of its 50,256 ranked tokens. */
function gpt2Table(): { ranks: Uint8Array[]; merges: [number, number][] } {
  const bytes = fromBase64(GPT2_TABLE_BASE64);
  const ranks: Uint8Array[] = [];
  for (let r = 0; r < 256; r++) ranks.push(bytes.subarray(r, r + 1));
  const merges: [number, number][] = [];
  for (let o = 256; o < bytes.length; o += 4) {
    const a = bytes[o]! | (bytes[o + 1]! << 8);
    const b = bytes[o + 2]! | (bytes[o + 3]! << 8);
    const joined = new Uint8Array(ranks[a]!.length + ranks[b]!.length);
    joined.set(ranks[a]!);
    joined.set(ranks[b]!, ranks[a]!.length);
    ranks.push(joined);
    merges.push([a, b]);
  }
  return { ranks, merges };
}

/** The raw GPT-2 ranks: token bytes by rank (rank = id), 50,256 of them (<|endoftext|> is not ranked). */
export function gpt2RankBytes(): Uint8Array[] {
  return gpt2Table().ranks;
}

/**
 * The GPT-2 tokenizer: 50,257 tokens (50,000 merges over 256 bytes, then <|endoftext|> = 50256), from
 * the table shipped in Kiln (gpt2-table.ts), so it needs no network and no other package. It encodes exactly as
 * OpenAI's tiktoken and Hugging Face's `gpt2` tokenizer.json do; `toJSON()` writes that tokenizer.json.
 *
 * @example
 * ```ts
 * const tok = gpt2Tokenizer();
 * tok.encode('Hello world'); // [15496, 995]
 * ```
 */
export function gpt2Tokenizer(): ByteLevelBPE {
  if (gpt2Parts === null) {
    const { ranks, merges } = gpt2Table();
    gpt2Parts = { tokens: ranks.map((b) => bytesToTokenString(b)), merges };
  }
  // A fresh tokenizer each call (addSpecialTokens changes it); the rebuilt merge list is computed once.
  return new ByteLevelBPE({ ...gpt2Parts, special: [[GPT2_EOT, GPT2_EOT_ID]], kind: 'gpt2' });
}

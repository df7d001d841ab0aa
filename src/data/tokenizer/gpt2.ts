// The GPT-2 tokenizer (50,257 tokens), offline: its ranks ship inside the npm package js-tiktoken, and Kiln
// rebuilds GPT-2's merge list from them so the same ByteLevelBPE encoder and tokenizer.json writer serve it.

import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { bytesToTokenString } from './byte-level.js';
import { ByteLevelBPE } from './bpe.js';

let gpt2Parts: { tokens: string[]; merges: [number, number][] } | null = null;

/** GPT-2's end-of-text token and its id. */
export const GPT2_EOT = '<|endoftext|>';
export const GPT2_EOT_ID = 50256;

/** Base64 to bytes with atob, which browsers and Node both have (Buffer is Node's only). */
function base64Bytes(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The raw GPT-2 ranks: token bytes by rank (rank = id), from js-tiktoken's shipped table. */
export function gpt2RankBytes(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const line of gpt2Ranks.bpe_ranks.split('\n')) {
    if (line === '') continue;
    const [, offsetStr, ...tokens] = line.split(' ');
    const offset = Number.parseInt(offsetStr!, 10);
    tokens.forEach((t, i) => (out[offset + i] = base64Bytes(t)));
  }
  return out;
}

/**
 * Recovers a BPE merge list from tiktoken-style ranks: the merge that makes token r is the last step of
 * encoding r's bytes with the ranks below r (the method of tiktoken's data_gym conversion).
 */
export function mergesFromRanks(ranks: Uint8Array[]): [number, number][] {
  const rankOf = new Map<string, number>();
  ranks.forEach((b, r) => rankOf.set(String.fromCharCode(...b), r));
  const merges: [number, number][] = [];
  for (let r = 0; r < ranks.length; r++) {
    const bytes = ranks[r]!;
    if (bytes.length < 2) continue;
    let parts = Array.from(bytes, (b) => String.fromCharCode(b));
    while (parts.length > 2) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const k = rankOf.get(parts[i]! + parts[i + 1]!);
        if (k !== undefined && k < r && k < bestRank) {
          bestRank = k;
          best = i;
        }
      }
      if (best < 0) break;
      parts = [...parts.slice(0, best), parts[best]! + parts[best + 1]!, ...parts.slice(best + 2)];
    }
    if (parts.length !== 2) throw new Error(`GPT-2 ranks: token ${r} cannot be built from two lower-ranked tokens.`);
    merges.push([rankOf.get(parts[0]!)!, rankOf.get(parts[1]!)!]);
  }
  return merges;
}

/**
 * The GPT-2 tokenizer: 50,257 tokens (50,000 merges over 256 bytes, then <|endoftext|> = 50256), from
 * the ranks shipped in the npm package js-tiktoken, so it needs no network. It encodes exactly as
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
    const ranks = gpt2RankBytes();
    gpt2Parts = { tokens: ranks.map((b) => bytesToTokenString(b)), merges: mergesFromRanks(ranks) };
  }
  // A fresh tokenizer each call (addSpecialTokens changes it); the rebuilt merge list is computed once.
  return new ByteLevelBPE({ ...gpt2Parts, special: [[GPT2_EOT, GPT2_EOT_ID]], kind: 'gpt2' });
}

// tiktoken-style ranks (token bytes by rank) and the BPE merge list they imply; tools/gpt2/make-table.ts turns
// js-tiktoken's GPT-2 ranks into Kiln's compact table with these, and the tests check that table against them.

/** Bytes of base64 text, with the global atob (Node 16+ and browsers) rather than Node's Buffer. */
export function fromBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Token bytes by rank from a tiktoken ranks file in js-tiktoken's compact form (lines of
 * `! <first rank> <base64 token> <base64 token> ...`); tools/gpt2/make-table.ts and the tests read js-tiktoken's with it.
 */
export function ranksFromTiktoken(bpeRanks: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const line of bpeRanks.split('\n')) {
    if (line === '') continue;
    const [, offsetStr, ...tokens] = line.split(' ');
    const offset = Number.parseInt(offsetStr!, 10);
    tokens.forEach((t, i) => (out[offset + i] = fromBase64(t)));
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
    if (parts.length !== 2) throw new Error(`tiktoken ranks: token ${r} cannot be built from two lower-ranked tokens.`);
    merges.push([rankOf.get(parts[0]!)!, rankOf.get(parts[1]!)!]);
  }
  return merges;
}

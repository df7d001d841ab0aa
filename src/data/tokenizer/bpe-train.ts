// Trains a byte-level BPE: count GPT-2 pre-tokens once, then merge the most frequent adjacent pair
// again and again, updating pair counts only in the words that hold the merged pair.

import { BYTE_TO_CHAR, gpt2SplitRegex, utf8Bytes } from './byte-level.js';
import { ByteLevelBPE } from './bpe.js';
import { checkSpecialTokens } from './tokenizer.js';

/** Options for {@link trainByteLevelBPE}. */
export interface TrainBpeOptions {
  /** Vocabulary size to reach, counting the 256 byte tokens and the special tokens. */
  vocabSize: number;
  /** Special tokens, given the last ids in order (default: ["<|endoftext|>"]). */
  specialTokens?: readonly string[];
  /** A pair seen fewer times than this is never merged, so training may stop short of vocabSize (default 2). */
  minFrequency?: number;
  /** Called now and then with the number of merges done and the target. */
  onProgress?: (done: number, total: number) => void;
}

const pairKey = (a: number, b: number): number => a * 0x200000 + b;
const pairA = (k: number): number => Math.floor(k / 0x200000);
const pairB = (k: number): number => k % 0x200000;

/**
 * Trains a GPT-2 style byte-level BPE on documents. Ids 0-255 are the bytes, then one id per merge in the
 * order learned, then the special tokens. Ties between equally frequent pairs go to the pair of smaller
 * ids, so the same corpus and options always give the same tokenizer.
 *
 * @example
 * ```ts
 * const tok = trainByteLevelBPE(brownCorpus().map((d) => d.text), { vocabSize: 8192 });
 * tok.encode('The jury said'); // a few ids
 * ```
 */
export function trainByteLevelBPE(documents: Iterable<string>, options: TrainBpeOptions): ByteLevelBPE {
  const special = options.specialTokens ?? ['<|endoftext|>'];
  checkSpecialTokens(special, 'trainByteLevelBPE specialTokens');
  if (new Set(special).size !== special.length) {
    throw new Error(`trainByteLevelBPE specialTokens: expected distinct tokens, found a repeat in ${JSON.stringify(special)}.`);
  }
  const minVocab = 256 + special.length;
  const { vocabSize } = options;
  if (!Number.isInteger(vocabSize) || vocabSize < minVocab) {
    throw new Error(
      `trainByteLevelBPE vocabSize: expected an integer of at least ${minVocab} (the 256-byte alphabet plus ${special.length} special tokens), found ${vocabSize}.`,
    );
  }
  if (vocabSize >= 0x200000) throw new Error(`trainByteLevelBPE vocabSize: expected at most ${0x200000 - 1}, found ${vocabSize}.`);
  const minFreq = options.minFrequency ?? 2;

  // 1. Word frequencies over GPT-2 pre-tokens (special-token strings in the text are ordinary text here).
  const counts = new Map<string, number>();
  const re = gpt2SplitRegex();
  let docs = 0;
  let chars = 0;
  for (const doc of documents) {
    if (typeof doc !== 'string') throw new Error(`trainByteLevelBPE documents: expected strings, found ${typeof doc} at document ${docs}.`);
    docs++;
    chars += doc.length;
    re.lastIndex = 0;
    for (let m = re.exec(doc); m !== null; m = re.exec(doc)) {
      const w = m[0];
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  if (chars === 0) {
    throw new Error(`trainByteLevelBPE documents: expected some text to train on, found ${docs} documents with no characters.`);
  }

  // 2. Words as symbol arrays, and counts of every adjacent pair with the words that hold it.
  const nWords = counts.size;
  const words: Int32Array[] = new Array(nWords);
  const lens = new Int32Array(nWords);
  const freq = new Float64Array(nWords);
  let wi = 0;
  for (const [w, c] of counts) {
    const b = utf8Bytes(w);
    words[wi] = Int32Array.from(b);
    lens[wi] = b.length;
    freq[wi] = c;
    wi++;
  }
  counts.clear();
  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>();
  for (let w = 0; w < nWords; w++) {
    const s = words[w]!;
    const f = freq[w]!;
    for (let i = 0; i + 1 < lens[w]!; i++) {
      const k = pairKey(s[i]!, s[i + 1]!);
      pairCount.set(k, (pairCount.get(k) ?? 0) + f);
      const list = where.get(k);
      if (list === undefined) where.set(k, [w]);
      else if (list[list.length - 1] !== w) list.push(w);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  // 3. Merge the best pair until the vocabulary is full or no pair is frequent enough.
  const tokens: string[] = BYTE_TO_CHAR.slice();
  const merges: [number, number][] = [];
  const target = vocabSize - special.length - 256;
  const seen = new Int32Array(nWords).fill(-1);
  const changed = new Set<number>();
  while (merges.length < target && heap.size > 0) {
    const [count, key] = heap.pop();
    const current = pairCount.get(key) ?? 0;
    if (current !== count) continue; // stale entry; the current count is in the heap too
    if (count < minFreq) break;
    const a = pairA(key);
    const b = pairB(key);
    const z = tokens.length;
    tokens.push(tokens[a]! + tokens[b]!);
    merges.push([a, b]);
    const stamp = merges.length;
    changed.clear();
    for (const w of where.get(key) ?? []) {
      if (seen[w] === stamp) continue;
      seen[w] = stamp;
      const s = words[w]!;
      const n = lens[w]!;
      let has = false;
      for (let i = 0; i + 1 < n; i++) {
        if (s[i] === a && s[i + 1] === b) {
          has = true;
          break;
        }
      }
      if (!has) continue;
      const f = freq[w]!;
      for (let i = 0; i + 1 < n; i++) {
        const k = pairKey(s[i]!, s[i + 1]!);
        pairCount.set(k, pairCount.get(k)! - f);
        changed.add(k);
      }
      let m = 0;
      for (let i = 0; i < n; i++) {
        if (i + 1 < n && s[i] === a && s[i + 1] === b) {
          s[m++] = z;
          i++;
        } else s[m++] = s[i]!;
      }
      lens[w] = m;
      for (let i = 0; i + 1 < m; i++) {
        const k = pairKey(s[i]!, s[i + 1]!);
        pairCount.set(k, (pairCount.get(k) ?? 0) + f);
        changed.add(k);
        if (s[i] === z || s[i + 1] === z) {
          const list = where.get(k);
          if (list === undefined) where.set(k, [w]);
          else if (list[list.length - 1] !== w) list.push(w);
        }
      }
    }
    where.delete(key);
    for (const k of changed) {
      const c = pairCount.get(k)!;
      if (c <= 0) {
        pairCount.delete(k);
        continue;
      }
      heap.push(c, k);
    }
    if (options.onProgress && merges.length % 256 === 0) options.onProgress(merges.length, target);
  }
  options.onProgress?.(merges.length, target);
  const specialPairs: [string, number][] = special.map((t, i) => [t, tokens.length + i]);
  return new ByteLevelBPE({ tokens, merges, special: specialPairs });
}

/** A max-heap of (count, pair key): higher count first, then smaller key (smaller ids) first. */
class PairHeap {
  private c: number[] = [];
  private k: number[] = [];

  get size(): number {
    return this.c.length;
  }

  private better(i: number, j: number): boolean {
    const ci = this.c[i]!;
    const cj = this.c[j]!;
    return ci > cj || (ci === cj && this.k[i]! < this.k[j]!);
  }

  private swap(i: number, j: number): void {
    const tc = this.c[i]!;
    this.c[i] = this.c[j]!;
    this.c[j] = tc;
    const tk = this.k[i]!;
    this.k[i] = this.k[j]!;
    this.k[j] = tk;
  }

  push(count: number, key: number): void {
    this.c.push(count);
    this.k.push(key);
    let i = this.c.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.better(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): [number, number] {
    const top: [number, number] = [this.c[0]!, this.k[0]!];
    const lastC = this.c.pop()!;
    const lastK = this.k.pop()!;
    const n = this.c.length;
    if (n > 0) {
      this.c[0] = lastC;
      this.k[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < n && this.better(l, best)) best = l;
        if (r < n && this.better(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

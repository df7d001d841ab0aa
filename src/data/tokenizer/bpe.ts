// Byte-level BPE (GPT-2 style): encode, decode, add special tokens, and read/write Hugging Face
// tokenizer.json. Training lives in bpe-train.ts; both share the byte table and regex in byte-level.ts.

import { fileAccess } from '../../io/files.js';
import { decodeUtf8Strict, firstInvalidUtf8 } from '../text/utf8.js';
import { BYTE_TO_CHAR, gpt2SplitRegex, tokenStringToBytes, utf8Bytes } from './byte-level.js';
import {
  checkIds,
  checkSpecialTokens,
  specialAddedToken,
  specialTokenRegex,
  splitOnSpecial,
  type EncodeOptions,
  type HfAddedToken,
  type HfTokenizerJson,
  type Tokenizer,
} from './tokenizer.js';

/** Pair key of two ids (ids stay below 2^21, so the key is an exact double). */
const pairKey = (a: number, b: number): number => a * 0x200000 + b;
const MAX_ID = 0x200000;
const CACHE_LIMIT = 200_000;
/** Words longer than this many bytes are merged with a heap instead of repeated scans. */
const LONG_WORD = 48;

/** The model half of a byte-level BPE: tokens as byte strings plus ranked merges. */
export interface BpeModelParts {
  /** Token strings in GPT-2's byte-to-character spelling, by id (undefined for unused ids). */
  tokens: (string | undefined)[];
  /** Merges in rank order, as pairs of ids; each result is the token spelled by the concatenation. */
  merges: [number, number][];
  /** Special tokens with their ids (ids may lie inside or after `tokens`). */
  special: [string, number][];
  /** Hugging Face's `ignore_merges`: a pre-token that is already a whole token skips the merges. */
  ignoreMerges?: boolean;
  /** The tokenizer's `kind` (default 'byte-bpe'; 'gpt2' for GPT-2's own). */
  kind?: string;
}

/**
 * A byte-level BPE tokenizer in the style of GPT-2: text is split with GPT-2's regex, each piece is
 * taken as UTF-8 bytes, and ranked merges join bytes into tokens. Any text (and, through
 * {@link ByteLevelBPE.encodeBytes}, any byte string) encodes and decodes losslessly.
 *
 * @example
 * ```ts
 * const tok = trainByteLevelBPE(['the cat sat on the mat'], { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
 * const ids = tok.encode('the cat');
 * tok.decode(ids); // 'the cat'
 * tok.save('run/tokenizer.json');
 * ```
 */
export class ByteLevelBPE implements Tokenizer {
  readonly kind: string;
  private tokenStr: (string | undefined)[];
  private tokenBytes: (Uint8Array | undefined)[];
  private vocab = new Map<string, number>();
  private byteIds = new Int32Array(256);
  private mergeRank = new Map<number, number>();
  private mergeList: [number, number][];
  private mergeOut: Int32Array;
  private special = new Map<string, number>();
  private specialRe: RegExp | null = null;
  private ignoreMerges: boolean;
  private splitRe = gpt2SplitRegex();
  private cache = new Map<string, number[]>();
  private size = 0;

  constructor(parts: BpeModelParts) {
    this.kind = parts.kind ?? 'byte-bpe';
    this.tokenStr = parts.tokens.slice();
    this.tokenBytes = new Array(this.tokenStr.length);
    this.ignoreMerges = parts.ignoreMerges ?? false;
    this.byteIds.fill(-1);
    this.tokenStr.forEach((s, id) => {
      if (s === undefined) return;
      if (id >= MAX_ID) throw new Error(`Byte-level BPE: token ids must stay below ${MAX_ID}, found ${id}.`);
      const bytes = tokenStringToBytes(s);
      if (bytes === null || bytes.length === 0) {
        throw new Error(
          `Byte-level BPE vocabulary: token ${id} must be spelled in GPT-2's byte alphabet, found ${JSON.stringify(s)}.`,
        );
      }
      if (this.vocab.has(s)) throw new Error(`Byte-level BPE vocabulary: token ${JSON.stringify(s)} appears twice (ids ${this.vocab.get(s)} and ${id}).`);
      this.vocab.set(s, id);
      this.tokenBytes[id] = bytes;
      if (bytes.length === 1) this.byteIds[bytes[0]!] = id;
    });
    const missing = [...this.byteIds].findIndex((id) => id < 0);
    if (missing >= 0) {
      throw new Error(
        `Byte-level BPE vocabulary: expected a token for each of the 256 bytes, found none for byte 0x${missing.toString(16)}.`,
      );
    }
    this.mergeList = parts.merges.map(([a, b]) => [a, b]);
    this.mergeOut = new Int32Array(this.mergeList.length);
    this.mergeList.forEach(([a, b], rank) => {
      const sa = this.tokenStr[a];
      const sb = this.tokenStr[b];
      const out = sa !== undefined && sb !== undefined ? this.vocab.get(sa + sb) : undefined;
      if (out === undefined) {
        throw new Error(`Byte-level BPE merge ${rank} (${a} + ${b}): expected the joined token in the vocabulary, found none.`);
      }
      const key = pairKey(a, b);
      if (!this.mergeRank.has(key)) this.mergeRank.set(key, rank);
      this.mergeOut[rank] = out;
    });
    this.size = this.tokenStr.length;
    for (const [content, id] of parts.special) this.setSpecial(content, id);
  }

  get vocabSize(): number {
    return this.size;
  }

  /** Number of merges (ranks). */
  get numMerges(): number {
    return this.mergeList.length;
  }

  specialTokens(): Map<string, number> {
    return new Map(this.special);
  }

  tokenToId(token: string): number | undefined {
    return this.special.get(token) ?? this.vocab.get(token);
  }

  /** The token string of an id (GPT-2 spelling for ordinary tokens, the content for special ones). */
  idToToken(id: number): string | undefined {
    for (const [s, i] of this.special) if (i === id) return s;
    return this.tokenStr[id];
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

  private setSpecial(content: string, id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= MAX_ID) {
      throw new Error(`Special token ${JSON.stringify(content)}: expected an id in [0, ${MAX_ID}), found ${id}.`);
    }
    this.special.set(content, id);
    const bytes = utf8Bytes(content);
    while (this.tokenBytes.length <= id) this.tokenBytes.push(undefined);
    if (this.tokenStr[id] === undefined) this.tokenBytes[id] = bytes;
    this.size = Math.max(this.size, id + 1);
    this.specialRe = specialTokenRegex(this.special.keys());
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    const re = options.allowSpecial === false ? null : this.specialRe;
    splitOnSpecial(
      text,
      re,
      (part) => this.encodeOrdinary(part, out),
      (tok) => out.push(this.special.get(tok)!),
    );
    return out;
  }

  /** Encodes text with no special-token handling, appending to `out`. */
  encodeOrdinary(text: string, out: number[] = []): number[] {
    const re = this.splitRe;
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const word = m[0];
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = this.encodeWord(utf8Bytes(word));
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    }
    return out;
  }

  /**
   * Encodes arbitrary bytes, valid UTF-8 or not: well-formed stretches are encoded as text, every other
   * byte as its own byte token, so {@link decodeBytes} gives the bytes back exactly.
   */
  encodeBytes(bytes: Uint8Array): number[] {
    const out: number[] = [];
    let pos = 0;
    while (pos < bytes.length) {
      const bad = firstInvalidUtf8(bytes, pos);
      const end = bad < 0 ? bytes.length : bad;
      if (end > pos) this.encodeOrdinary(keepBom.decode(bytes.subarray(pos, end)), out);
      if (bad < 0) break;
      out.push(this.byteIds[bytes[bad]!]!);
      pos = bad + 1;
    }
    return out;
  }

  /** Applies the merges to one pre-token's bytes. */
  private encodeWord(bytes: Uint8Array): number[] {
    if (this.ignoreMerges) {
      const whole = this.vocab.get(bytesToString(bytes));
      if (whole !== undefined) return [whole];
    }
    const parts: number[] = new Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) parts[i] = this.byteIds[bytes[i]!]!;
    return parts.length > LONG_WORD ? this.mergeLong(parts) : this.mergeShort(parts);
  }

  /** Short words: scan for the lowest-ranked pair, merge its occurrences left to right, repeat. */
  private mergeShort(parts: number[]): number[] {
    let n = parts.length;
    while (n > 1) {
      let best = Infinity;
      for (let i = 0; i + 1 < n; i++) {
        const r = this.mergeRank.get(pairKey(parts[i]!, parts[i + 1]!));
        if (r !== undefined && r < best) best = r;
      }
      if (best === Infinity) break;
      const [a, b] = this.mergeList[best]!;
      const z = this.mergeOut[best]!;
      let w = 0;
      for (let i = 0; i < n; i++) {
        if (i + 1 < n && parts[i] === a && parts[i + 1] === b) {
          parts[w++] = z;
          i++;
        } else parts[w++] = parts[i]!;
      }
      n = w;
    }
    parts.length = n;
    return parts;
  }

  /**
   * Long words (a run of digits, a base64 blob): a linked list and a heap of (rank, position), as Hugging
   * Face's Rust BPE does, so the cost is O(n log n) rather than O(n * merges). Same result as mergeShort:
   * lowest rank first, leftmost first among equal ranks.
   */
  private mergeLong(parts: number[]): number[] {
    const n = parts.length;
    const sym = Int32Array.from(parts);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new MinHeap();
    const rankAt = (i: number): number => {
      const j = next[i]!;
      if (j < 0) return -1;
      return this.mergeRank.get(pairKey(sym[i]!, sym[j]!)) ?? -1;
    };
    for (let i = 0; i + 1 < n; i++) {
      const r = rankAt(i);
      if (r >= 0) heap.push(r * 0x80000000 + i);
    }
    while (heap.size > 0) {
      const key = heap.pop();
      const r = Math.floor(key / 0x80000000);
      const i = key - r * 0x80000000;
      if (sym[i]! < 0 || rankAt(i) !== r) continue; // merged away or changed since it was pushed
      const j = next[i]!;
      sym[i] = this.mergeOut[r]!;
      sym[j] = -1;
      next[i] = next[j]!;
      if (next[j]! >= 0) prev[next[j]!] = i;
      const p = prev[i]!;
      if (p >= 0) {
        const rp = rankAt(p);
        if (rp >= 0) heap.push(rp * 0x80000000 + p);
      }
      const rn = rankAt(i);
      if (rn >= 0) heap.push(rn * 0x80000000 + i);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
    return out;
  }

  /** Token ids back to bytes (special tokens give their UTF-8 content). */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    checkIds(ids, this.size, 'decode');
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.tokenBytes[ids[i]!];
      if (b === undefined) throw new Error(`decode: token id ${ids[i]} at position ${i} is not in the vocabulary (a gap in the ids).`);
      total += b.length;
    }
    const out = new Uint8Array(total);
    let off = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.tokenBytes[ids[i]!]!;
      out.set(b, off);
      off += b.length;
    }
    return out;
  }

  /**
   * Token ids back to text. Bytes of the whole sequence are decoded together, so a character split across
   * tokens comes back whole; a sequence cut inside a character shows U+FFFD there, as Hugging Face does.
   */
  decode(ids: ArrayLike<number>): string {
    return lenientUtf8.decode(this.decodeBytes(ids));
  }

  toJSON(): HfTokenizerJson {
    const vocab: Record<string, number> = {};
    this.tokenStr.forEach((s, id) => {
      if (s !== undefined) vocab[s] = id;
    });
    const added: HfAddedToken[] = [];
    for (const [content, id] of [...this.special].sort((x, y) => x[1] - y[1])) {
      if (this.tokenStr[id] === undefined) vocab[content] = id;
      added.push(specialAddedToken(id, content));
    }
    const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: { ...byteLevel, trim_offsets: false },
      decoder: byteLevel,
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: this.ignoreMerges,
        vocab,
        merges: this.mergeList.map(([a, b]) => `${this.tokenStr[a]} ${this.tokenStr[b]}`),
      },
    };
  }

  save(path: string): void {
    fileAccess('ByteLevelBPE.save').writeFileAtomic(path, JSON.stringify(this.toJSON()));
  }

  /** Reads a byte-level BPE tokenizer.json (one Kiln wrote, GPT-2's, or any of the same shape). */
  static load(path: string): ByteLevelBPE {
    return ByteLevelBPE.fromJSON(readTokenizerJson(path), path);
  }

  /** Builds from a parsed tokenizer.json; throws when the file is not a plain byte-level BPE. */
  static fromJSON(json: HfTokenizerJson, what = 'tokenizer.json', kind?: string): ByteLevelBPE {
    const why = byteLevelMismatch(json);
    if (why !== null) throw new Error(`${what}: expected a byte-level BPE tokenizer (GPT-2 style), found ${why}.`);
    const tokens: (string | undefined)[] = [];
    const addedIds = new Set(json.added_tokens.map((t) => t.id));
    for (const [s, id] of Object.entries(json.model.vocab)) {
      if (!Number.isInteger(id) || id < 0) throw new Error(`${what}: vocabulary ids must be non-negative integers, found ${JSON.stringify(s)}: ${id}.`);
      if (addedIds.has(id)) continue;
      tokens[id] = s;
    }
    const merges: [number, number][] = (json.model.merges ?? []).map((m, rank) => {
      let pair: [string, string] | undefined;
      if (typeof m === 'string') {
        const sp = m.indexOf(' ');
        if (sp > 0 && m.indexOf(' ', sp + 1) < 0) pair = [m.slice(0, sp), m.slice(sp + 1)];
      } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') pair = [m[0], m[1]];
      // the vocabulary's own entries only: 'toString' must not find Object.prototype's
      const id = (t: string): number | undefined => (Object.hasOwn(json.model.vocab, t) ? json.model.vocab[t] : undefined);
      const a = pair && id(pair[0]);
      const b = pair && id(pair[1]);
      if (pair === undefined || a === undefined || b === undefined) {
        throw new Error(`${what}: merge ${rank} must name two tokens of the vocabulary, found ${JSON.stringify(m)}.`);
      }
      return [a, b];
    });
    const special: [string, number][] = json.added_tokens.map((t) => [t.content, t.id]);
    return new ByteLevelBPE({ tokens, merges, special, ignoreMerges: json.model.ignore_merges === true, kind });
  }
}

const lenientUtf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const keepBom = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A binary min-heap of numbers. */
class MinHeap {
  private a: number[] = [];

  get size(): number {
    return this.a.length;
  }

  push(v: number): void {
    const a = this.a;
    a.push(v);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= v) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = v;
  }

  pop(): number {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    const n = a.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const c = l + 1 < n && a[l + 1]! < a[l]! ? l + 1 : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

function bytesToString(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]!];
  return s;
}

/** Reads and parses a tokenizer.json file, with clear errors for a missing file or bad JSON. */
export function readTokenizerJson(path: string): HfTokenizerJson {
  const files = fileAccess('Reading a tokenizer.json file');
  let bytes: Uint8Array;
  try {
    bytes = files.readFile(path);
  } catch (err) {
    throw new Error(`Tokenizer file ${path}: expected a readable tokenizer.json, found ${(err as NodeJS.ErrnoException).code ?? String(err)}.`);
  }
  const text = decodeUtf8Strict(bytes, `Tokenizer file ${path}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`Tokenizer file ${path}: expected JSON, found a parse error (${(err as Error).message}).`);
  }
  return checkTokenizerJson(json, `Tokenizer file ${path}`);
}

/** Checks the outline of a tokenizer.json object (a model with a vocabulary, an added_tokens list). */
export function checkTokenizerJson(json: unknown, what: string): HfTokenizerJson {
  const j = json as HfTokenizerJson;
  if (typeof j !== 'object' || j === null || Array.isArray(j)) {
    throw new Error(`${what}: expected a tokenizer.json object, found ${Array.isArray(j) ? 'an array' : typeof j}.`);
  }
  if (typeof j.model !== 'object' || j.model === null || typeof j.model.type !== 'string') {
    throw new Error(`${what}: expected a "model" object with a "type", found ${JSON.stringify(j.model)?.slice(0, 60)}.`);
  }
  if (j.added_tokens === undefined) j.added_tokens = [];
  if (!Array.isArray(j.added_tokens)) throw new Error(`${what}: expected "added_tokens" to be an array, found ${typeof j.added_tokens}.`);
  checkTokenIds(j, what);
  return j;
}

/**
 * Token ids run from 0 to about the vocabulary size. A file with an id far beyond the tokens it holds (a
 * corrupt or hostile one: 907148420 in a vocabulary of three) would make the tokenizer library allocate a table
 * of that many entries, for minutes; it is refused instead.
 */
function checkTokenIds(j: HfTokenizerJson, what: string): void {
  const vocab = (j.model as Record<string, unknown>).vocab;
  const ids: [string, unknown][] = [];
  if (typeof vocab === 'object' && vocab !== null && !Array.isArray(vocab)) ids.push(...Object.entries(vocab));
  for (const t of j.added_tokens as unknown[]) {
    if (typeof t !== 'object' || t === null) continue;
    const content = (t as { content?: unknown }).content;
    ids.push([typeof content === 'string' ? content : '(added token)', (t as { id?: unknown }).id]);
  }
  const limit = 2 * ids.length + 65536;
  for (const [token, id] of ids) {
    if (typeof id === 'number' && (!Number.isInteger(id) || id < 0 || id >= limit)) {
      throw new Error(`${what}: token ${JSON.stringify(token)} has id ${id}; expected an integer from 0 to about the ${ids.length} tokens the file holds (below ${limit}).`);
    }
  }
}

/** Why a tokenizer.json is not a plain byte-level BPE that {@link ByteLevelBPE} runs exactly, or null. */
export function byteLevelMismatch(json: HfTokenizerJson): string | null {
  const m = json.model as Record<string, unknown>;
  if (m.type !== 'BPE') return `model type ${JSON.stringify(m.type)}`;
  if (typeof m.vocab !== 'object' || m.vocab === null) return 'no model vocabulary';
  if (m.dropout !== undefined && m.dropout !== null && m.dropout !== 0) return `BPE dropout ${m.dropout}`;
  if (m.byte_fallback === true) return 'byte_fallback';
  if (m.continuing_subword_prefix) return `continuing_subword_prefix ${JSON.stringify(m.continuing_subword_prefix)}`;
  if (m.end_of_word_suffix) return `end_of_word_suffix ${JSON.stringify(m.end_of_word_suffix)}`;
  if (json.normalizer !== null && json.normalizer !== undefined) return 'a normalizer';
  const pre = json.pre_tokenizer as Record<string, unknown> | null;
  if (pre === null || pre === undefined || pre.type !== 'ByteLevel') return `pre_tokenizer ${JSON.stringify(pre?.type ?? null)}`;
  if (pre.add_prefix_space === true) return 'ByteLevel add_prefix_space';
  if (pre.use_regex === false) return 'ByteLevel without its regex';
  const dec = json.decoder as Record<string, unknown> | null;
  if (dec === null || dec === undefined || dec.type !== 'ByteLevel') return `decoder ${JSON.stringify(dec?.type ?? null)}`;
  const post = json.post_processor as Record<string, unknown> | null;
  if (post !== null && post !== undefined && post.type !== 'ByteLevel') return `post_processor ${JSON.stringify(post.type)}`;
  for (const t of json.added_tokens) {
    if (t.lstrip || t.rstrip || t.single_word) return `added token ${JSON.stringify(t.content)} with lstrip/rstrip/single_word`;
    if (!t.special && t.normalized) return `normalized non-special added token ${JSON.stringify(t.content)}`;
  }
  // Hugging Face drops bytes that have no token; Kiln's encoder needs all 256 to stay lossless.
  const vocab = m.vocab as Record<string, number>;
  const missing = BYTE_TO_CHAR.findIndex((c) => vocab[c] === undefined);
  if (missing >= 0) return `no token for byte 0x${missing.toString(16).padStart(2, '0')}`;
  return null;
}

// Tokenizes a corpus once into train/validation shard files, split by document, cached under a folder named
// by a hash of the corpus, the tokenizer and the split settings, and reused when it is already there.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirs, renameAtomic, renameDirAtomic, tempPathFor, writeFileAtomic } from '../../io/atomic.js';
import type { TextDocument } from '../text/sources.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { bytesPerToken, ShardWriter, TokenShard } from './format.js';
import { Generator } from '../../tensor/random.js';

/** Options for {@link buildShards}. */
export interface BuildShardsOptions {
  /** The corpus. It is read twice (hash, then tokenize), so it must be re-iterable: an array, or iterateTextSource(...). */
  documents: Iterable<string | TextDocument>;
  tokenizer: Tokenizer;
  /** The cache root; the shards go in a sub-folder named by the hash. */
  dir: string;
  /** Share of documents held out for validation (default 0.1); 0 for none. */
  valFraction?: number;
  /** Seed of the document split (default 0). */
  seed?: number;
  /** Token appended after every document: an id, a token string, or null for none (default "<|endoftext|>"). */
  eotToken?: number | string | null;
  /** Most tokens in one shard file before the next is started (default 2^28). */
  shardTokens?: number;
}

/** One shard file of a split, as listed in meta.json. */
export interface ShardEntry {
  file: string;
  tokens: number;
}

/** The meta.json beside the shard files. */
export interface ShardsMeta {
  format: 'kiln-token-shards';
  version: 1;
  key: string;
  vocabSize: number;
  bytesPerToken: 2 | 4;
  eotToken: number | null;
  valFraction: number;
  seed: number;
  documents: { train: number; val: number };
  tokens: { train: number; val: number };
  shards: { train: ShardEntry[]; val: ShardEntry[] };
}

/** Opened shards of both splits. */
export interface ShardSet {
  /** The folder holding meta.json, tokenizer.json and the .bin files. */
  dir: string;
  meta: ShardsMeta;
  train: TokenShard[];
  val: TokenShard[];
  /** True when the cache was already there and nothing was tokenized. */
  reused: boolean;
}

/**
 * Tokenizes documents into `train.bin` and `val.bin` (more files, `train-00001.bin` ..., past `shardTokens`)
 * under `dir/<hash>/`, with an end-of-text token after each document. Whole documents go to validation
 * (a seeded choice of round(n * valFraction) of them, at least one), so no window ever mixes the splits.
 * Special-token strings inside the text are encoded as plain text. A second call with the same corpus,
 * tokenizer and settings reuses the files.
 *
 * @example
 * ```ts
 * const shards = buildShards({ documents: brownCorpus(), tokenizer, dir: '.cache/shards' });
 * shards.meta.tokens; // { train: ..., val: ... }
 * ```
 */
export function buildShards(options: BuildShardsOptions): ShardSet {
  const { documents, tokenizer, dir } = options;
  const valFraction = options.valFraction ?? 0.1;
  const seed = options.seed ?? 0;
  const shardTokens = options.shardTokens ?? 1 << 28;
  if (!(valFraction >= 0 && valFraction < 1)) throw new Error(`buildShards valFraction: expected a number in [0, 1), found ${valFraction}.`);
  if (!Number.isSafeInteger(seed)) throw new Error(`buildShards seed: expected an integer, found ${seed}.`);
  if (!Number.isInteger(shardTokens) || shardTokens < 1) throw new Error(`buildShards shardTokens: expected a positive integer, found ${shardTokens}.`);
  if (documents === null || typeof (documents as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    throw new Error(`buildShards documents: expected an array or iterable of documents, found ${typeof documents}.`);
  }
  if ((documents as Iterable<unknown>)[Symbol.iterator]() === (documents as unknown)) {
    throw new Error('buildShards documents: expected a re-iterable collection (it is read twice), found a one-shot iterator; pass an array or iterateTextSource(path).');
  }
  const eot = resolveEot(tokenizer, options.eotToken === undefined ? '<|endoftext|>' : options.eotToken);
  const vocabSize = tokenizer.vocabSize;
  const tokenizerJson = JSON.stringify(tokenizer.toJSON());

  // Pass 1: hash and count the non-empty documents.
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ format: 'kiln-token-shards', version: 1, valFraction, seed, eot, shardTokens }));
  hash.update('\0');
  hash.update(tokenizerJson);
  const len = Buffer.alloc(8);
  let n = 0;
  for (const doc of documents) {
    const text = docText(doc, n);
    if (text.length === 0) continue;
    const bytes = Buffer.from(text, 'utf8');
    len.writeBigUInt64LE(BigInt(bytes.length));
    hash.update(len);
    hash.update(bytes);
    n++;
  }
  if (n === 0) throw new Error('buildShards documents: expected at least one non-empty document, found none.');
  const nVal = valFraction > 0 ? Math.min(n - 1, Math.max(1, Math.round(n * valFraction))) : 0;
  if (valFraction > 0 && n < 2) {
    throw new Error(`buildShards: a validation split of whole documents needs at least 2 documents, found ${n}; split the text into more documents or set valFraction 0.`);
  }
  const key = hash.digest('hex').slice(0, 32);
  const out = join(dir, key);
  if (existsSync(join(out, 'meta.json'))) return openShards(out, true);

  // The split: a seeded shuffle of document numbers; the first nVal go to validation.
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  new Generator(seed).shuffle(order);
  const isVal = new Uint8Array(n);
  for (let i = 0; i < nVal; i++) isVal[order[i]!] = 1;

  // Pass 2: tokenize into a temporary folder, then rename it into place.
  makeDirs(dir, 'shards folder');
  const tmp = tempPathFor(out);
  mkdirSync(tmp);
  const splits = { train: new SplitWriter(tmp, 'train', vocabSize, shardTokens), val: new SplitWriter(tmp, 'val', vocabSize, shardTokens) };
  const encodeOpts = tokenizer.kind === 'hf' ? undefined : { allowSpecial: false };
  try {
    let i = 0;
    let seen = 0;
    for (const doc of documents) {
      const text = docText(doc, seen++);
      if (text.length === 0) continue;
      if (i >= n) throw new Error('buildShards documents: the collection changed between its two readings (more documents the second time).');
      const ids = tokenizer.encode(text, encodeOpts);
      if (eot !== null) ids.push(eot);
      (isVal[i] ? splits.val : splits.train).append(ids);
      i++;
    }
    if (i !== n) throw new Error(`buildShards documents: the collection changed between its two readings (${n} documents, then ${i}).`);
    const train = splits.train.finish();
    const val = splits.val.finish();
    const meta: ShardsMeta = {
      format: 'kiln-token-shards',
      version: 1,
      key,
      vocabSize,
      bytesPerToken: bytesPerToken(vocabSize),
      eotToken: eot,
      valFraction,
      seed,
      documents: { train: n - nVal, val: nVal },
      tokens: { train: sum(train), val: sum(val) },
      shards: { train, val },
    };
    writeFileAtomic(join(tmp, 'tokenizer.json'), tokenizerJson);
    writeFileAtomic(join(tmp, 'meta.json'), JSON.stringify(meta, null, 2));
    // Someone else may have finished the same cache first: then theirs is kept and ours dropped.
    renameDirAtomic(tmp, out, { keepExisting: true });
  } catch (err) {
    splits.train.abort();
    splits.val.abort();
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return openShards(out, false);
}

/** Opens a shard folder written by {@link buildShards} (its meta.json and .bin files). */
export function openShards(folder: string, reused = true): ShardSet {
  const metaPath = join(folder, 'meta.json');
  let meta: ShardsMeta;
  try {
    meta = JSON.parse(readFileSync(metaPath, 'utf8')) as ShardsMeta;
  } catch (err) {
    throw new Error(`Token shards ${folder}: expected a readable meta.json, found ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}.`);
  }
  if (meta.format !== 'kiln-token-shards' || meta.version !== 1) {
    throw new Error(`Token shards ${metaPath}: expected format kiln-token-shards version 1, found ${JSON.stringify(meta.format)} version ${meta.version}.`);
  }
  const open = (list: ShardEntry[]): TokenShard[] =>
    list.map((e) => {
      const s = TokenShard.open(join(folder, e.file));
      if (s.length !== e.tokens || s.vocabSize !== meta.vocabSize) {
        s.close();
        throw new Error(`Token shard ${join(folder, e.file)}: expected ${e.tokens} tokens of vocabulary ${meta.vocabSize} as meta.json says, found ${s.length} of ${s.vocabSize}.`);
      }
      return s;
    });
  return { dir: folder, meta, train: open(meta.shards.train), val: open(meta.shards.val), reused };
}

function docText(doc: string | TextDocument, i: number): string {
  const text = typeof doc === 'string' ? doc : doc?.text;
  if (typeof text !== 'string') throw new Error(`buildShards documents: expected strings or { text } objects, found ${doc === null ? 'null' : typeof doc} at document ${i}.`);
  return text;
}

function resolveEot(tokenizer: Tokenizer, eot: number | string | null): number | null {
  if (eot === null) return null;
  if (typeof eot === 'number') {
    if (!Number.isInteger(eot) || eot < 0 || eot >= tokenizer.vocabSize) {
      throw new Error(`buildShards eotToken: expected an id in [0, ${tokenizer.vocabSize}), found ${eot}.`);
    }
    return eot;
  }
  const id = tokenizer.tokenToId(eot);
  if (id === undefined) {
    throw new Error(`buildShards eotToken: expected a token of the tokenizer, found ${JSON.stringify(eot)} missing (add it with addSpecialTokens, or pass eotToken: null).`);
  }
  return id;
}

function sum(list: ShardEntry[]): number {
  return list.reduce((s, e) => s + e.tokens, 0);
}

/** Writes one split as a run of shard files, starting a new file every `limit` tokens. */
class SplitWriter {
  private files: ShardEntry[] = [];
  private writer: ShardWriter | null = null;

  constructor(
    private dir: string,
    private name: string,
    private vocabSize: number,
    private limit: number,
  ) {}

  append(ids: number[]): void {
    let off = 0;
    while (off < ids.length) {
      if (this.writer === null) this.writer = new ShardWriter(join(this.dir, this.fileName(this.files.length)), this.vocabSize);
      const take = Math.min(ids.length - off, this.limit - this.writer.length);
      this.writer.append(off === 0 && take === ids.length ? ids : ids.slice(off, off + take));
      off += take;
      if (this.writer.length >= this.limit) this.closeCurrent();
    }
  }

  private fileName(i: number): string {
    return `${this.name}-${String(i).padStart(5, '0')}.bin`;
  }

  private closeCurrent(): void {
    if (this.writer === null) return;
    const tokens = this.writer.close();
    this.files.push({ file: this.fileName(this.files.length), tokens });
    this.writer = null;
  }

  /** Closes the last file; a split that fits one file is renamed to `<name>.bin`. */
  finish(): ShardEntry[] {
    this.closeCurrent();
    if (this.files.length === 0) {
      new ShardWriter(join(this.dir, `${this.name}.bin`), this.vocabSize).close();
      return [{ file: `${this.name}.bin`, tokens: 0 }];
    }
    if (this.files.length === 1) {
      renameAtomic(join(this.dir, this.files[0]!.file), join(this.dir, `${this.name}.bin`));
      this.files[0]!.file = `${this.name}.bin`;
    }
    return this.files;
  }

  abort(): void {
    this.writer?.abort();
    this.writer = null;
  }
}

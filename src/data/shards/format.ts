// The token shard file: a 32-byte little-endian header, then the tokens as uint16 or uint32.
// Writers stream tokens to disk; readers fetch ranges through a file handle, never the whole file.
//
// Header: bytes 0-7 magic "KILNTOK\0"; 8-11 u32 version (1); 12-15 u32 bytes per token (2 or 4);
// 16-19 u32 vocabulary size; 20-23 u32 header size (32); 24-31 u64 token count.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { AtomicFileWriter } from '../../io/atomic.js';

/** The first 8 bytes of a token shard file. */
export const SHARD_MAGIC = 'KILNTOK\0';
/** The shard format version this code writes and reads. */
export const SHARD_VERSION = 1;
/** Bytes of a shard's header, before the tokens. */
export const SHARD_HEADER_BYTES = 32;
const LE = endianness() === 'LE';

/** Bytes per token for a vocabulary: 2 (uint16) when every id fits, else 4 (uint32). */
export function bytesPerToken(vocabSize: number): 2 | 4 {
  return vocabSize <= 65536 ? 2 : 4;
}

function header(vocabSize: number, bpt: number, count: number): Uint8Array {
  const h = new Uint8Array(SHARD_HEADER_BYTES);
  const dv = new DataView(h.buffer);
  for (let i = 0; i < 8; i++) h[i] = SHARD_MAGIC.charCodeAt(i);
  dv.setUint32(8, SHARD_VERSION, true);
  dv.setUint32(12, bpt, true);
  dv.setUint32(16, vocabSize, true);
  dv.setUint32(20, SHARD_HEADER_BYTES, true);
  dv.setBigUint64(24, BigInt(count), true);
  return h;
}

/**
 * Streams tokens into a shard file: appended in chunks, the header's count filled in by {@link close},
 * the file published atomically (fsync, rename, fsync the folder) only then.
 *
 * @example
 * ```ts
 * const w = new ShardWriter('train.bin', 8192);
 * w.append([1, 2, 3]);
 * w.close(); // 3 tokens
 * ```
 */
export class ShardWriter {
  readonly path: string;
  readonly vocabSize: number;
  readonly bytesPerToken: 2 | 4;
  private file: AtomicFileWriter;
  private buf: Uint16Array | Uint32Array;
  private used = 0;
  private count = 0;
  private pos = SHARD_HEADER_BYTES; // where the next chunk goes

  constructor(path: string, vocabSize: number, chunkTokens = 1 << 20) {
    if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > 0xffffffff) {
      throw new Error(`ShardWriter vocabSize: expected an integer in [1, 2^32), found ${vocabSize}.`);
    }
    this.path = path;
    this.vocabSize = vocabSize;
    this.bytesPerToken = bytesPerToken(vocabSize);
    this.buf = this.bytesPerToken === 2 ? new Uint16Array(chunkTokens) : new Uint32Array(chunkTokens);
    this.file = new AtomicFileWriter(path);
    this.file.writeAt(header(vocabSize, this.bytesPerToken, 0), 0);
  }

  /** Tokens written so far. */
  get length(): number {
    return this.count;
  }

  /** Appends token ids, each an integer in [0, vocabSize). */
  append(ids: ArrayLike<number>): void {
    const V = this.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id < V && Number.isInteger(id))) {
        this.abort();
        throw new Error(`Token shard ${this.path}: expected token ids in [0, ${V}), found ${id}.`);
      }
      this.buf[this.used++] = id;
      if (this.used === this.buf.length) this.flush();
    }
    this.count += ids.length;
  }

  private flush(): void {
    if (this.used === 0) return;
    const view = this.buf.subarray(0, this.used);
    let bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    if (!LE) bytes = toLittleEndian(view);
    this.file.writeAt(bytes, this.pos);
    this.pos += bytes.length;
    this.used = 0;
  }

  /** Finishes the file: flush, write the count, publish it atomically. Returns the token count. */
  close(): number {
    this.flush();
    this.file.writeAt(header(this.vocabSize, this.bytesPerToken, this.count), 0);
    this.file.commit();
    return this.count;
  }

  /** Drops the unfinished file. */
  abort(): void {
    this.file.abort();
  }
}

function toLittleEndian(view: Uint16Array | Uint32Array): Uint8Array {
  const out = new Uint8Array(view.byteLength);
  const dv = new DataView(out.buffer);
  const bpt = view.BYTES_PER_ELEMENT;
  for (let i = 0; i < view.length; i++) {
    if (bpt === 2) dv.setUint16(i * 2, view[i]!, true);
    else dv.setUint32(i * 4, view[i]!, true);
  }
  return out;
}

/** Writes a whole shard file in one call (atomically). */
export function writeShard(path: string, tokens: ArrayLike<number>, vocabSize: number): void {
  const w = new ShardWriter(path, vocabSize);
  w.append(tokens);
  w.close();
}

/**
 * A token shard opened for reading ranges through a file handle (the file is never loaded whole).
 *
 * @example
 * ```ts
 * const shard = TokenShard.open('train.bin');
 * shard.read(1000, 257); // Int32Array of 257 tokens
 * shard.close();
 * ```
 */
export class TokenShard {
  readonly path: string;
  readonly vocabSize: number;
  readonly bytesPerToken: 2 | 4;
  /** Number of tokens in the file. */
  readonly length: number;
  private fd: number | null;
  private scratch = new Uint8Array(0);

  private constructor(path: string, fd: number, vocabSize: number, bpt: 2 | 4, length: number) {
    this.path = path;
    this.fd = fd;
    this.vocabSize = vocabSize;
    this.bytesPerToken = bpt;
    this.length = length;
  }

  /** Opens a shard file and checks its header against its size. */
  static open(path: string): TokenShard {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new Error(`Token shard ${path}: expected a readable file, found ${(err as NodeJS.ErrnoException).code ?? String(err)}.`);
    }
    try {
      const size = fstatSync(fd).size;
      const h = new Uint8Array(SHARD_HEADER_BYTES);
      const got = size >= SHARD_HEADER_BYTES ? readSync(fd, h, 0, SHARD_HEADER_BYTES, 0) : 0;
      if (got < SHARD_HEADER_BYTES) throw new Error(`Token shard ${path}: expected a ${SHARD_HEADER_BYTES}-byte header, found a ${size}-byte file.`);
      const magic = String.fromCharCode(...h.subarray(0, 8));
      if (magic !== SHARD_MAGIC) throw new Error(`Token shard ${path}: expected magic "KILNTOK\\0", found ${JSON.stringify(magic)}.`);
      const dv = new DataView(h.buffer);
      const version = dv.getUint32(8, true);
      if (version !== SHARD_VERSION) throw new Error(`Token shard ${path}: expected format version ${SHARD_VERSION}, found ${version}.`);
      const bpt = dv.getUint32(12, true);
      if (bpt !== 2 && bpt !== 4) throw new Error(`Token shard ${path}: expected 2 or 4 bytes per token, found ${bpt}.`);
      const vocabSize = dv.getUint32(16, true);
      const hdr = dv.getUint32(20, true);
      if (hdr !== SHARD_HEADER_BYTES) throw new Error(`Token shard ${path}: expected header size ${SHARD_HEADER_BYTES}, found ${hdr}.`);
      const count = Number(dv.getBigUint64(24, true));
      const want = SHARD_HEADER_BYTES + count * bpt;
      if (size !== want) {
        throw new Error(`Token shard ${path}: expected ${want} bytes for ${count} tokens, found ${size} (the file is truncated or damaged).`);
      }
      return new TokenShard(path, fd, vocabSize, bpt, count);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Reads tokens [start, start + count) into `out` at `outOffset` (a new Int32Array by default). */
  read(start: number, count: number, out?: Int32Array, outOffset = 0): Int32Array {
    if (this.fd === null) throw new Error(`Token shard ${this.path}: read after close.`);
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.length) {
      throw new Error(`Token shard ${this.path}: expected a range inside [0, ${this.length}), found start ${start}, count ${count}.`);
    }
    const dst = out ?? new Int32Array(count);
    if (outOffset + count > dst.length) throw new Error(`Token shard ${this.path}: output array too short for ${count} tokens at ${outOffset}.`);
    const nbytes = count * this.bytesPerToken;
    if (this.scratch.byteLength < nbytes) this.scratch = new Uint8Array(new ArrayBuffer(Math.max(nbytes, 4096)));
    let got = 0;
    const pos = SHARD_HEADER_BYTES + start * this.bytesPerToken;
    while (got < nbytes) {
      const n = readSync(this.fd, this.scratch, got, nbytes - got, pos + got);
      if (n === 0) throw new Error(`Token shard ${this.path}: expected ${nbytes} bytes at offset ${pos}, found end of file.`);
      got += n;
    }
    if (LE) {
      const src = this.bytesPerToken === 2 ? new Uint16Array(this.scratch.buffer, 0, count) : new Uint32Array(this.scratch.buffer, 0, count);
      dst.set(src, outOffset);
    } else {
      const dv = new DataView(this.scratch.buffer);
      for (let i = 0; i < count; i++) dst[outOffset + i] = this.bytesPerToken === 2 ? dv.getUint16(i * 2, true) : dv.getUint32(i * 4, true);
    }
    return dst;
  }

  /** Yields the whole shard in chunks of up to `chunkTokens` tokens (for counting passes). */
  *chunks(chunkTokens = 1 << 20): Generator<Int32Array> {
    for (let s = 0; s < this.length; s += chunkTokens) yield this.read(s, Math.min(chunkTokens, this.length - s));
  }

  /** Closes the file. */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

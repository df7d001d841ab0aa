// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range (plus optional string __metadata__), then the little-endian data.
// Kiln reads F64/F32/F16/BF16/I64/I32/I16/I8/U8/U16/BOOL and writes F64/F32/F16/BF16/I32; no npm package is
// solid enough to depend on (the `safetensors` package is a 0.0.1), so the format lives here, tested against
// files PyTorch wrote (test/golden/safetensors). This file works on bytes only (browser-safe); safetensors.ts adds files.

import { Tensor } from '../tensor/index.js';

/** Element types of the safetensors format that Kiln understands. */
export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'U16' | 'BOOL';

const ELEMENT_SIZE: Record<SafetensorsDType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, U16: 2, BOOL: 1,
};

/** The raw values of one stored tensor, in the narrowest JavaScript array that holds them exactly. */
export type RawArray = Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array |
  Int8Array | Uint8Array;

export interface RawEntry {
  dtype: SafetensorsDType;
  shape: number[];
  /** F16 and BF16 come as their Uint16 bit patterns; use halfToFloat / bf16ToFloat or decodeSafetensors. */
  data: RawArray;
}

/** A safetensors file read back: tensors by name, their stored dtypes and the metadata. */
export interface SafetensorsFile {
  tensors: Record<string, Tensor>;
  /** The dtype each tensor had in the file (before widening F16/BF16 to float32). */
  dtypes: Record<string, SafetensorsDType>;
  metadata: Record<string, string>;
}

/** Options of encodeSafetensors and saveSafetensors. */
export interface EncodeOptions {
  /** String-to-string metadata, stored under __metadata__. */
  metadata?: Record<string, string>;
  /** The stored type of float32 tensors: F32 (default, exact), F16 or BF16 (rounded to nearest even). */
  floatDType?: 'F32' | 'F16' | 'BF16';
}

const MAX_HEADER = 100 * 1024 * 1024;
const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---- half and bfloat16 conversion ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float value of an IEEE half-precision bit pattern. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The IEEE half-precision bit pattern nearest to x (round half to even; overflow gives infinity). */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

/** The float value of a bfloat16 bit pattern. */
export function bf16ToFloat(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** The bfloat16 bit pattern nearest to x (round half to even; NaN stays NaN). */
export function floatToBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---- encoding ----

function storedType(t: Tensor, name: string, floatDType: 'F32' | 'F16' | 'BF16'): SafetensorsDType {
  switch (t.dtype) {
    case 'float32': return floatDType;
    case 'float64': return 'F64';
    case 'int32': return 'I32';
    default: throw new Error(`safetensors: tensor '${name}' has dtype ${String(t.dtype)}, which cannot be stored`);
  }
}

function toBytes(t: Tensor, dtype: SafetensorsDType): Uint8Array {
  const n = t.size;
  const out = new Uint8Array(n * ELEMENT_SIZE[dtype]);
  const view = new DataView(out.buffer);
  const src = t.storage;
  if (dtype === 'F16' || dtype === 'BF16') {
    const conv = dtype === 'F16' ? floatToHalf : floatToBf16;
    for (let i = 0; i < n; i++) view.setUint16(i * 2, conv(src[i]), true);
  } else if (LITTLE) {
    out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
  } else if (dtype === 'F32') {
    for (let i = 0; i < n; i++) view.setFloat32(i * 4, src[i], true);
  } else if (dtype === 'F64') {
    for (let i = 0; i < n; i++) view.setFloat64(i * 8, src[i], true);
  } else {
    for (let i = 0; i < n; i++) view.setInt32(i * 4, src[i], true);
  }
  return out;
}

/**
 * The bytes of a safetensors file holding `tensors` (in name order).
 * `encodeSafetensors({ 'fc.weight': w }, { metadata: { format: 'pt' } })`
 */
export function encodeSafetensors(tensors: Record<string, Tensor>, options: EncodeOptions = {}): Uint8Array {
  const floatDType = options.floatDType ?? 'F32';
  if (!['F32', 'F16', 'BF16'].includes(floatDType)) {
    throw new Error(`safetensors: floatDType must be F32, F16 or BF16, got '${String(floatDType)}'`);
  }
  const header: Record<string, unknown> = {};
  if (options.metadata) {
    for (const [k, v] of Object.entries(options.metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors: metadata value '${k}' must be a string, got ${typeof v}`);
    }
    header.__metadata__ = options.metadata;
  }
  const names = Object.keys(tensors).sort();
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new Error("safetensors: a tensor cannot be named '__metadata__'");
    const t = tensors[name];
    if (!(t instanceof Tensor)) throw new Error(`safetensors: '${name}' is not a Tensor`);
    const dtype = storedType(t, name, floatDType);
    const bytes = toBytes(t, dtype);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  const utf8 = new TextEncoder();
  const pad = (8 - ((utf8.encode(json).length + 8) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = utf8.encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

// ---- decoding ----

interface HeaderEntry { dtype: SafetensorsDType; shape: number[]; begin: number; end: number }

function parseHeader(bytes: Uint8Array, source: string): { entries: Map<string, HeaderEntry>; metadata: Record<string, string>; dataStart: number } {
  const bad = (what: string): Error => new Error(`safetensors file '${source}' is not valid: ${what}`);
  if (bytes.length < 8) throw bad(`it has ${bytes.length} bytes, fewer than the 8-byte header length (truncated?)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(Math.min(MAX_HEADER, bytes.length - 8))) {
    throw bad(`the header claims ${n} bytes but ${bytes.length - 8} follow the length field (truncated or corrupt)`);
  }
  const headerLen = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (err) {
    throw bad(`the ${headerLen}-byte header is not UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('the header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries = new Map<string, HeaderEntry>();
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw bad(`__metadata__ value '${k}' is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw bad(`the entry for '${name}' is not an object`);
    // own keys only: 'toString' or '__proto__' is no dtype; JSON text for a non-string (String() of an object from
    // the file can itself throw)
    if (typeof e.dtype !== 'string' || !Object.hasOwn(ELEMENT_SIZE, e.dtype)) {
      const shown = typeof e.dtype === 'string' ? e.dtype : JSON.stringify(e.dtype);
      throw bad(`tensor '${name}' has dtype '${shown}'; expected one of ${Object.keys(ELEMENT_SIZE).join(', ')}`);
    }
    const dtype = e.dtype as SafetensorsDType;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`tensor '${name}' has shape ${JSON.stringify(e.shape)}; expected an array of non-negative integers`);
    }
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[1] < off[0]) {
      throw bad(`tensor '${name}' has data_offsets ${JSON.stringify(off)}; expected [begin, end] with begin <= end`);
    }
    const [begin, end] = off as [number, number];
    const want = shape.reduce((a, b) => a * b, 1) * ELEMENT_SIZE[dtype];
    if (end - begin !== want) {
      throw bad(`tensor '${name}' (${dtype}, shape [${shape.join(', ')}]) needs ${want} bytes but data_offsets give ${end - begin}`);
    }
    if (end > dataLen) {
      throw bad(`tensor '${name}' ends at data byte ${end} but the file holds only ${dataLen} data bytes (truncated?)`);
    }
    entries.set(name, { dtype, shape, begin, end });
  }
  // The data section must be covered exactly, without holes or overlaps.
  const ranges = [...entries.entries()].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
  let covered = 0;
  for (const [name, e] of ranges) {
    if (e.begin !== covered) {
      throw bad(e.begin < covered ? `tensor '${name}' overlaps the tensor before it` : `there is a hole in the data before tensor '${name}'`);
    }
    covered = e.end;
  }
  if (covered !== dataLen) throw bad(`the tensors cover ${covered} data bytes but the file holds ${dataLen} (extra or missing bytes)`);
  return { entries, metadata, dataStart };
}

function readRaw(bytes: Uint8Array, e: HeaderEntry, dataStart: number): RawArray {
  const src = bytes.subarray(dataStart + e.begin, dataStart + e.end);
  const n = (e.end - e.begin) / ELEMENT_SIZE[e.dtype];
  // Copy the bytes first: offsets inside a file need not be aligned to the element size.
  const copy = new Uint8Array(src.length);
  copy.set(src);
  const make = (): RawArray => {
    switch (e.dtype) {
      case 'F64': return new Float64Array(copy.buffer, 0, n);
      case 'F32': return new Float32Array(copy.buffer, 0, n);
      case 'F16': case 'BF16': case 'U16': return new Uint16Array(copy.buffer, 0, n);
      case 'I64': return new BigInt64Array(copy.buffer, 0, n);
      case 'I32': return new Int32Array(copy.buffer, 0, n);
      case 'I16': return new Int16Array(copy.buffer, 0, n);
      case 'I8': return new Int8Array(copy.buffer, 0, n);
      case 'U8': case 'BOOL': return new Uint8Array(copy.buffer, 0, n);
    }
  };
  if (!LITTLE && ELEMENT_SIZE[e.dtype] > 1) {
    const size = ELEMENT_SIZE[e.dtype];
    for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  }
  return make();
}

/** Every tensor of a safetensors buffer with its stored dtype and raw values, plus the metadata. */
export function decodeSafetensorsRaw(bytes: Uint8Array, source = '<buffer>'): { entries: Record<string, RawEntry>; metadata: Record<string, string> } {
  const { entries, metadata, dataStart } = parseHeader(bytes, source);
  const out: Record<string, RawEntry> = {};
  for (const [name, e] of entries) out[name] = { dtype: e.dtype, shape: e.shape, data: readRaw(bytes, e, dataStart) };
  return { entries: out, metadata };
}

function toTensor(name: string, e: RawEntry, source: string): Tensor {
  const n = e.data.length;
  switch (e.dtype) {
    case 'F32': return new Tensor(e.data as Float32Array, e.shape);
    case 'F64': return new Tensor(e.data as Float64Array, e.shape);
    case 'I32': return new Tensor(e.data as Int32Array, e.shape);
    case 'F16': case 'BF16': {
      const conv = e.dtype === 'F16' ? halfToFloat : bf16ToFloat;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = conv(e.data[i] as number);
      return new Tensor(out, e.shape);
    }
    case 'I64': {
      const d = e.data as BigInt64Array;
      let fitsInt32 = true;
      for (let i = 0; i < n; i++) {
        const v = d[i];
        if (v > 2147483647n || v < -2147483648n) {
          fitsInt32 = false;
          if (v > 9007199254740991n || v < -9007199254740991n) {
            throw new Error(`safetensors file '${source}': I64 tensor '${name}' holds ${v}, beyond what a float64 keeps exactly`);
          }
        }
      }
      const out = fitsInt32 ? new Int32Array(n) : new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(d[i]);
      return new Tensor(out, e.shape);
    }
    default: {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = e.data[i] as number;
      return new Tensor(out, e.shape);
    }
  }
}

/**
 * Tensors from a safetensors buffer: F32, F16 and BF16 as float32, F64 as float64, integers as int32 (I64 as
 * float64 when a value does not fit int32).
 */
export function decodeSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsFile {
  const { entries, metadata } = decodeSafetensorsRaw(bytes, source);
  const tensors: Record<string, Tensor> = {};
  const dtypes: Record<string, SafetensorsDType> = {};
  for (const [name, e] of Object.entries(entries)) {
    tensors[name] = toTensor(name, e, source);
    dtypes[name] = e.dtype;
  }
  return { tensors, dtypes, metadata };
}

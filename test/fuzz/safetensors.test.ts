// Fuzz: safetensors headers from outside (a downloaded model): random bytes, and well-formed length prefixes
// around headers whose dtypes, shapes and offsets are mutated. Each case decodes or fails with the parser's one
// sentence ("safetensors file '...' is not valid: ..."); never a raw TypeError or RangeError, never a hang.

import { test } from 'node:test';
import fc from 'fast-check';
import { decodeSafetensors } from '../../src/io/safetensors.js';
import { ONE_PASS, fuzz, oddJson, resultOrClearError } from './helpers.js';

const KNOWN = /^safetensors file 'fuzz' /;

function withHeader(header: unknown, data: Uint8Array, lengthDelta = 0): Uint8Array {
  const h = Buffer.from(JSON.stringify(header) ?? 'null');
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(Math.max(0, h.length + lengthDelta)), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const dtype = fc.oneof(fc.constantFrom('F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'U16', 'BOOL', 'F8', 'f32', ''), oddJson);
const dim = fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constantFrom(-1, 2 ** 31, 2 ** 53, 1e300, 0.5), oddJson);
const entry = fc.record({
  dtype,
  shape: fc.oneof(fc.array(dim, { maxLength: 4 }), oddJson),
  data_offsets: fc.oneof(fc.tuple(fc.integer({ min: -4, max: 80 }), fc.integer({ min: -4, max: 80 })), fc.array(dim, { maxLength: 3 }), oddJson),
}, { requiredKeys: [] });
const header = fc.oneof(
  fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(entry, oddJson), { maxKeys: 4 }),
  fc.record({ __metadata__: fc.oneof(fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.string(), oddJson), { maxKeys: 3 }), oddJson), w: entry }),
  oddJson,
);

test('fuzz: random bytes as a safetensors file', { skip: ONE_PASS }, () => {
  fuzz(fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
    resultOrClearError(() => decodeSafetensors(bytes, 'fuzz'), KNOWN);
  }));
});

test('fuzz: mutated safetensors headers', { skip: ONE_PASS }, () => {
  fuzz(fc.property(header, fc.uint8Array({ maxLength: 96 }), fc.constantFrom(0, 0, 0, -1, 1, 1e6), (h, data, delta) => {
    resultOrClearError(() => decodeSafetensors(withHeader(h, data, delta), 'fuzz'), KNOWN);
  }));
});

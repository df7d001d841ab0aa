// safetensors: reads the file PyTorch wrote (test/golden/safetensors, made by tools/golden/make_golden.py with
// torch 1.13), round-trips every writable dtype, and rejects truncated and corrupt files with the file's name.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../src/index.js';
import {
  decodeSafetensors, decodeSafetensorsRaw, encodeSafetensors, loadSafetensors, saveSafetensors,
  floatToHalf, halfToFloat, floatToBf16, bf16ToFloat,
} from '../../src/io/safetensors.js';

const golden = 'test/golden/safetensors';

test('reads the PyTorch-written sample: every dtype, shape, value and the metadata', () => {
  const spec = JSON.parse(readFileSync(join(golden, 'sample.json'), 'utf8'));
  const file = loadSafetensors(join(golden, 'sample.safetensors'));
  assert.deepEqual(file.metadata, spec.metadata);
  assert.deepEqual(Object.keys(file.tensors).sort(), Object.keys(spec.tensors).sort());
  for (const [name, want] of Object.entries<any>(spec.tensors)) {
    const t = file.tensors[name];
    assert.equal(file.dtypes[name], want.dtype, name);
    assert.deepEqual([...t.shape], want.shape, name);
    const got = Array.from(t.storage as ArrayLike<number>);
    assert.equal(got.length, want.data.length, name);
    for (let i = 0; i < got.length; i++) assert.ok(Object.is(got[i], want.data[i]), `${name}[${i}]: ${got[i]} vs ${want.data[i]}`);
  }
  const raw = decodeSafetensorsRaw(readFileSync(join(golden, 'sample.safetensors')));
  assert.deepEqual(Array.from(raw.entries.i64.data as BigInt64Array), [-5n, 4294967296n, 9007199254740991n]);
});

test('round-trips float32, float64 and int32 exactly, and F16/BF16 to the nearest value', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-st-'));
  const a = kiln.tensor([[0.1, -1.5, 3e38], [1e-40, -0, 7]]);
  const b = kiln.tensor([0.1, 1e300], { dtype: 'float64' });
  const c = kiln.tensor([-2147483648, 2147483647, 5], { dtype: 'int32' });
  const e = kiln.zeros([0, 3]);
  const path = join(dir, 'x.safetensors');
  saveSafetensors(path, { a, b, c, e, s: kiln.tensor(3.5) }, { metadata: { format: 'pt' } });
  const back = loadSafetensors(path);
  assert.deepEqual(back.metadata, { format: 'pt' });
  for (const [name, t] of Object.entries({ a, b, c, e })) {
    assert.equal(back.tensors[name].dtype, t.dtype);
    assert.deepEqual([...back.tensors[name].shape], [...t.shape]);
    assert.ok(Array.from(back.tensors[name].storage).every((v, i) => Object.is(v, t.storage[i])), name);
  }
  assert.deepEqual([...back.tensors.s.shape], []);
  assert.equal((readFileSync(path).readUInt32LE(0) + 8) % 8, 0, 'header padded to 8 bytes');
  for (const floatDType of ['F16', 'BF16'] as const) {
    const x = kiln.tensor([1, -2.5, 0.333333, 65504, 1e-7, 3.140625]);
    const y = decodeSafetensors(encodeSafetensors({ x }, { floatDType })).tensors.x;
    const conv = floatDType === 'F16' ? (v: number) => halfToFloat(floatToHalf(v)) : (v: number) => bf16ToFloat(floatToBf16(v));
    assert.deepEqual(Array.from(y.storage), Array.from(x.storage).map((v) => Math.fround(conv(v))));
  }
  assert.equal(halfToFloat(floatToHalf(1 / 3)), 0.333251953125);
  assert.equal(halfToFloat(floatToHalf(1e6)), Infinity);
  assert.equal(bf16ToFloat(floatToBf16(3.14159)), 3.140625);
  assert.ok(Number.isNaN(bf16ToFloat(floatToBf16(NaN))));
});

test('a truncated file is refused with its name; nothing is removed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-st-'));
  const bytes = readFileSync(join(golden, 'sample.safetensors'));
  for (const cut of [0, 5, 100, bytes.length - 1]) {
    const p = join(dir, `cut-${cut}.safetensors`);
    writeFileSync(p, bytes.subarray(0, cut));
    assert.throws(() => loadSafetensors(p), (err: Error) => err.message.includes(p) && /truncated|bytes/.test(err.message), `cut ${cut}`);
    assert.ok(existsSync(p));
  }
});

test('corrupt headers are refused with a clear message naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-st-'));
  const good = encodeSafetensors({ w: kiln.ones([2, 2]) });
  const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
    ['huge length', (b) => { b.writeUInt32LE(0xffffff, 0); return b; }, /header claims/],
    ['not json', (b) => { b[8] = 0x5b; b[9] = 0x5b; return b; }, /not UTF-8 JSON|not a JSON object/],
    ['bad dtype', (b) => Buffer.from(b.toString('latin1').replace('"F32"', '"X32"'), 'latin1'), /dtype 'X32'/],
    ['bad offsets', (b) => Buffer.from(b.toString('latin1').replace('[0,16]', '[0,12]'), 'latin1'), /needs 16 bytes/],
    ['extra bytes', (b) => Buffer.concat([b, Buffer.alloc(4)]), /extra or missing/],
  ];
  for (const [label, corrupt, re] of cases) {
    const p = join(dir, `${label.replace(/ /g, '-')}.safetensors`);
    writeFileSync(p, corrupt(Buffer.from(good)));
    assert.throws(() => loadSafetensors(p), (err: Error) => err.message.includes(p) && re.test(err.message), label);
  }
  assert.throws(() => loadSafetensors(join(dir, 'missing.safetensors')), /missing\.safetensors' cannot be read/);
});

test('a dtype that is an object, or the name of an Object.prototype member, is refused with the parser\'s sentence', () => {
  // Found by the fuzz suite: {"dtype":{"toString":null}} made String() throw a raw TypeError, and 'toString' or
  // 'constructor' passed an `in` check through the prototype.
  const withHeader = (header: unknown): Uint8Array => {
    const h = Buffer.from(JSON.stringify(header));
    const out = new Uint8Array(8 + h.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(h, 8);
    return out;
  };
  const cases: [unknown, RegExp][] = [
    [{ toString: null }, /dtype '\{"toString":null\}'/],
    [{ valueOf: 1, toString: 2 }, /dtype '\{"valueOf":1,"toString":2\}'/],
    ['toString', /dtype 'toString'/],
    ['constructor', /dtype 'constructor'/],
    ['__proto__', /dtype '__proto__'/],
  ];
  for (const [dtype, re] of cases) {
    assert.throws(() => decodeSafetensors(withHeader({ w: { dtype, shape: [0], data_offsets: [0, 0] } }), 'odd'),
      (err: Error) => err.constructor === Error && /^safetensors file 'odd' is not valid: tensor 'w' has dtype/.test(err.message) && re.test(err.message),
      JSON.stringify(dtype));
  }
});

// Shared helpers for the backend tests: a seeded generator, random typed arrays, and a float comparison that
// names the first mismatching element.

import assert from 'node:assert/strict';

/** mulberry32: small, fast, seeded. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randF32(r: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

export function randInt(r: () => number, n: number, lo: number, hi: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + Math.floor(r() * (hi - lo));
  return a;
}

/** |a - e| <= atol + rtol * |e| elementwise; NaN matches NaN, infinities match by sign. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string, rtol = 1e-5,
  atol = 1e-6): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e) || Number.isNaN(a)) {
      if (Number.isNaN(e) && Number.isNaN(a)) continue;
      assert.fail(`${label}: element ${i} is ${a}, expected ${e}`);
    }
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (a === e) continue;
      assert.fail(`${label}: element ${i} is ${a}, expected ${e}`);
    }
    if (Math.abs(a - e) > atol + rtol * Math.abs(e)) {
      assert.fail(`${label}: element ${i} is ${a}, expected ${e} (diff ${Math.abs(a - e)})`);
    }
  }
}

export function assertBitwiseEqual(a: Float32Array, b: Float32Array, label: string): void {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  assert.equal(a.length, b.length, `${label}: length`);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) assert.fail(`${label}: element ${i} differs: ${a[i]} vs ${b[i]}`);
  }
}

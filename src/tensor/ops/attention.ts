// Attention over a fused qkv projection. qkvAttention: causal self-attention straight from the c_attn output,
// qkv (B, T, 3C) with columns [q | k | v] in, (B, T, C) out, on the backend's attention kernel. The kernel reads q, k and v in place (row stride 3C) and
// backward writes dq, dk and dv interleaved into one (B, T, 3C) gradient, where three `narrow`s would copy them
// out and each allocate a zero-filled (B, T, 3C) buffer to add up. test/models/gpt.test.ts also holds it against
// the composite in float64. cachedAttention: the decoding step, new tokens attending over a KV cache.

import { backend, type FloatArray } from '../../backend/index.js';
import { defineOp, isGradEnabled, record } from '../autograd.js';
import { fmt } from '../shape.js';
import { allocFloat, allocFloatUninit } from '../storage.js';
import { Tensor } from '../tensor.js';

/**
 * Multi-head causal attention of qkv (B, T, 3C) = [q | k | v] along the last axis, heads interleaved in each
 * C-wide block as GPT-2 lays them out; equals `attention(narrow(qkv,2,0,C), narrow(qkv,2,C,C), narrow(qkv,2,2C,C))`.
 */
export const qkvAttention = defineOp('qkvAttention', (qkv: Tensor, heads: number): Tensor => {
  if (qkv.dtype === 'int32') throw new Error('qkvAttention: qkv must be a floating-point tensor, got int32');
  if (qkv.ndim !== 3 || qkv.shape[2] % 3 !== 0) throw new Error(`qkvAttention: qkv must be (B, T, 3C), got ${fmt(qkv.shape)}`);
  const [B, T, C3] = qkv.shape;
  const C = C3 / 3;
  if (!Number.isInteger(heads) || heads <= 0 || C % heads !== 0) throw new Error(`qkvAttention: ${C} channels do not split into ${heads} heads`);
  const HS = C / heads;
  const scale = 1 / Math.sqrt(HS);
  const be = backend();
  const src = qkv.storage as FloatArray; // (B, T, 3C): q, k, v are its column slices, read in place (row stride 3C)
  const [q, k, v] = [0, 1, 2].map((part) => src.subarray(part * C));
  const out = allocFloatUninit(qkv.dtype, B * T * C); // (B, T, C)
  const lse = allocFloat(qkv.dtype, B * heads * T); // (B, NH, T)
  be.attention(q, k, v, B, T, T, heads, HS, true, scale, out, lse, 3 * C);
  return record('qkvAttention', new Tensor(out, [B, T, C]), [qkv], (g) => {
    const d = allocFloatUninit(qkv.dtype, qkv.size); // (B, T, 3C): dq, dk, dv interleaved as q, k, v are
    const [dq, dk, dv] = [0, 1, 2].map((part) => d.subarray(part * C));
    be.attentionBackward(g.storage as FloatArray, q, k, v, out, lse, B, T, T, heads, HS, true, scale, dq, dk, dv, 3 * C);
    return [new Tensor(d, qkv.shape)];
  });
});

/** Keys and values of one layer for `rows` sequences of up to `context` positions: each (rows, context, C). */
export interface KVBuffers {
  readonly keys: FloatArray;
  readonly values: FloatArray;
  readonly context: number;
}

/**
 * The decoding step of causal attention: qkv (A, T, 3C) holds [q | k | v] of T new tokens for each of A
 * sequences. Sequence a lives in row rows[a] of the cache and already holds starts[a] positions; its new keys and
 * values are written after them, and its queries attend over the whole prefix (starts[a] + T positions, the new
 * token i seeing the prefix and new tokens up to i). Returns (A, T, C). Records no graph: it is for inference.
 */
export function cachedAttention(qkv: Tensor, cache: KVBuffers, rows: readonly number[], starts: readonly number[], heads: number): Tensor {
  if (isGradEnabled() && qkv.requiresGrad) throw new Error('cachedAttention: it has no backward; decode under kiln.noGrad');
  if (qkv.dtype === 'int32') throw new Error('cachedAttention: qkv must be a floating-point tensor, got int32');
  if (qkv.ndim !== 3 || qkv.shape[2] % 3 !== 0) throw new Error(`cachedAttention: qkv must be (A, T, 3C), got ${fmt(qkv.shape)}`);
  const [A, T, C3] = qkv.shape;
  const C = C3 / 3;
  if (!Number.isInteger(heads) || heads <= 0 || C % heads !== 0) throw new Error(`cachedAttention: ${C} channels do not split into ${heads} heads`);
  if (rows.length !== A || starts.length !== A) throw new Error(`cachedAttention: ${A} sequences need ${A} rows and starts, got ${rows.length} and ${starts.length}`);
  const P = cache.context;
  const capacity = cache.keys.length / (P * C);
  const HS = C / heads;
  const scale = 1 / Math.sqrt(HS);
  const be = backend();
  const src = qkv.storage as FloatArray; // (A, T, 3C)
  const q = allocFloatUninit(qkv.dtype, T * C); // (T, C): one sequence's queries, contiguous for the kernel
  const out = allocFloatUninit(qkv.dtype, A * T * C); // (A, T, C)
  const lse = allocFloatUninit(qkv.dtype, heads * T); // (NH, T), unused outside the kernel
  for (let a = 0; a < A; a++) {
    const row = rows[a];
    const start = starts[a];
    if (!(Number.isInteger(row) && row >= 0 && row < capacity)) throw new Error(`cachedAttention: row ${row} is outside the cache's ${capacity} rows`);
    if (!(Number.isInteger(start) && start >= 0 && start + T <= P)) {
      throw new Error(`cachedAttention: ${start} cached positions and ${T} new ones exceed the cache's context of ${P}`);
    }
    const base = row * P * C; // the row's (P, C) block
    for (let t = 0; t < T; t++) {
      const from = (a * T + t) * C3;
      const at = base + (start + t) * C;
      q.set(src.subarray(from, from + C), t * C);
      cache.keys.set(src.subarray(from + C, from + 2 * C), at);
      cache.values.set(src.subarray(from + 2 * C, from + 3 * C), at);
    }
    const Tk = start + T;
    be.attention(q, cache.keys.subarray(base, base + Tk * C), cache.values.subarray(base, base + Tk * C), 1, T, Tk, heads, HS,
      true, scale, out.subarray(a * T * C, (a + 1) * T * C), lse, C);
  }
  return new Tensor(out, [A, T, C]);
}

/**
 * The decoding step of grouped-query attention (Llama): q (A, T, C) of `heads` heads, k and v (A, T, KW) of
 * `kvHeads` heads (KW = kvHeads * head size; query head h reads key/value head floor(h / (heads / kvHeads))). The
 * cache holds key/value heads only, (rows, context, KW) per layer; otherwise as cachedAttention. Returns (A, T, C).
 */
export function cachedGroupedAttention(q: Tensor, k: Tensor, v: Tensor, cache: KVBuffers, rows: readonly number[],
  starts: readonly number[], heads: number, kvHeads: number): Tensor {
  if (isGradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad)) {
    throw new Error('cachedGroupedAttention: it has no backward; decode under kiln.noGrad');
  }
  if (q.dtype === 'int32' || q.ndim !== 3) throw new Error(`cachedGroupedAttention: q must be a float (A, T, C) tensor, got ${q.dtype} ${fmt(q.shape)}`);
  const [A, T, C] = q.shape;
  if (!Number.isInteger(heads) || heads <= 0 || C % heads !== 0) throw new Error(`cachedGroupedAttention: ${C} channels do not split into ${heads} heads`);
  if (!Number.isInteger(kvHeads) || kvHeads <= 0 || heads % kvHeads !== 0) throw new Error(`cachedGroupedAttention: ${kvHeads} key/value heads do not divide ${heads} heads`);
  const HS = C / heads;
  const KW = kvHeads * HS;
  for (const [t, n] of [[k, 'k'], [v, 'v']] as const) {
    if (t.dtype !== q.dtype || t.ndim !== 3 || t.shape[0] !== A || t.shape[1] !== T || t.shape[2] !== KW) {
      throw new Error(`cachedGroupedAttention: ${n} must be ${q.dtype} (${A}, ${T}, ${KW}), got ${t.dtype} ${fmt(t.shape)}`);
    }
  }
  if (rows.length !== A || starts.length !== A) throw new Error(`cachedGroupedAttention: ${A} sequences need ${A} rows and starts, got ${rows.length} and ${starts.length}`);
  const P = cache.context;
  const capacity = cache.keys.length / (P * KW);
  const G = heads / kvHeads;
  const be = backend();
  const [qs, ks, vs] = [q.storage, k.storage, v.storage] as FloatArray[];
  const out = allocFloatUninit(q.dtype, A * T * C); // (A, T, C)
  const lse = allocFloatUninit(q.dtype, heads * T); // (NH, T), unused outside the kernel
  const maxTk = Math.max(0, ...starts) + T;
  // With groups, each key/value head is repeated G times into (Tk, C) buffers the attention kernel reads.
  const wideK = G > 1 ? allocFloatUninit(q.dtype, maxTk * C) : null; // (Tk, C)
  const wideV = G > 1 ? allocFloatUninit(q.dtype, maxTk * C) : null; // (Tk, C)
  for (let a = 0; a < A; a++) {
    const row = rows[a];
    const start = starts[a];
    if (!(Number.isInteger(row) && row >= 0 && row < capacity)) throw new Error(`cachedGroupedAttention: row ${row} is outside the cache's ${capacity} rows`);
    if (!(Number.isInteger(start) && start >= 0 && start + T <= P)) {
      throw new Error(`cachedGroupedAttention: ${start} cached positions and ${T} new ones exceed the cache's context of ${P}`);
    }
    const base = row * P * KW; // the row's (P, KW) block
    cache.keys.set(ks.subarray(a * T * KW, (a + 1) * T * KW), base + start * KW);
    cache.values.set(vs.subarray(a * T * KW, (a + 1) * T * KW), base + start * KW);
    const Tk = start + T;
    let keys = cache.keys.subarray(base, base + Tk * KW);
    let values = cache.values.subarray(base, base + Tk * KW);
    if (wideK && wideV) {
      repeatHeads(keys, Tk, kvHeads, G, HS, wideK);
      repeatHeads(values, Tk, kvHeads, G, HS, wideV);
      keys = wideK.subarray(0, Tk * C);
      values = wideV.subarray(0, Tk * C);
    }
    be.attention(qs.subarray(a * T * C, (a + 1) * T * C), keys, values, 1, T, Tk, heads, HS, true, 1 / Math.sqrt(HS),
      out.subarray(a * T * C, (a + 1) * T * C), lse, C);
  }
  return new Tensor(out, [A, T, C]);
}

/** src (Tk, KV, HS) -> dst (Tk, KV * G, HS): head j of src fills heads j*G .. j*G+G-1 of dst. */
function repeatHeads(src: FloatArray, Tk: number, KV: number, G: number, HS: number, dst: FloatArray): void {
  for (let t = 0; t < Tk; t++) {
    for (let j = 0; j < KV; j++) {
      const from = src.subarray((t * KV + j) * HS, (t * KV + j + 1) * HS);
      for (let g = 0; g < G; g++) dst.set(from, ((t * KV + j) * G + g) * HS);
    }
  }
}

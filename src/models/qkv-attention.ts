// Causal self-attention straight from the fused c_attn output: qkv (B, T, 3C) with columns [q | k | v] in,
// (B, T, C) out, on the backend's attention kernel. The kernel reads q, k and v in place (row stride 3C) and
// backward writes dq, dk and dv interleaved into one (B, T, 3C) gradient, where three `narrow`s would copy them
// out and each allocate a zero-filled (B, T, 3C) buffer to add up. test/models/gpt.test.ts also holds it against
// the composite in float64.

import { backend, type FloatArray } from '../backend/index.js';
import { defineOp, record } from '../tensor/autograd.js';
import { fmt } from '../tensor/shape.js';
import { allocFloat, allocFloatUninit } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';

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

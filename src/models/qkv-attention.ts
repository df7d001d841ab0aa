// Causal self-attention straight from the fused c_attn output: qkv (B, T, 3C) with columns [q | k | v] in,
// (B, T, C) out, on the backend's attention kernel. Forward slices q, k and v out once; backward writes dq, dk
// and dv into one (B, T, 3C) gradient, where three `narrow`s would each allocate a zero-filled (B, T, 3C) buffer
// and add them up. test/models/gpt.test.ts also holds it against the composite in float64.

import { backend, type FloatArray } from '../backend/index.js';
import { defineOp, record } from '../tensor/autograd.js';
import { fmt } from '../tensor/shape.js';
import { allocFloat, allocFloatUninit, recycle } from '../tensor/storage.js';
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
  const src = qkv.storage as FloatArray;
  const q = allocFloatUninit(qkv.dtype, B * T * C); // (B, T, C)
  const k = allocFloatUninit(qkv.dtype, B * T * C);
  const v = allocFloatUninit(qkv.dtype, B * T * C);
  // qkv viewed as (B*T, 3, C): part j is rows' slice j.
  be.sliceCopy(src, B * T, 3, C, 0, 1, q);
  be.sliceCopy(src, B * T, 3, C, 1, 1, k);
  be.sliceCopy(src, B * T, 3, C, 2, 1, v);
  const out = allocFloatUninit(qkv.dtype, B * T * C); // (B, T, C)
  const lse = allocFloat(qkv.dtype, B * heads * T); // (B, NH, T)
  be.attention(q, k, v, B, T, T, heads, HS, true, scale, out, lse);
  return record('qkvAttention', new Tensor(out, [B, T, C]), [qkv], (g) => {
    const dq = allocFloatUninit(qkv.dtype, B * T * C);
    const dk = allocFloatUninit(qkv.dtype, B * T * C);
    const dv = allocFloatUninit(qkv.dtype, B * T * C);
    be.attentionBackward(g.storage as FloatArray, q, k, v, out, lse, B, T, T, heads, HS, true, scale, dq, dk, dv);
    const d = allocFloatUninit(qkv.dtype, qkv.size); // (B, T, 3C)
    be.sliceAssign(dq, B * T, 3, C, 0, 1, d);
    be.sliceAssign(dk, B * T, 3, C, 1, 1, d);
    be.sliceAssign(dv, B * T, 3, C, 2, 1, d);
    for (const buf of [dq, dk, dv]) recycle(buf);
    return [new Tensor(d, qkv.shape)];
  }, [q, k, v]);
});

// Rotary position embeddings (RoPE) in Hugging Face Llama's rotate_half convention: within each head, channel i
// of the first half pairs with channel i of the second half and both turn by the angle pos * theta^(-2i/HS).
// The backward pass is the opposite turn. A KV-cache step passes the position each row starts at.

import { backend, type FloatArray } from '../../backend/index.js';
import { defineOp, record } from '../autograd.js';
import { fmt } from '../shape.js';
import { allocFloatUninit } from '../storage.js';
import { Tensor } from '../tensor.js';
import { requireFloat } from './elementwise.js';

/** Options of rope (rotary position embedding). */
export interface RopeOptions {
  /** Base of the angle frequencies (Llama: 10000; rope_theta in a Hugging Face config). Default 10000. */
  theta?: number;
  /** Position of each row's first token: one number for every row, or one per batch row. Default 0. */
  start?: number | readonly number[];
}

/**
 * Rotates x (B, T, C), C = heads * head size with heads interleaved as a Linear layer writes them, by the
 * position of each token: token t of row b is at start[b] + t. Head size must be even.
 * `rope(q, 4, { theta: 10000 })` is Hugging Face's apply_rotary_pos_emb for q.
 */
export const rope = defineOp('rope', (x: Tensor, heads: number, options: RopeOptions = {}): Tensor => {
  requireFloat(x, 'rope');
  if (x.ndim !== 3) throw new Error(`rope: x must be 3-D (B, T, C), got ${fmt(x.shape)}`);
  const [B, T, C] = x.shape;
  if (!Number.isInteger(heads) || heads <= 0 || C % heads !== 0) throw new Error(`rope: ${C} channels do not split into ${heads} heads`);
  const HS = C / heads;
  if (HS % 2 !== 0) throw new Error(`rope: the head size must be even, got ${HS}`);
  const theta = options.theta ?? 10000;
  if (!(typeof theta === 'number' && Number.isFinite(theta) && theta > 0)) throw new Error(`rope: theta must be a positive number, got ${String(theta)}`);
  const starts = startsOf(options.start ?? 0, B);
  const be = backend();
  const out = allocFloatUninit(x.dtype, x.size); // (B, T, NH, HS)
  be.rope(x.storage as FloatArray, B, T, heads, HS, theta, starts, false, out);
  return record('rope', new Tensor(out, x.shape), [x], (g) => {
    const dx = allocFloatUninit(x.dtype, x.size); // (B, T, NH, HS)
    be.rope(g.storage as FloatArray, B, T, heads, HS, theta, starts, true, dx);
    return [new Tensor(dx, x.shape)];
  });
});

function startsOf(start: number | readonly number[], B: number): Int32Array {
  const list = typeof start === 'number' ? new Array<number>(B).fill(start) : [...start];
  if (list.length !== B) throw new Error(`rope: start has ${list.length} entries but the batch has ${B} rows`);
  for (const s of list) {
    if (!(Number.isInteger(s) && s >= 0 && s <= 0x7fffffff)) throw new Error(`rope: a start position must be a non-negative integer, got ${s}`);
  }
  return Int32Array.from(list);
}

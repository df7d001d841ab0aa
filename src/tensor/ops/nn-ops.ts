// Fused neural-network ops on the backend's fused kernels: softmax, log-softmax, layer norm, embedding,
// dropout, cross-entropy from logits, and multi-head attention. Composed references live in
// ./reference.ts and the tests hold each fused op against its composite.

import { backend, type FloatArray } from '../../backend/index.js';
import { defineOp, isGradEnabled, record } from '../autograd.js';
import { defaultGenerator, type Generator } from '../random.js';
import { fmt, normAxis, sizeOf } from '../shape.js';
import { allocFloat, allocFloatUninit } from '../storage.js';
import { Tensor } from '../tensor.js';
import { requireFloat } from './elementwise.js';
import { indexSelect, transpose } from './shape-ops.js';

function softmaxLike(x: Tensor, dim: number, log: boolean): Tensor {
  const name = log ? 'logSoftmax' : 'softmax';
  requireFloat(x, name);
  if (x.ndim === 0) return softmaxLike(x.reshape([1]), 0, log).reshape([]);
  const a = normAxis(dim, x.ndim, name);
  if (a !== x.ndim - 1) return transpose(softmaxLike(transpose(x, a, -1), -1, log), a, -1);
  const cols = x.shape[a];
  const rows = x.size / Math.max(cols, 1);
  const out = allocFloatUninit(x.dtype, x.size);
  backend().softmax(x.storage as FloatArray, rows, cols, log, out);
  return record(name, new Tensor(out, x.shape), [x], (g) => {
    const dx = allocFloatUninit(x.dtype, x.size);
    backend().softmaxBackward(out, g.storage as FloatArray, rows, cols, log, dx);
    return [new Tensor(dx, x.shape)];
  });
}

/** Softmax of x over dim (default the last). */
export const softmax = defineOp('softmax', (x: Tensor, dim = -1): Tensor => softmaxLike(x, dim, false));
/** Log of the softmax of x over dim (default the last), computed stably. */
export const logSoftmax = defineOp('logSoftmax', (x: Tensor, dim = -1): Tensor => softmaxLike(x, dim, true));

/**
 * Softmax over the last axis, written over x (no graph, no allocation): for inference code that owns its buffer,
 * such as a sampler turning a row of logits into probabilities every token. Returns x.
 */
export function softmax_(x: Tensor): Tensor {
  requireFloat(x, 'softmax_');
  if (x.requiresGrad && isGradEnabled()) throw new Error('softmax_: in place on a tensor that requires grad; use softmax');
  const cols = x.ndim === 0 ? 1 : x.shape[x.ndim - 1];
  backend().softmax(x.storage as FloatArray, x.size / Math.max(cols, 1), cols, false, x.storage as FloatArray);
  return x;
}

const argmaxOut = new Int32Array(1);

/**
 * The greedy pick from logits[0, V) on the backend's arg-max kernel: the first index of the largest value, as the
 * sampler's own loop finds it (which took ~3.5 us a 4096-entry row in JavaScript: most of the JavaScript of a
 * 16-sequence decoding step). The kernel takes the first NaN where the sampler skips NaN: null for such a row,
 * which the caller then scans itself.
 */
export function argmaxRow(logits: Float32Array, V: number): number | null {
  backend().argmax(logits.length === V ? logits : logits.subarray(0, V), 1, V, 1, argmaxOut);
  const id = argmaxOut[0];
  return logits[id] === logits[id] ? id : null;
}

/**
 * One sampling draw on the backend's fused kernel: logits (V) scaled by invTemperature, softmax into scratch (V),
 * top-k (0 off), the token where u of the kept mass falls, or where u2 falls in the nucleus when top-p (1 off)
 * rejects that one; -1 when no logit is finite. null when the backend has no such kernel (the sampler in
 * src/models/sampling.ts then runs its own passes, which the kernel mirrors exactly).
 */
export function sampleFused(logits: FloatArray, V: number, invTemperature: number, topK: number, topP: number, u: number,
  u2: number, scratch: FloatArray): number | null {
  const be = backend();
  return be.sample ? be.sample(logits, V, invTemperature, topK, topP, u, u2, scratch) : null;
}

/**
 * Layer norm over the trailing dims given by normalizedShape (a number means the last dim).
 * weight and bias have normalizedShape, or are null.
 */
export const layerNorm = defineOp('layerNorm', (x: Tensor, normalizedShape: number | readonly number[],
  weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor => {
  requireFloat(x, 'layerNorm');
  const ns = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
  const tail = x.shape.slice(x.ndim - ns.length);
  if (ns.length > x.ndim || ns.some((d, i) => d !== tail[i])) {
    throw new Error(`layerNorm: normalized shape ${fmt(ns)} does not match the end of the input shape ${fmt(x.shape)}`);
  }
  const C = sizeOf(ns);
  for (const [p, name] of [[weight, 'weight'], [bias, 'bias']] as const) {
    if (p && p.size !== C) throw new Error(`layerNorm: ${name} has shape ${fmt(p.shape)}, expected ${fmt(ns)}`);
    if (p && p.dtype !== x.dtype) throw new Error(`layerNorm: ${name} is ${p.dtype} but the input is ${x.dtype}`);
  }
  const rows = C === 0 ? 0 : x.size / C;
  const out = allocFloatUninit(x.dtype, x.size);
  const mean = allocFloat(x.dtype, rows);
  const rstd = allocFloat(x.dtype, rows);
  const w = weight ? (weight.storage as FloatArray) : null;
  const b = bias ? (bias.storage as FloatArray) : null;
  backend().layerNorm(x.storage as FloatArray, w, b, rows, C, eps, out, mean, rstd);
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return record('layerNorm', new Tensor(out, x.shape), inputs, (g) => {
    const dx = allocFloatUninit(x.dtype, x.size);
    const dw = weight?.requiresGrad ? allocFloat(x.dtype, C) : null;
    const db = bias?.requiresGrad ? allocFloat(x.dtype, C) : null;
    backend().layerNormBackward(g.storage as FloatArray, x.storage as FloatArray, w, mean, rstd, rows, C, dx, dw, db);
    const grads: (Tensor | null)[] = [new Tensor(dx, x.shape)];
    if (weight) grads.push(dw ? new Tensor(dw, weight.shape) : null);
    if (bias) grads.push(db ? new Tensor(db, bias.shape) : null);
    return grads;
  });
});

/** Rows of weight (num, dim) picked by int32 indices of any shape; the output has shape [...idx.shape, dim]. */
export const embedding = defineOp('embedding', (idx: Tensor, weight: Tensor): Tensor => {
  if (weight.ndim !== 2) throw new Error(`embedding: weight must be 2-D (num, dim), got ${fmt(weight.shape)}`);
  if (idx.dtype !== 'int32') throw new Error(`embedding: indices must be an int32 tensor, got ${idx.dtype}`);
  return indexSelect(weight, 0, idx.reshape([-1])).reshape([...idx.shape, weight.shape[1]]);
});

/** Zeroes each element with probability p and scales the rest by 1 / (1 - p); identity when not training. */
export const dropout = defineOp('dropout', (x: Tensor, p = 0.5, training = true, generator: Generator = defaultGenerator): Tensor => {
  requireFloat(x, 'dropout');
  if (!(p >= 0 && p <= 1)) throw new Error(`dropout: p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  const mask = allocFloat(x.dtype, x.size);
  const scale = p === 1 ? 0 : 1 / (1 - p);
  for (let i = 0; i < mask.length; i++) mask[i] = generator.uniform() < p ? 0 : scale;
  const m = new Tensor(mask, x.shape);
  const out = allocFloat(x.dtype, x.size);
  backend().binary('mul', x.storage, x.shape, mask, x.shape, out, x.shape);
  return record('dropout', new Tensor(out, x.shape), [x], (g) => [g.mul(m)]);
});

/** Options of crossEntropy. */
export interface CrossEntropyOptions {
  /** Target value whose rows count neither in the loss nor in the mean's denominator. Default -100. */
  ignoreIndex?: number;
  /** Mixes the one-hot target with the uniform distribution: (1 - s) one-hot + s / C. Default 0. */
  labelSmoothing?: number;
  /** 'mean' over non-ignored targets (default), 'sum', or 'none' for one loss per target. */
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * Softmax cross-entropy from logits (N, C) or (N, C, d1, ...) against int32 class indices (N) or (N, d1, ...),
 * fused: the probabilities are never stored, only one log-sum-exp per row.
 */
export const crossEntropy = defineOp('crossEntropy', (logits: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor => {
  requireFloat(logits, 'crossEntropy');
  const { ignoreIndex = -100, labelSmoothing = 0, reduction = 'mean' } = options;
  if (target.dtype !== 'int32') throw new Error(`crossEntropy: target must hold int32 class indices, got ${target.dtype}`);
  if (!(labelSmoothing >= 0 && labelSmoothing <= 1)) throw new Error(`crossEntropy: labelSmoothing must be in [0, 1], got ${labelSmoothing}`);
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none') {
    throw new Error(`crossEntropy: reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
  }
  // Classes along dim 1 for rank > 2, as in PyTorch: move them last.
  const x = logits.ndim > 2 ? logits.permute([0, ...range(2, logits.ndim), 1]) : logits.ndim === 1 ? logits.unsqueeze(0) : logits;
  const expectedTarget = logits.ndim === 1 ? [] : [logits.shape[0], ...logits.shape.slice(2)];
  if (target.ndim !== expectedTarget.length || target.shape.some((d, i) => d !== expectedTarget[i])) {
    throw new Error(`crossEntropy: target shape ${fmt(target.shape)} does not match logits ${fmt(logits.shape)} ` +
      `(expected ${fmt(expectedTarget)})`);
  }
  const V = x.shape[x.ndim - 1];
  const N = x.size / Math.max(V, 1);
  const tg = target.storage as Int32Array;
  for (let i = 0; i < N; i++) {
    if (tg[i] !== ignoreIndex && (tg[i] < 0 || tg[i] >= V)) {
      throw new Error(`crossEntropy: target ${tg[i]} at position ${i} is not a class index in [0, ${V})`);
    }
  }
  const losses = allocFloat(x.dtype, N);
  const lse = allocFloat(x.dtype, N);
  backend().crossEntropy(x.storage as FloatArray, tg, N, V, ignoreIndex, labelSmoothing, losses, lse);
  let count = 0;
  for (let i = 0; i < N; i++) if (tg[i] !== ignoreIndex) count++;
  let out: Tensor;
  if (reduction === 'none') {
    out = new Tensor(losses, target.shape);
  } else {
    let s = 0;
    for (let i = 0; i < N; i++) s += losses[i];
    const v = allocFloat(x.dtype, 1);
    v[0] = reduction === 'sum' ? s : s / count;
    out = new Tensor(v, []);
  }
  return record('crossEntropy', out, [logits], (g) => {
    const dl = allocFloat(x.dtype, N);
    const gs = g.storage as FloatArray;
    if (reduction === 'none') dl.set(gs);
    else dl.fill(reduction === 'sum' ? gs[0] : gs[0] / count);
    const dx = allocFloatUninit(x.dtype, x.size); // every row written (0 for ignored ones)
    backend().crossEntropyBackward(x.storage as FloatArray, tg, lse, dl, N, V, ignoreIndex, labelSmoothing, dx);
    const d = new Tensor(dx, x.shape);
    if (logits.ndim > 2) return [d.permute([0, logits.ndim - 1, ...range(1, logits.ndim - 1)])];
    return [d.reshape(logits.shape)];
  });
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** Options of the attention ops. */
export interface AttentionOptions {
  /** Number of attention heads; C must divide by it. */
  heads: number;
  /** Each query sees only keys at its position or before (aligned at the end when Tk > Tq). Default true. */
  causal?: boolean;
  /** Score scale; default 1 / sqrt(head size). */
  scale?: number;
}

/**
 * Multi-head scaled dot-product attention with heads interleaved in the channel axis, as a Linear layer writes
 * them: q (B, Tq, C), k and v (B, Tk, C), C = heads * headSize; the output is (B, Tq, C). No permutes needed.
 */
export const attention = defineOp('attention', (q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor => {
  for (const [t, n] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) {
    requireFloat(t, 'attention');
    if (t.ndim !== 3) throw new Error(`attention: ${n} must be 3-D (B, T, C), got ${fmt(t.shape)}`);
  }
  const [B, Tq, C] = q.shape;
  const Tk = k.shape[1];
  if (k.shape[0] !== B || k.shape[2] !== C || v.shape[0] !== B || v.shape[1] !== Tk || v.shape[2] !== C) {
    throw new Error(`attention: q ${fmt(q.shape)}, k ${fmt(k.shape)} and v ${fmt(v.shape)} do not fit together`);
  }
  const NH = options.heads;
  if (!Number.isInteger(NH) || NH <= 0 || C % NH !== 0) throw new Error(`attention: ${C} channels do not split into ${NH} heads`);
  const HS = C / NH;
  const causal = options.causal ?? true;
  if (causal && Tq > Tk) throw new Error(`attention: causal attention needs at least as many keys (${Tk}) as queries (${Tq})`);
  const scale = options.scale ?? 1 / Math.sqrt(HS);
  const out = allocFloatUninit(q.dtype, q.size);
  const lse = allocFloat(q.dtype, B * NH * Tq);
  const [qs, ks, vs] = [q.storage, k.storage, v.storage] as FloatArray[];
  backend().attention(qs, ks, vs, B, Tq, Tk, NH, HS, causal, scale, out, lse);
  return record('attention', new Tensor(out, q.shape), [q, k, v], (g) => {
    const dq = allocFloatUninit(q.dtype, q.size);
    const dk = allocFloatUninit(q.dtype, k.size);
    const dv = allocFloatUninit(q.dtype, v.size);
    backend().attentionBackward(g.storage as FloatArray, qs, ks, vs, out, lse, B, Tq, Tk, NH, HS, causal, scale, dq, dk, dv);
    return [new Tensor(dq, q.shape), new Tensor(dk, k.shape), new Tensor(dv, v.shape)];
  });
});

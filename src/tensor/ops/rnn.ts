// Recurrences over whole sequences: one differentiable op per layer and direction, with its own backward through
// time. The input projection x W_ih^T + b_ih of every step is one GEMM done before (by `linear`); each step here is
// one GEMM for the recurrent product plus one fused pointwise kernel (backend lstmCell / gruCell), and the weight
// gradient is one GEMM over all steps at the end. So the autograd tape holds one node per sequence, not per step.
// Sequences are time-major: xproj (T, B, G * H) with G gates. Gate order is PyTorch's (LSTM i, f, g, o; GRU r, z, n).

import { backend, type FloatArray } from '../../backend/index.js';
import { defineOp, record } from '../autograd.js';
import { fmt } from '../shape.js';
import { allocationScopeOpen, allocFloat, allocFloatUninit, fillRows, recycle as poolRecycle } from '../storage.js';
import { Tensor } from '../tensor.js';
import { requireFloat } from './elementwise.js';

/** The nonlinearity of a plain (Elman) RNN. */
export type RnnNonlinearity = 'tanh' | 'relu';

interface Dims { T: number; B: number; H: number; G: number }

function sameShape(t: Tensor, shape: readonly number[]): boolean {
  return t.ndim === shape.length && t.shape.every((d, i) => d === shape[i]);
}

/** Checks the operands of a sequence op with G gates and returns its dimensions. */
function checkOperands(op: string, G: number, xproj: Tensor, weightHh: Tensor, biasHh: Tensor | null, h0: Tensor,
  c0: Tensor | null): Dims {
  requireFloat(xproj, op);
  if (weightHh.ndim !== 2 || weightHh.shape[0] % G !== 0 || weightHh.shape[0] / G !== weightHh.shape[1]) {
    throw new Error(`${op}: weightHh must have shape (${G} * hidden, hidden), got ${fmt(weightHh.shape)}`);
  }
  const H = weightHh.shape[1];
  if (xproj.ndim !== 3 || xproj.shape[2] !== G * H) {
    throw new Error(`${op}: xproj must have shape (T, B, ${G * H}), got ${fmt(xproj.shape)}`);
  }
  const [T, B] = xproj.shape;
  if (T < 1 || B < 1) throw new Error(`${op}: the sequence length and batch must be at least 1, got ${fmt(xproj.shape)}`);
  if (biasHh && !sameShape(biasHh, [G * H])) throw new Error(`${op}: biasHh must have shape (${G * H}), got ${fmt(biasHh.shape)}`);
  if (!sameShape(h0, [B, H])) throw new Error(`${op}: h0 must have shape (${B}, ${H}), got ${fmt(h0.shape)}`);
  if (c0 && !sameShape(c0, [B, H])) throw new Error(`${op}: c0 must have shape (${B}, ${H}), got ${fmt(c0.shape)}`);
  for (const [name, t] of [['weightHh', weightHh], ['biasHh', biasHh], ['h0', h0], ['c0', c0]] as const) {
    if (t && t.dtype !== xproj.dtype) throw new Error(`${op}: ${name} is ${t.dtype} but xproj is ${xproj.dtype}`);
  }
  return { T, B, H, G };
}

/**
 * Gives a private buffer back to the pool, except while an allocationScope is open: the scope hands back everything
 * allocated inside it itself, and a buffer in the pool twice would end up behind two tensors.
 */
function recycle(buf: FloatArray): void {
  if (!allocationScopeOpen()) poolRecycle(buf);
}

/** Row block i of n elements: buf[i * n, (i + 1) * n). */
const at = (buf: FloatArray, i: number, n: number): FloatArray => buf.subarray(i * n, (i + 1) * n);
/** The time index of step s, and of the step before it. */
const timeOf = (s: number, T: number, reverse: boolean): number => (reverse ? T - 1 - s : s);
const prevOf = (t: number, reverse: boolean): number => (reverse ? t + 1 : t - 1);

/**
 * gates (T*B, G*H) = xproj + the bias on every row: a new buffer, or xproj's own storage when the caller owns
 * xproj (an nn layer's input projection, which nothing else reads: linear's backward does not need its output).
 */
function withBias(xproj: Tensor, bias: Tensor | null, d: Dims, owned: boolean): FloatArray {
  const rows = d.T * d.B;
  const x = xproj.storage as FloatArray;
  const out = owned ? x : allocFloatUninit(xproj.dtype, xproj.size); // (T, B, G*H)
  if (bias) backend().binary('add', x, [rows, d.G * d.H], bias.storage, [1, d.G * d.H], out, [rows, d.G * d.H]);
  else if (!owned) out.set(x);
  return out;
}

/**
 * dW (G*H, H) = sum over t of dgates_t^T h_{t-1}: one GEMM over the steps whose previous state is an output row
 * of hs (T, B, H), plus one for the step that started from h0.
 */
function weightGrad(dgates: FloatArray, hs: FloatArray, h0: FloatArray, d: Dims, reverse: boolean, dtype: Tensor['dtype']): FloatArray {
  const { T, B, H, G } = d;
  const GH = G * H;
  const dW = allocFloatUninit(dtype, GH * H); // (G*H, H)
  const first = reverse ? T - 1 : 0;
  // The usual zero initial state adds nothing: skip its product (a K = B GEMM that costs more than its size says).
  const h0Zero = h0.every((v) => v === 0);
  if (T > 1) {
    const dg = reverse ? dgates.subarray(0, (T - 1) * B * GH) : dgates.subarray(B * GH); // (T-1, B, G*H)
    const hp = reverse ? hs.subarray(B * H, T * B * H) : hs.subarray(0, (T - 1) * B * H); // (T-1, B, H)
    backend().gemm(true, false, 1, GH, H, (T - 1) * B, 1, dg, 0, hp, 0, 0, dW, 0);
  }
  if (T === 1 || !h0Zero) backend().gemm(true, false, 1, GH, H, B, 1, at(dgates, first, B * GH), 0, h0, 0, T > 1 ? 1 : 0, dW, 0);
  return dW;
}

/** Column sums of d (rows, n): the bias gradient. */
function biasGrad(d: FloatArray, rows: number, n: number, dtype: Tensor['dtype']): FloatArray {
  const db = allocFloatUninit(dtype, n); // (n)
  backend().reduce('sum', d, 1, rows, n, db);
  return db;
}

/** The gradients of the op's inputs in inputsOf order (no entry for an absent bias), null where none is needed. */
function grads(xproj: Tensor, dx: FloatArray, weightHh: Tensor, dW: () => FloatArray, biasHh: Tensor | null,
  db: () => FloatArray, h0: Tensor, dh0: () => FloatArray, c0?: Tensor, dc0?: () => FloatArray): (Tensor | null)[] {
  const out: (Tensor | null)[] = [
    xproj.requiresGrad ? new Tensor(dx, xproj.shape) : null,
    weightHh.requiresGrad ? new Tensor(dW(), weightHh.shape) : null,
  ];
  if (biasHh) out.push(biasHh.requiresGrad ? new Tensor(db(), biasHh.shape) : null);
  out.push(h0.requiresGrad ? new Tensor(dh0(), h0.shape) : null);
  if (c0 && dc0) out.push(c0.requiresGrad ? new Tensor(dc0(), c0.shape) : null);
  return out;
}

/**
 * The op's output, after giving its private saved buffers back to the pool at once when nothing was recorded
 * (inference, noGrad): the release hook of its node would otherwise never run.
 */
function recordFreeing(out: Tensor, release: () => void): Tensor {
  if (!out.node) release();
  return out;
}

const inputsOf = (...ts: (Tensor | null)[]): Tensor[] => ts.filter((t): t is Tensor => t !== null);

/**
 * An LSTM layer over a whole sequence, time-major. xproj (T, B, 4H) = x W_ih^T + b_ih for every step;
 * weightHh (4H, H); biasHh (4H) or null; h0, c0 (B, H). Returns (T + 1, B, H): rows 0 .. T-1 are h_t in time
 * order, row T is the final cell state. reverse runs from t = T-1 down to 0 (the backward direction).
 */
export const lstmSequence = defineOp('lstmSequence', (xproj: Tensor, weightHh: Tensor, biasHh: Tensor | null,
  h0: Tensor, c0: Tensor, reverse = false): Tensor => lstmImpl(xproj, weightHh, biasHh, h0, c0, reverse, false));

/**
 * lstmSequence for the nn layers, which own xproj: its storage becomes the gates buffer (no copy), so the caller
 * must not read xproj afterwards.
 */
export function lstmSequenceOwned(xproj: Tensor, weightHh: Tensor, biasHh: Tensor | null, h0: Tensor, c0: Tensor,
  reverse: boolean): Tensor {
  return lstmImpl(xproj, weightHh, biasHh, h0, c0, reverse, true);
}

function lstmImpl(xproj: Tensor, weightHh: Tensor, biasHh: Tensor | null, h0: Tensor, c0: Tensor, reverse: boolean,
  owned: boolean): Tensor {
  const d = checkOperands('lstmSequence', 4, xproj, weightHh, biasHh, h0, c0);
  const { T, B, H } = d;
  const be = backend();
  const dt = xproj.dtype;
  const step = B * 4 * H;
  const hs = B * H;
  const W = weightHh.storage as FloatArray; // (4H, H)
  const gates = withBias(xproj, biasHh, d, owned); // (T, B, 4H): pre-activations, then activations
  const y = allocFloatUninit(dt, (T + 1) * hs); // (T + 1, B, H)
  const cs = allocFloatUninit(dt, T * hs); // (T, B, H)
  for (let s = 0; s < T; s++) {
    const t = timeOf(s, T, reverse);
    const p = prevOf(t, reverse);
    const hPrev = s === 0 ? (h0.storage as FloatArray) : at(y, p, hs);
    const cPrev = s === 0 ? (c0.storage as FloatArray) : at(cs, p, hs);
    const gt = at(gates, t, step);
    be.gemm(false, true, 1, B, 4 * H, H, 1, hPrev, 0, W, 0, 1, gt, 0);
    be.lstmCell(gt, cPrev, B, H, at(cs, t, hs), at(y, t, hs));
  }
  y.set(at(cs, timeOf(T - 1, T, reverse), hs), T * hs);
  const out = new Tensor(y, [T + 1, B, H]);
  const scoped = allocationScopeOpen(); // the scope, if any, frees the forward's buffers itself
  const release = (): void => { if (scoped) return; recycle(cs); if (!owned) recycle(gates); };
  return recordFreeing(record('lstmSequence', out, inputsOf(xproj, weightHh, biasHh, h0, c0), (g) => {
    const gy = g.storage as FloatArray; // (T + 1, B, H)
    const dgates = allocFloatUninit(dt, T * step); // (T, B, 4H)
    const dh = allocFloatUninit(dt, hs); // (B, H): dLoss/dh_t of the current step
    const dc = allocFloatUninit(dt, hs); // (B, H): dLoss/dc_t, then dLoss/dc_{t-1}
    dh.set(at(gy, timeOf(T - 1, T, reverse), hs));
    dc.set(at(gy, T, hs));
    let dh0: FloatArray | null = null;
    for (let s = T - 1; s >= 0; s--) {
      const t = timeOf(s, T, reverse);
      const p = prevOf(t, reverse);
      const cPrev = s === 0 ? (c0.storage as FloatArray) : at(cs, p, hs);
      const dgt = at(dgates, t, step);
      be.lstmCellBackward(at(gates, t, step), cPrev, at(cs, t, hs), dh, dc, B, H, dgt);
      if (s > 0) {
        dh.set(at(gy, p, hs));
        be.gemm(false, false, 1, B, H, 4 * H, 1, dgt, 0, W, 0, 1, dh, 0);
      } else if (h0.requiresGrad) {
        dh0 = allocFloatUninit(dt, hs);
        be.gemm(false, false, 1, B, H, 4 * H, 1, dgt, 0, W, 0, 0, dh0, 0);
      }
    }
    const out = grads(xproj, dgates, weightHh, () => weightGrad(dgates, y, h0.storage as FloatArray, d, reverse, dt),
      biasHh, () => biasGrad(dgates, T * B, 4 * H, dt), h0, () => dh0!, c0, () => dc);
    recycle(dh);
    if (!c0.requiresGrad) recycle(dc);
    if (!xproj.requiresGrad) recycle(dgates);
    return out;
  }, release), release);
}

/**
 * A GRU layer over a whole sequence, time-major. xproj (T, B, 3H) = x W_ih^T + b_ih for every step;
 * weightHh (3H, H); biasHh (3H) or null; h0 (B, H). Returns h_t for every step, (T, B, H), in time order.
 */
export const gruSequence = defineOp('gruSequence', (xproj: Tensor, weightHh: Tensor, biasHh: Tensor | null,
  h0: Tensor, reverse = false): Tensor => gruImpl(xproj, weightHh, biasHh, h0, reverse, false));

/** gruSequence for the nn layers, which own xproj: its storage becomes the gate buffer (no copy). */
export function gruSequenceOwned(xproj: Tensor, weightHh: Tensor, biasHh: Tensor | null, h0: Tensor, reverse: boolean): Tensor {
  return gruImpl(xproj, weightHh, biasHh, h0, reverse, true);
}

function gruImpl(xproj: Tensor, weightHh: Tensor, biasHh: Tensor | null, h0: Tensor, reverse: boolean, owned: boolean): Tensor {
  const d = checkOperands('gruSequence', 3, xproj, weightHh, biasHh, h0, null);
  const { T, B, H } = d;
  const be = backend();
  const dt = xproj.dtype;
  const step = B * 3 * H;
  const hs = B * H;
  const W = weightHh.storage as FloatArray; // (3H, H)
  const gx = withBias(xproj, null, d, owned); // (T, B, 3H): x part, then activations r, z, n
  const gh = allocFloatUninit(dt, T * step); // (T, B, 3H): h W_hh^T + b_hh
  if (biasHh) fillRows(gh, biasHh.storage as FloatArray, T * B);
  const y = allocFloatUninit(dt, T * hs); // (T, B, H)
  for (let s = 0; s < T; s++) {
    const t = timeOf(s, T, reverse);
    const hPrev = s === 0 ? (h0.storage as FloatArray) : at(y, prevOf(t, reverse), hs);
    const ght = at(gh, t, step);
    be.gemm(false, true, 1, B, 3 * H, H, 1, hPrev, 0, W, 0, biasHh ? 1 : 0, ght, 0);
    be.gruCell(at(gx, t, step), ght, hPrev, B, H, at(y, t, hs));
  }
  const out = new Tensor(y, [T, B, H]);
  const scoped = allocationScopeOpen(); // the scope, if any, frees the forward's buffers itself
  const release = (): void => { if (scoped) return; recycle(gh); if (!owned) recycle(gx); };
  return recordFreeing(record('gruSequence', out, inputsOf(xproj, weightHh, biasHh, h0), (g) => {
    const gy = g.storage as FloatArray; // (T, B, H)
    const dgx = allocFloatUninit(dt, T * step); // (T, B, 3H)
    const dgh = allocFloatUninit(dt, T * step); // (T, B, 3H)
    const dh = allocFloatUninit(dt, hs); // (B, H)
    const dhp = allocFloatUninit(dt, hs); // (B, H)
    dh.set(at(gy, timeOf(T - 1, T, reverse), hs));
    for (let s = T - 1; s >= 0; s--) {
      const t = timeOf(s, T, reverse);
      const p = prevOf(t, reverse);
      const hPrev = s === 0 ? (h0.storage as FloatArray) : at(y, p, hs);
      const dght = at(dgh, t, step);
      be.gruCellBackward(at(gx, t, step), at(gh, t, step), hPrev, dh, B, H, at(dgx, t, step), dght, dhp);
      if (s === 0 && !h0.requiresGrad) break;
      be.gemm(false, false, 1, B, H, 3 * H, 1, dght, 0, W, 0, 1, dhp, 0);
      if (s > 0) be.binary('add', at(gy, p, hs), [hs], dhp, [hs], dh, [hs]);
    }
    const out = grads(xproj, dgx, weightHh, () => weightGrad(dgh, y, h0.storage as FloatArray, d, reverse, dt),
      biasHh, () => biasGrad(dgh, T * B, 3 * H, dt), h0, () => dhp);
    recycle(dgh);
    recycle(dh);
    if (!xproj.requiresGrad) recycle(dgx);
    if (!h0.requiresGrad) recycle(dhp);
    return out;
  }, release), release);
}

/**
 * A plain (Elman) RNN layer over a whole sequence, time-major: h_t = act(xproj_t + h_{t-1} W_hh^T + b_hh).
 * xproj (T, B, H); weightHh (H, H); biasHh (H) or null; h0 (B, H). Returns h_t for every step, (T, B, H).
 */
export const rnnSequence = defineOp('rnnSequence', (xproj: Tensor, weightHh: Tensor, biasHh: Tensor | null,
  h0: Tensor, nonlinearity: RnnNonlinearity = 'tanh', reverse = false): Tensor =>
  rnnImpl(xproj, weightHh, biasHh, h0, nonlinearity, reverse, false));

/** rnnSequence for the nn layers, which own xproj: its storage holds the pre-activations (no copy). */
export function rnnSequenceOwned(xproj: Tensor, weightHh: Tensor, biasHh: Tensor | null, h0: Tensor,
  nonlinearity: RnnNonlinearity, reverse: boolean): Tensor {
  return rnnImpl(xproj, weightHh, biasHh, h0, nonlinearity, reverse, true);
}

function rnnImpl(xproj: Tensor, weightHh: Tensor, biasHh: Tensor | null, h0: Tensor, nonlinearity: RnnNonlinearity,
  reverse: boolean, owned: boolean): Tensor {
  if (nonlinearity !== 'tanh' && nonlinearity !== 'relu') {
    throw new Error(`rnnSequence: nonlinearity must be 'tanh' or 'relu', got '${String(nonlinearity)}'`);
  }
  const d = checkOperands('rnnSequence', 1, xproj, weightHh, biasHh, h0, null);
  const { T, B, H } = d;
  const be = backend();
  const dt = xproj.dtype;
  const hs = B * H;
  const W = weightHh.storage as FloatArray; // (H, H)
  const pre = withBias(xproj, biasHh, d, owned); // (T, B, H): pre-activations
  const y = allocFloatUninit(dt, T * hs); // (T, B, H)
  for (let s = 0; s < T; s++) {
    const t = timeOf(s, T, reverse);
    const hPrev = s === 0 ? (h0.storage as FloatArray) : at(y, prevOf(t, reverse), hs);
    const pt = at(pre, t, hs);
    be.gemm(false, true, 1, B, H, H, 1, hPrev, 0, W, 0, 1, pt, 0);
    be.unary(nonlinearity, pt, at(y, t, hs));
  }
  const out = new Tensor(y, [T, B, H]);
  const scoped = allocationScopeOpen(); // the scope, if any, frees the forward's buffers itself
  const release = (): void => { if (scoped) return; if (!owned) recycle(pre); };
  return recordFreeing(record('rnnSequence', out, inputsOf(xproj, weightHh, biasHh, h0), (g) => {
    const gy = g.storage as FloatArray; // (T, B, H)
    const dpre = allocFloatUninit(dt, T * hs); // (T, B, H)
    const dh = allocFloat(dt, hs); // (B, H)
    dh.set(at(gy, timeOf(T - 1, T, reverse), hs));
    for (let s = T - 1; s >= 0; s--) {
      const t = timeOf(s, T, reverse);
      const p = prevOf(t, reverse);
      const dpt = at(dpre, t, hs);
      be.unaryBackward(nonlinearity, at(pre, t, hs), at(y, t, hs), dh, dpt);
      if (s === 0 && !h0.requiresGrad) break;
      if (s > 0) dh.set(at(gy, p, hs));
      be.gemm(false, false, 1, B, H, H, 1, dpt, 0, W, 0, s > 0 ? 1 : 0, dh, 0);
    }
    const out = grads(xproj, dpre, weightHh, () => weightGrad(dpre, y, h0.storage as FloatArray, d, reverse, dt),
      biasHh, () => biasGrad(dpre, T * B, H, dt), h0, () => dh);
    if (!h0.requiresGrad) recycle(dh);
    if (!xproj.requiresGrad) recycle(dpre);
    return out;
  }, release), release);
}

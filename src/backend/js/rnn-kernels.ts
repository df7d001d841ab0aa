// Reference kernels of the recurrent cells: the pointwise part of one LSTM or GRU time step (the gate
// activations and the state update) and its backward. The matrix products around them are plain GEMMs; the
// native backend runs the same arithmetic in native/rnn.c. Gate order is PyTorch's: LSTM i, f, g, o; GRU r, z, n.

import type { FloatArray } from '../backend.js';

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/**
 * One LSTM step. gates (B, 4H): pre-activations in, activations (i, f, g, o) out, in place; cPrev (B, H);
 * c, h (B, H) are written: c = f * cPrev + i * g, h = o * tanh(c).
 */
export function lstmCell(gates: FloatArray, cPrev: FloatArray, B: number, H: number, c: FloatArray, h: FloatArray): void {
  for (let b = 0; b < B; b++) {
    const g0 = b * 4 * H;
    const s0 = b * H;
    for (let j = 0; j < H; j++) {
      const i = sigmoid(gates[g0 + j]);
      const f = sigmoid(gates[g0 + H + j]);
      const g = Math.tanh(gates[g0 + 2 * H + j]);
      const o = sigmoid(gates[g0 + 3 * H + j]);
      gates[g0 + j] = i;
      gates[g0 + H + j] = f;
      gates[g0 + 2 * H + j] = g;
      gates[g0 + 3 * H + j] = o;
      const cv = f * cPrev[s0 + j] + i * g;
      c[s0 + j] = cv;
      h[s0 + j] = o * Math.tanh(cv);
    }
  }
}

/**
 * Backward of lstmCell. gates (B, 4H) activations; cPrev, c, dh (B, H); dc (B, H) holds dLoss/dc from later steps
 * on entry and dLoss/dcPrev on return (in place); dgates (B, 4H) gets the gradient of the pre-activations.
 */
export function lstmCellBackward(gates: FloatArray, cPrev: FloatArray, c: FloatArray, dh: FloatArray, dc: FloatArray,
  B: number, H: number, dgates: FloatArray): void {
  for (let b = 0; b < B; b++) {
    const g0 = b * 4 * H;
    const s0 = b * H;
    for (let j = 0; j < H; j++) {
      const i = gates[g0 + j];
      const f = gates[g0 + H + j];
      const g = gates[g0 + 2 * H + j];
      const o = gates[g0 + 3 * H + j];
      const tc = Math.tanh(c[s0 + j]);
      const dhv = dh[s0 + j];
      const dcv = dc[s0 + j] + dhv * o * (1 - tc * tc);
      dgates[g0 + j] = dcv * g * i * (1 - i);
      dgates[g0 + H + j] = dcv * cPrev[s0 + j] * f * (1 - f);
      dgates[g0 + 2 * H + j] = dcv * i * (1 - g * g);
      dgates[g0 + 3 * H + j] = dhv * tc * o * (1 - o);
      dc[s0 + j] = dcv * f;
    }
  }
}

/**
 * One GRU step. gx (B, 3H): x W_ih^T + b_ih in, activations (r, z, n) out, in place; gh (B, 3H) = h W_hh^T + b_hh;
 * hPrev (B, H); h (B, H) is written: r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r * h_n),
 * h = (1 - z) * n + z * hPrev.
 */
export function gruCell(gx: FloatArray, gh: FloatArray, hPrev: FloatArray, B: number, H: number, h: FloatArray): void {
  for (let b = 0; b < B; b++) {
    const g0 = b * 3 * H;
    const s0 = b * H;
    for (let j = 0; j < H; j++) {
      const r = sigmoid(gx[g0 + j] + gh[g0 + j]);
      const z = sigmoid(gx[g0 + H + j] + gh[g0 + H + j]);
      const n = Math.tanh(gx[g0 + 2 * H + j] + r * gh[g0 + 2 * H + j]);
      gx[g0 + j] = r;
      gx[g0 + H + j] = z;
      gx[g0 + 2 * H + j] = n;
      h[s0 + j] = (1 - z) * n + z * hPrev[s0 + j];
    }
  }
}

/**
 * Backward of gruCell. gates (B, 3H) activations r, z, n; gh (B, 3H) and hPrev, dh (B, H) as in the forward step.
 * Written: dgx (B, 3H) and dgh (B, 3H), the gradients of gx and gh, and dhPrev (B, H), the direct part dh * z
 * (the caller adds dgh @ W_hh).
 */
export function gruCellBackward(gates: FloatArray, gh: FloatArray, hPrev: FloatArray, dh: FloatArray, B: number,
  H: number, dgx: FloatArray, dgh: FloatArray, dhPrev: FloatArray): void {
  for (let b = 0; b < B; b++) {
    const g0 = b * 3 * H;
    const s0 = b * H;
    for (let j = 0; j < H; j++) {
      const r = gates[g0 + j];
      const z = gates[g0 + H + j];
      const n = gates[g0 + 2 * H + j];
      const dhv = dh[s0 + j];
      const dn = dhv * (1 - z) * (1 - n * n);
      const dz = dhv * (hPrev[s0 + j] - n) * z * (1 - z);
      const dr = dn * gh[g0 + 2 * H + j] * r * (1 - r);
      dgx[g0 + j] = dr;
      dgx[g0 + H + j] = dz;
      dgx[g0 + 2 * H + j] = dn;
      dgh[g0 + j] = dr;
      dgh[g0 + H + j] = dz;
      dgh[g0 + 2 * H + j] = dn * r;
      dhPrev[s0 + j] = dhv * z;
    }
  }
}

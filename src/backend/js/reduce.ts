// Reference reductions over the middle axis of an (outer, dim, inner) view, and arg-max.

import type { AnyArray, ReduceOp } from '../backend.js';

export function reduce(op: ReduceOp, x: AnyArray, outer: number, dim: number, inner: number, out: AnyArray): void {
  for (let o = 0; o < outer; o++) {
    const base = o * dim * inner;
    const ob = o * inner;
    if (op === 'sum') {
      for (let i = 0; i < inner; i++) out[ob + i] = 0;
      for (let d = 0; d < dim; d++) {
        const row = base + d * inner;
        for (let i = 0; i < inner; i++) out[ob + i] += x[row + i];
      }
    } else {
      const isMax = op === 'max';
      for (let i = 0; i < inner; i++) out[ob + i] = isMax ? -Infinity : Infinity;
      for (let d = 0; d < dim; d++) {
        const row = base + d * inner;
        for (let i = 0; i < inner; i++) {
          const v = x[row + i];
          const cur = out[ob + i];
          // NaN wins, as in PyTorch.
          if (v !== v || (isMax ? v > cur : v < cur)) out[ob + i] = v;
        }
      }
    }
  }
}

export function argmax(x: AnyArray, outer: number, dim: number, inner: number, out: Int32Array): void {
  for (let o = 0; o < outer; o++) {
    const base = o * dim * inner;
    for (let i = 0; i < inner; i++) {
      let best = -Infinity;
      let bi = 0;
      for (let d = 0; d < dim; d++) {
        const v = x[base + d * inner + i];
        if (v > best || (v !== v && best === best)) { best = v; bi = d; }
        if (v !== v) break;
      }
      out[o * inner + i] = bi;
    }
  }
}

// Readable printing in PyTorch's style, with long dimensions summarised.

import { isFloat } from './storage.js';
import type { Tensor } from './tensor.js';

const EDGE = 3;
const MAX_FULL = 1000;

export function formatTensor(t: Tensor): string {
  const vals = t.storage;
  const float = isFloat(t.dtype);
  let allInt = true;
  let maxAbs = 0;
  for (let i = 0; i < Math.min(vals.length, 10000); i++) {
    if (!Number.isInteger(vals[i])) allInt = false;
    if (Number.isFinite(vals[i])) maxAbs = Math.max(maxAbs, Math.abs(vals[i]));
  }
  const sci = float && (maxAbs >= 1e8 || (maxAbs > 0 && maxAbs < 1e-4));
  const num = (v: number): string => {
    if (!float) return String(v);
    if (!Number.isFinite(v)) return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
    if (sci) return v.toExponential(4);
    return allInt ? `${v}.` : v.toFixed(4);
  };
  const summarise = t.size > MAX_FULL;
  const strides: number[] = [];
  let s = 1;
  for (let d = t.ndim - 1; d >= 0; d--) { strides[d] = s; s *= t.shape[d]; }
  const render = (dim: number, offset: number, indent: string): string => {
    if (dim === t.ndim) return num(vals[offset]);
    const n = t.shape[dim];
    const idx = summarise && n > 2 * EDGE
      ? [...Array.from({ length: EDGE }, (_, i) => i), -1, ...Array.from({ length: EDGE }, (_, i) => n - EDGE + i)]
      : Array.from({ length: n }, (_, i) => i);
    const parts = idx.map((i) => (i === -1 ? '...' : render(dim + 1, offset + i * strides[dim], `${indent} `)));
    const sep = dim === t.ndim - 1 ? ', ' : `,${'\n'.repeat(t.ndim - dim - 1)}${indent} `;
    return `[${parts.join(sep)}]`;
  };
  const extras: string[] = [];
  if (t.dtype !== 'float32') extras.push(`dtype=${t.dtype}`);
  if (t.requiresGrad) extras.push(t.node ? `grad_fn=${t.node.op}` : 'requiresGrad=true');
  const body = render(0, 0, '       ');
  return `tensor(${body}${extras.length ? `, ${extras.join(', ')}` : ''})`;
}

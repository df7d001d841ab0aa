// Shape and indexing ops: reshape (a view sharing storage), permute/transpose (copies), expand, narrow/slice,
// cat/stack/split, indexSelect and gather. Tensors stay contiguous; kernels never see strides.

import { backend, type FloatArray } from '../../backend/index.js';
import { defineOp, markShared, record } from '../autograd.js';
import { around, fmt, inferShape, normAxis, sizeOf } from '../shape.js';
import { alloc } from '../storage.js';
import { Tensor } from '../tensor.js';
import { sumTo } from './elementwise.js';

/** The values of x in a new shape (one dimension may be -1); shares storage. */
export const reshape = defineOp('reshape', (x: Tensor, shape: readonly number[]): Tensor => {
  const target = inferShape(shape, x.size, 'reshape', x.shape);
  const out = new Tensor(x.storage, target);
  markShared(x, out);
  return record('reshape', out, [x], (g) => [g.reshape(x.shape)]);
});

/** Dimensions startDim..endDim of x merged into one. */
export function flatten(x: Tensor, startDim = 0, endDim = -1): Tensor {
  if (x.ndim === 0) return x.reshape([1]);
  const s = normAxis(startDim, x.ndim, 'flatten');
  const e = normAxis(endDim, x.ndim, 'flatten');
  if (s > e) throw new Error(`flatten: startDim ${startDim} comes after endDim ${endDim}`);
  return x.reshape([...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

/** Dimensions of x reordered (a copy): result dimension i is x's dims[i]. */
export const permute = defineOp('permute', (x: Tensor, dims: readonly number[]): Tensor => {
  if (dims.length !== x.ndim) throw new Error(`permute: expected ${x.ndim} axes for shape ${fmt(x.shape)}, got [${dims.join(', ')}]`);
  const perm = dims.map((d) => normAxis(d, x.ndim, 'permute'));
  if (new Set(perm).size !== perm.length) throw new Error(`permute: repeated axis in [${dims.join(', ')}]`);
  if (perm.every((p, i) => p === i)) return x;
  const out = alloc(x.dtype, x.size);
  backend().permute(x.storage, x.shape, perm, out);
  const inverse = new Array<number>(perm.length);
  perm.forEach((p, i) => { inverse[p] = i; });
  return record('permute', new Tensor(out, perm.map((p) => x.shape[p])), [x], (g) => [permute(g, inverse)]);
});

/** Dimensions dim0 and dim1 of x swapped (a copy). */
export function transpose(x: Tensor, dim0: number, dim1: number): Tensor {
  const a = normAxis(dim0, x.ndim, 'transpose');
  const b = normAxis(dim1, x.ndim, 'transpose');
  const perm = Array.from({ length: x.ndim }, (_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

/** Size-1 dimensions of x removed (only dim, when given). */
export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return x.reshape(x.shape.filter((d) => d !== 1));
  const a = normAxis(dim, x.ndim, 'squeeze');
  if (x.shape[a] !== 1) return x;
  return x.reshape(x.shape.filter((_, i) => i !== a));
}

/** A size-1 dimension inserted into x at dim. */
export function unsqueeze(x: Tensor, dim: number): Tensor {
  const a = normAxis(dim, x.ndim + 1, 'unsqueeze');
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return x.reshape(shape);
}

/** Size-1 dimensions of x broadcast to shape (-1 keeps a dimension). */
export const expand = defineOp('expand', (x: Tensor, shape: readonly number[]): Tensor => {
  if (shape.length < x.ndim) throw new Error(`expand: cannot expand shape ${fmt(x.shape)} to fewer dimensions ${fmt(shape)}`);
  const lead = shape.length - x.ndim;
  const target = shape.map((d, i) => (d === -1 && i >= lead ? x.shape[i - lead] : d));
  const padded = [...new Array<number>(lead).fill(1), ...x.shape];
  padded.forEach((d, i) => {
    if (d !== 1 && d !== target[i]) {
      throw new Error(`expand: cannot expand shape ${fmt(x.shape)} to ${fmt(shape)} (dimension ${i}: ${d} vs ${target[i]})`);
    }
  });
  if (padded.every((d, i) => d === target[i])) return lead === 0 ? x : x.reshape(target);
  const out = alloc(x.dtype, sizeOf(target));
  backend().expand(x.storage, padded, out, target);
  return record('expand', new Tensor(out, target), [x], (g) => [sumTo(g, x.shape)]);
});

/** length elements of x from start along dim. */
export const narrow = defineOp('narrow', (x: Tensor, dim: number, start: number, length: number): Tensor => {
  const a = normAxis(dim, x.ndim, 'narrow');
  const size = x.shape[a];
  if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > size) {
    throw new Error(`narrow: start ${start} and length ${length} do not fit dimension ${dim} of size ${size}`);
  }
  const [outer, , inner] = around(x.shape, a);
  const shape = x.shape.map((d, i) => (i === a ? length : d));
  const out = alloc(x.dtype, sizeOf(shape));
  backend().sliceCopy(x.storage, outer, size, inner, start, length, out);
  return record('narrow', new Tensor(out, shape), [x], (g) => {
    const dx = alloc(g.dtype, x.size);
    backend().sliceAssign(g.storage, outer, size, inner, start, length, dx);
    return [new Tensor(dx, x.shape)];
  });
});

/** Python-style slice along one axis: negative indices count from the end, bounds are clipped. */
export function slice(x: Tensor, dim: number, start: number, end?: number): Tensor {
  const a = normAxis(dim, x.ndim, 'slice');
  const size = x.shape[a];
  const clip = (i: number): number => Math.min(Math.max(i < 0 ? i + size : i, 0), size);
  const s = clip(start);
  const e = clip(end ?? size);
  return narrow(x, a, s, Math.max(e - s, 0));
}

/** Tensors joined along an existing dimension dim (the other dimensions must match). */
export const cat = defineOp('cat', (tensors: readonly Tensor[], dim = 0): Tensor => {
  if (tensors.length === 0) throw new Error('cat: expected at least one tensor');
  const first = tensors[0];
  const a = normAxis(dim, first.ndim, 'cat');
  for (const t of tensors) {
    if (t.dtype !== first.dtype) throw new Error(`cat: dtype mismatch, ${first.dtype} and ${t.dtype}`);
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new Error(`cat: shapes ${fmt(first.shape)} and ${fmt(t.shape)} differ outside dimension ${dim}`);
    }
  }
  const total = tensors.reduce((p, t) => p + t.shape[a], 0);
  const shape = first.shape.map((d, i) => (i === a ? total : d));
  const [outer, , inner] = around(shape, a);
  const out = alloc(first.dtype, sizeOf(shape));
  const starts: number[] = [];
  let start = 0;
  for (const t of tensors) {
    starts.push(start);
    backend().sliceAssign(t.storage, outer, total, inner, start, t.shape[a], out);
    start += t.shape[a];
  }
  return record('cat', new Tensor(out, shape), tensors, (g) =>
    tensors.map((t, i) => (t.requiresGrad ? narrow(g, a, starts[i], t.shape[a]) : null)));
});

/** Tensors of one shape joined along a new dimension dim. */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error('stack: expected at least one tensor');
  const a = normAxis(dim, tensors[0].ndim + 1, 'stack');
  for (const t of tensors) {
    if (t.ndim !== tensors[0].ndim || t.shape.some((d, i) => d !== tensors[0].shape[i])) {
      throw new Error(`stack: all tensors need the same shape, got ${fmt(tensors[0].shape)} and ${fmt(t.shape)}`);
    }
  }
  return cat(tensors.map((t) => t.unsqueeze(a)), a);
}

/** Pieces of `size` along dim (the last may be smaller). */
export function split(x: Tensor, size: number, dim = 0): Tensor[] {
  const a = normAxis(dim, x.ndim, 'split');
  if (!Number.isInteger(size) || size <= 0) throw new Error(`split: size must be a positive integer, got ${size}`);
  const out: Tensor[] = [];
  for (let s = 0; s < x.shape[a]; s += size) out.push(narrow(x, a, s, Math.min(size, x.shape[a] - s)));
  return out;
}

/** `chunks` nearly equal pieces along dim. */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  const a = normAxis(dim, x.ndim, 'chunk');
  if (!Number.isInteger(chunks) || chunks <= 0) throw new Error(`chunk: chunks must be a positive integer, got ${chunks}`);
  return split(x, Math.ceil(x.shape[a] / chunks), a);
}

function checkIndex(index: Tensor, limit: number, op: string): Int32Array {
  if (index.dtype !== 'int32') throw new Error(`${op}: index must be an int32 tensor, got ${index.dtype}`);
  const idx = index.storage as Int32Array;
  for (let i = 0; i < idx.length; i++) {
    if (idx[i] < 0 || idx[i] >= limit) throw new Error(`${op}: index ${idx[i]} is out of range for a dimension of size ${limit}`);
  }
  return idx;
}

/** The entries of x at index (int32, 1-d) along dim. */
export const indexSelect = defineOp('indexSelect', (x: Tensor, dim: number, index: Tensor): Tensor => {
  const a = normAxis(dim, x.ndim, 'indexSelect');
  if (index.ndim > 1) throw new Error(`indexSelect: index must be 1-D, got shape ${fmt(index.shape)}`);
  const idx = checkIndex(index, x.shape[a], 'indexSelect');
  const [outer, size, inner] = around(x.shape, a);
  const shape = x.shape.map((d, i) => (i === a ? idx.length : d));
  const out = alloc(x.dtype, sizeOf(shape));
  backend().indexSelect(x.storage, outer, size, inner, idx, out);
  return record('indexSelect', new Tensor(out, shape), [x], (g) => {
    const dx = alloc(x.dtype, x.size) as FloatArray;
    backend().indexAdd(g.storage as FloatArray, outer, size, inner, idx, dx);
    return [new Tensor(dx, x.shape)];
  });
});

/** Values of x picked along dim by index (int32, the same rank), as torch.gather. */
export const gather = defineOp('gather', (x: Tensor, dim: number, index: Tensor): Tensor => {
  const a = normAxis(dim, x.ndim, 'gather');
  if (index.ndim !== x.ndim || index.shape.some((d, i) => i !== a && d !== x.shape[i])) {
    throw new Error(`gather: index shape ${fmt(index.shape)} must match input shape ${fmt(x.shape)} except in dimension ${dim}`);
  }
  const idx = checkIndex(index, x.shape[a], 'gather');
  const [outer, size, inner] = around(x.shape, a);
  const k = index.shape[a];
  const out = alloc(x.dtype, index.size);
  backend().gather(x.storage, outer, size, inner, idx, k, out);
  return record('gather', new Tensor(out, index.shape), [x], (g) => {
    const dx = alloc(x.dtype, x.size) as FloatArray;
    backend().scatterAdd(g.storage as FloatArray, outer, size, inner, idx, k, dx);
    return [new Tensor(dx, x.shape)];
  });
});

// Reference data-movement kernels: fill, copy/cast, permute, slices, index select/add, gather/scatter-add.

import type { AnyArray, FloatArray } from '../backend.js';

export function fill(out: AnyArray, value: number): void { out.fill(value); }

export function copy(src: AnyArray, dst: AnyArray): void {
  if (dst instanceof Int32Array && !(src instanceof Int32Array)) {
    for (let i = 0; i < src.length; i++) dst[i] = Math.trunc(src[i]);
  } else {
    dst.set(src);
  }
}

export function permute(x: AnyArray, shape: readonly number[], perm: readonly number[], out: AnyArray): void {
  const rank = shape.length;
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) { inStrides[d] = s; s *= shape[d]; }
  const outShape = perm.map((p) => shape[p]);
  const strides = perm.map((p) => inStrides[p]); // input stride for each output axis
  const total = x.length;
  if (total === 0) return;
  if (rank === 0) { out[0] = x[0]; return; }
  const n = outShape[rank - 1];
  const ls = strides[rank - 1];
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let o = 0; o < total; o += n) {
    for (let j = 0; j < n; j++) out[o + j] = x[src + j * ls];
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]++;
      src += strides[d];
      if (idx[d] < outShape[d]) break;
      src -= strides[d] * outShape[d];
      idx[d] = 0;
    }
  }
}

export function sliceCopy(src: AnyArray, outer: number, srcDim: number, inner: number, start: number, len: number,
  dst: AnyArray): void {
  const chunk = len * inner;
  for (let o = 0; o < outer; o++) {
    const from = (o * srcDim + start) * inner;
    dst.set(src.subarray(from, from + chunk), o * chunk);
  }
}

export function sliceAssign(src: AnyArray, outer: number, dstDim: number, inner: number, start: number, len: number,
  dst: AnyArray): void {
  const chunk = len * inner;
  for (let o = 0; o < outer; o++) dst.set(src.subarray(o * chunk, (o + 1) * chunk), (o * dstDim + start) * inner);
}

export function indexSelect(x: AnyArray, outer: number, dim: number, inner: number, idx: Int32Array, out: AnyArray): void {
  const k = idx.length;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      const from = (o * dim + idx[j]) * inner;
      out.set(x.subarray(from, from + inner), (o * k + j) * inner);
    }
  }
}

export function indexAdd(dout: FloatArray, outer: number, dim: number, inner: number, idx: Int32Array, dx: FloatArray): void {
  const k = idx.length;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      const to = (o * dim + idx[j]) * inner;
      const from = (o * k + j) * inner;
      for (let i = 0; i < inner; i++) dx[to + i] += dout[from + i];
    }
  }
}

export function gather(x: AnyArray, outer: number, dim: number, inner: number, idx: Int32Array, k: number, out: AnyArray): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      for (let i = 0; i < inner; i++) {
        const p = (o * k + j) * inner + i;
        out[p] = x[(o * dim + idx[p]) * inner + i];
      }
    }
  }
}

export function scatterAdd(dout: FloatArray, outer: number, dim: number, inner: number, idx: Int32Array, k: number,
  dx: FloatArray): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      for (let i = 0; i < inner; i++) {
        const p = (o * k + j) * inner + i;
        dx[(o * dim + idx[p]) * inner + i] += dout[p];
      }
    }
  }
}

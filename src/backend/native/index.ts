// Loads the C addon built from native/ and wraps it as a Backend: float32 runs in C, float64/int32 and mixed dtypes
// delegate to the reference backend. Where it comes from, first match wins: KILN_NATIVE_PATH; the prebuilt addon the
// package ships (prebuilds/<platform>-<arch>/, scripts/prebuild.mjs); the one compiled at install
// (build/Release/kiln_native.node, scripts/build-native.mjs).

import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { AnyArray, Backend, BinaryOp, Conv2dShape, DType, FloatArray, Pool2dShape, ReduceOp, UnaryOp } from '../backend.js';
import { CONV2D_FIELDS, POOL2D_FIELDS } from '../backend.js';
import { jsBackend } from '../js/index.js';

export interface NativeInfo { isa: string; threads: number }
export interface NativeLoad { backend?: Backend; info?: NativeInfo; error?: string }

/** The raw addon: one function per kernel, float32 only (see native/binding.c). */
export interface Addon {
  fill(out: Float32Array, value: number): void;
  copy(src: Float32Array, dst: Float32Array): void;
  unary(op: number, x: Float32Array, out: Float32Array): void;
  unaryBackward(op: number, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array): void;
  clamp(x: Float32Array, lo: number, hi: number, out: Float32Array): void;
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array, shapes: Int32Array): void;
  where(cond: Float32Array | Int32Array, a: Float32Array, b: Float32Array, out: Float32Array, shapes: Int32Array): void;
  expand(x: Float32Array, out: Float32Array, shapes: Int32Array): void;
  reduce(op: number, x: Float32Array, outer: number, dim: number, inner: number, out: Float32Array): void;
  argmax(x: Float32Array, outer: number, dim: number, inner: number, out: Int32Array): void;
  gemm(transA: boolean, transB: boolean, batch: number, M: number, N: number, K: number, alpha: number,
    A: Float32Array, strideA: number, B: Float32Array, strideB: number, beta: number, C: Float32Array, strideC: number): void;
  softmax(x: Float32Array, rows: number, cols: number, log: boolean, out: Float32Array): void;
  softmaxBackward(y: Float32Array, dy: Float32Array, rows: number, cols: number, log: boolean, dx: Float32Array): void;
  layerNorm(x: Float32Array, w: Float32Array | null, b: Float32Array | null, rows: number, C: number, eps: number,
    out: Float32Array, mean: Float32Array, rstd: Float32Array): void;
  layerNormBackward(dy: Float32Array, x: Float32Array, w: Float32Array | null, mean: Float32Array, rstd: Float32Array,
    rows: number, C: number, dx: Float32Array, dw: Float32Array | null, db: Float32Array | null): void;
  rmsNorm(x: Float32Array, w: Float32Array | null, rows: number, C: number, eps: number, out: Float32Array, rstd: Float32Array): void;
  rmsNormBackward(dy: Float32Array, x: Float32Array, w: Float32Array | null, rstd: Float32Array, rows: number, C: number,
    dx: Float32Array, dw: Float32Array | null): void;
  rope(x: Float32Array, B: number, T: number, NH: number, HS: number, theta: number, starts: Int32Array, inverse: boolean,
    out: Float32Array): void;
  crossEntropy(logits: Float32Array, targets: Int32Array, N: number, V: number, ignoreIndex: number, smoothing: number,
    losses: Float32Array, lse: Float32Array): void;
  crossEntropyBackward(logits: Float32Array, targets: Int32Array, lse: Float32Array, dlosses: Float32Array, N: number,
    V: number, ignoreIndex: number, smoothing: number, dlogits: Float32Array): void;
  indexSelect(x: Float32Array, outer: number, dim: number, inner: number, idx: Int32Array, out: Float32Array): void;
  indexAdd(dout: Float32Array, outer: number, dim: number, inner: number, idx: Int32Array, dx: Float32Array): void;
  gather(x: Float32Array, outer: number, dim: number, inner: number, idx: Int32Array, k: number, out: Float32Array): void;
  scatterAdd(dout: Float32Array, outer: number, dim: number, inner: number, idx: Int32Array, k: number, dx: Float32Array): void;
  permute(x: Float32Array, shapePerm: Int32Array, out: Float32Array): void;
  sliceCopy(src: Float32Array, outer: number, srcDim: number, inner: number, start: number, len: number, dst: Float32Array): void;
  sliceAssign(src: Float32Array, outer: number, dstDim: number, inner: number, start: number, len: number, dst: Float32Array): void;
  attention(q: Float32Array, k: Float32Array, v: Float32Array, B: number, Tq: number, Tk: number, NH: number, HS: number,
    causal: boolean, scale: number, out: Float32Array, lse: Float32Array, ld: number): void;
  attentionBackward(dout: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array,
    lse: Float32Array, B: number, Tq: number, Tk: number, NH: number, HS: number, causal: boolean, scale: number,
    dq: Float32Array, dk: Float32Array, dv: Float32Array, ld: number): void;
  adamw(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number,
    beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number): void;
  lstmCell(gates: Float32Array, cPrev: Float32Array, B: number, H: number, c: Float32Array, h: Float32Array): void;
  lstmCellBackward(gates: Float32Array, cPrev: Float32Array, c: Float32Array, dh: Float32Array, dc: Float32Array,
    B: number, H: number, dgates: Float32Array): void;
  gruCell(gx: Float32Array, gh: Float32Array, hPrev: Float32Array, B: number, H: number, h: Float32Array): void;
  gruCellBackward(gates: Float32Array, gh: Float32Array, hPrev: Float32Array, dh: Float32Array, B: number, H: number,
    dgx: Float32Array, dgh: Float32Array, dhPrev: Float32Array): void;
  conv2d(x: Float32Array, w: Float32Array, bias: Float32Array | null, shape: Int32Array, out: Float32Array): void;
  conv2dBackward(dy: Float32Array, x: Float32Array, w: Float32Array, shape: Int32Array, dx: Float32Array | null,
    dw: Float32Array | null, db: Float32Array | null): void;
  maxPool2d(x: Float32Array, shape: Int32Array, out: Float32Array, indices: Int32Array): void;
  maxPool2dBackward(dy: Float32Array, indices: Int32Array, shape: Int32Array, dx: Float32Array): void;
  avgPool2d(x: Float32Array, shape: Int32Array, countIncludePad: boolean, divisor: number, out: Float32Array): void;
  avgPool2dBackward(dy: Float32Array, shape: Int32Array, countIncludePad: boolean, divisor: number, dx: Float32Array): void;
  batchNormStats(x: Float32Array, N: number, C: number, HW: number, mean: Float32Array, variance: Float32Array): void;
  batchNorm(x: Float32Array, mean: Float32Array, invstd: Float32Array, w: Float32Array | null, b: Float32Array | null,
    N: number, C: number, HW: number, out: Float32Array): void;
  batchNormBackward(dy: Float32Array, x: Float32Array, mean: Float32Array, invstd: Float32Array, w: Float32Array | null,
    N: number, C: number, HW: number, batchStats: boolean, dx: Float32Array | null, dw: Float32Array | null,
    db: Float32Array | null): void;
  gptBlockDecode(x: Float32Array, weights: readonly (Float32Array | null)[], keys: Float32Array, values: Float32Array,
    rows: Int32Array, starts: Int32Array, A: number, C: number, NH: number, P: number, eps: number): void;
  llamaBlockDecode(x: Float32Array, weights: readonly (Float32Array | null)[], keys: Float32Array, values: Float32Array,
    rows: Int32Array, starts: Int32Array, A: number, C: number, NH: number, KVH: number, hidden: number, P: number,
    eps: number, theta: number): void;
  gptDecode(logits: Float32Array, tokens: Int32Array, rows: Int32Array, starts: Int32Array, wte: Float32Array,
    wpe: Float32Array, blocks: (Float32Array | null)[][], keys: Float32Array[], values: Float32Array[],
    lnfWeight: Float32Array | null, lnfBias: Float32Array | null, head: Float32Array, A: number, C: number, NH: number,
    P: number, V: number, eps: number, panels?: (Float32Array | null)[] | null, headRows?: Int32Array | null): boolean;
  packPanels(dst: Float32Array, B: Float32Array, transB: boolean, N: number, K: number): void;
  panelsApply(transB: boolean, M: number, K: number): boolean;
  sample(logits: Float32Array, V: number, invTemperature: number, topK: number, topP: number, u: number, u2: number,
    scratch: Float32Array): number;
  info(): { isa: string; threads: number; poolSize: number };
  setIsa(name: string): boolean;
  setThreads(n: number): void;
  gemmTune(mc: number, kc: number, nc: number): void;
  gemmBf16?(transA: boolean, transB: boolean, batch: number, M: number, N: number, K: number, alpha: number,
    A: Float32Array, strideA: number, B: Float32Array, strideB: number, beta: number, C: Float32Array, strideC: number): void;
  bf16Info?(): { supported: boolean; active: boolean };
  setBf16?(on: boolean): boolean;
  memoryInit(bound: number): number;
  memoryRelease(): void;
  memoryAdviseHuge?(buffer: ArrayBuffer): void;
  alignOffset?(buffer: ArrayBuffer): number;
}

// Op codes: the order of the enums in native/kiln.h.
const UNARY: readonly UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'sign', 'square', 'reciprocal',
  'tanh', 'sigmoid', 'relu', 'gelu', 'gelu_tanh', 'silu', 'sin', 'cos'];
const BINARY: readonly BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'];
const REDUCE: readonly ReduceOp[] = ['sum', 'max', 'min'];
const unaryCode = new Map(UNARY.map((op, i) => [op, i]));
const binaryCode = new Map(BINARY.map((op, i) => [op, i]));
const reduceCode = new Map(REDUCE.map((op, i) => [op, i]));
const MAX_RANK = 16;

function code(map: Map<string, number>, kind: string, op: string): number {
  const c = map.get(op);
  if (c === undefined) throw new Error(`${kind}: unknown op '${op}'`);
  return c;
}

const f32 = (a: unknown): a is Float32Array => a instanceof Float32Array;
/** null, or a Float32Array: the optional buffers of the fused kernels. */
const f32n = (a: unknown): a is Float32Array | null => a === null || a instanceof Float32Array;

/** The package root: the nearest folder above this file with Kiln's package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

function wrap(n: Addon): Backend {
  // Shapes travel in one reused Int32Array: [rank, shape0..., shape1..., ...].
  const shapes = new Int32Array(1 + MAX_RANK * 4);
  const packShapes = (list: readonly (readonly number[])[]): boolean => {
    const rank = list[list.length - 1].length;
    if (rank > MAX_RANK) return false;
    shapes[0] = rank;
    let o = 1;
    for (const s of list) {
      if (s.length !== rank) return false;
      for (let d = 0; d < rank; d++) shapes[o++] = s[d];
    }
    return true;
  };
  const js = jsBackend;
  // Geometry travels in two reused Int32Arrays, in the field order of the C structs.
  const conv = new Int32Array(CONV2D_FIELDS.length);
  const pool = new Int32Array(POOL2D_FIELDS.length);
  const convShape = (s: Conv2dShape): Int32Array => { CONV2D_FIELDS.forEach((k, i) => { conv[i] = s[k]; }); return conv; };
  const poolShape = (s: Pool2dShape): Int32Array => { POOL2D_FIELDS.forEach((k, i) => { pool[i] = s[k]; }); return pool; };
  return {
    name: 'native',
    fill(out, value) { if (f32(out)) n.fill(out, value); else js.fill(out, value); },
    copy(src, dst) { if (f32(src) && f32(dst)) n.copy(src, dst); else js.copy(src, dst); },
    unary(op, x, out) {
      if (f32(x) && f32(out)) n.unary(code(unaryCode, 'unary', op), x, out); else js.unary(op, x, out);
    },
    unaryBackward(op, x, y, dy, dx) {
      if (f32(x) && f32(y) && f32(dy) && f32(dx)) n.unaryBackward(code(unaryCode, 'unaryBackward', op), x, y, dy, dx);
      else js.unaryBackward(op, x, y, dy, dx);
    },
    clamp(x, lo, hi, out) { if (f32(x) && f32(out)) n.clamp(x, lo, hi, out); else js.clamp(x, lo, hi, out); },
    binary(op, a, aShape, b, bShape, out, outShape) {
      if (f32(a) && f32(b) && f32(out) && packShapes([aShape, bShape, outShape])) {
        n.binary(code(binaryCode, 'binary', op), a, b, out, shapes);
      } else js.binary(op, a, aShape, b, bShape, out, outShape);
    },
    where(cond, condShape, a, aShape, b, bShape, out, outShape) {
      if ((f32(cond) || cond instanceof Int32Array) && f32(a) && f32(b) && f32(out) &&
        packShapes([condShape, aShape, bShape, outShape])) {
        n.where(cond, a, b, out, shapes);
      } else js.where(cond, condShape, a, aShape, b, bShape, out, outShape);
    },
    expand(x, xShape, out, outShape) {
      if (f32(x) && f32(out) && packShapes([xShape, outShape])) n.expand(x, out, shapes);
      else js.expand(x, xShape, out, outShape);
    },
    reduce(op, x, outer, dim, inner, out) {
      if (f32(x) && f32(out)) n.reduce(code(reduceCode, 'reduce', op), x, outer, dim, inner, out);
      else js.reduce(op, x, outer, dim, inner, out);
    },
    argmax(x, outer, dim, inner, out) {
      if (f32(x)) n.argmax(x, outer, dim, inner, out); else js.argmax(x, outer, dim, inner, out);
    },
    gemm(transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC) {
      if (f32(A) && f32(B) && f32(C)) n.gemm(transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC);
      else js.gemm(transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC);
    },
    gemmBf16: n.gemmBf16
      ? (transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC) =>
        n.gemmBf16!(transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC)
      : undefined,
    softmax(x, rows, cols, log, out) {
      if (f32(x) && f32(out)) n.softmax(x, rows, cols, log, out); else js.softmax(x, rows, cols, log, out);
    },
    softmaxBackward(y, dy, rows, cols, log, dx) {
      if (f32(y) && f32(dy) && f32(dx)) n.softmaxBackward(y, dy, rows, cols, log, dx);
      else js.softmaxBackward(y, dy, rows, cols, log, dx);
    },
    layerNorm(x, weight, bias, rows, C, eps, out, mean, rstd) {
      if (f32(x) && (weight === null || f32(weight)) && (bias === null || f32(bias)) && f32(out) && f32(mean) && f32(rstd)) {
        n.layerNorm(x, weight, bias, rows, C, eps, out, mean, rstd);
      } else js.layerNorm(x, weight, bias, rows, C, eps, out, mean, rstd);
    },
    layerNormBackward(dy, x, weight, mean, rstd, rows, C, dx, dweight, dbias) {
      if (f32(dy) && f32(x) && (weight === null || f32(weight)) && f32(mean) && f32(rstd) && f32(dx) &&
        (dweight === null || f32(dweight)) && (dbias === null || f32(dbias))) {
        n.layerNormBackward(dy, x, weight, mean, rstd, rows, C, dx, dweight, dbias);
      } else js.layerNormBackward(dy, x, weight, mean, rstd, rows, C, dx, dweight, dbias);
    },
    rmsNorm(x, weight, rows, C, eps, out, rstd) {
      if (f32(x) && (weight === null || f32(weight)) && f32(out) && f32(rstd)) n.rmsNorm(x, weight, rows, C, eps, out, rstd);
      else js.rmsNorm(x, weight, rows, C, eps, out, rstd);
    },
    rmsNormBackward(dy, x, weight, rstd, rows, C, dx, dweight) {
      if (f32(dy) && f32(x) && (weight === null || f32(weight)) && f32(rstd) && f32(dx) && (dweight === null || f32(dweight))) {
        n.rmsNormBackward(dy, x, weight, rstd, rows, C, dx, dweight);
      } else js.rmsNormBackward(dy, x, weight, rstd, rows, C, dx, dweight);
    },
    rope(x, B, T, NH, HS, theta, starts, inverse, out) {
      if (f32(x) && f32(out) && HS <= 1024) n.rope(x, B, T, NH, HS, theta, starts, inverse, out);
      else js.rope(x, B, T, NH, HS, theta, starts, inverse, out);
    },
    crossEntropy(logits, targets, N, V, ignoreIndex, labelSmoothing, losses, lse) {
      if (f32(logits) && f32(losses) && f32(lse)) n.crossEntropy(logits, targets, N, V, ignoreIndex, labelSmoothing, losses, lse);
      else js.crossEntropy(logits, targets, N, V, ignoreIndex, labelSmoothing, losses, lse);
    },
    crossEntropyBackward(logits, targets, lse, dlosses, N, V, ignoreIndex, labelSmoothing, dlogits) {
      if (f32(logits) && f32(lse) && f32(dlosses) && f32(dlogits)) {
        n.crossEntropyBackward(logits, targets, lse, dlosses, N, V, ignoreIndex, labelSmoothing, dlogits);
      } else js.crossEntropyBackward(logits, targets, lse, dlosses, N, V, ignoreIndex, labelSmoothing, dlogits);
    },
    indexSelect(x, outer, dim, inner, idx, out) {
      if (f32(x) && f32(out)) n.indexSelect(x, outer, dim, inner, idx, out); else js.indexSelect(x, outer, dim, inner, idx, out);
    },
    indexAdd(dout, outer, dim, inner, idx, dx) {
      if (f32(dout) && f32(dx)) n.indexAdd(dout, outer, dim, inner, idx, dx); else js.indexAdd(dout, outer, dim, inner, idx, dx);
    },
    gather(x, outer, dim, inner, idx, k, out) {
      if (f32(x) && f32(out)) n.gather(x, outer, dim, inner, idx, k, out); else js.gather(x, outer, dim, inner, idx, k, out);
    },
    scatterAdd(dout, outer, dim, inner, idx, k, dx) {
      if (f32(dout) && f32(dx)) n.scatterAdd(dout, outer, dim, inner, idx, k, dx);
      else js.scatterAdd(dout, outer, dim, inner, idx, k, dx);
    },
    permute(x, shape, perm, out) {
      if (f32(x) && f32(out) && shape.length <= MAX_RANK && perm.length === shape.length) {
        shapes[0] = shape.length;
        for (let d = 0; d < shape.length; d++) { shapes[1 + d] = shape[d]; shapes[1 + shape.length + d] = perm[d]; }
        n.permute(x, shapes, out);
      } else js.permute(x, shape, perm, out);
    },
    sliceCopy(src, outer, srcDim, inner, start, len, dst) {
      if (f32(src) && f32(dst)) n.sliceCopy(src, outer, srcDim, inner, start, len, dst);
      else js.sliceCopy(src, outer, srcDim, inner, start, len, dst);
    },
    sliceAssign(src, outer, dstDim, inner, start, len, dst) {
      if (f32(src) && f32(dst)) n.sliceAssign(src, outer, dstDim, inner, start, len, dst);
      else js.sliceAssign(src, outer, dstDim, inner, start, len, dst);
    },
    attention(q, k, v, B, Tq, Tk, NH, HS, causal, scale, out, lse, ld = NH * HS) {
      if (f32(q) && f32(k) && f32(v) && f32(out) && f32(lse)) n.attention(q, k, v, B, Tq, Tk, NH, HS, causal, scale, out, lse, ld);
      else js.attention(q, k, v, B, Tq, Tk, NH, HS, causal, scale, out, lse, ld);
    },
    attentionBackward(dout, q, k, v, out, lse, B, Tq, Tk, NH, HS, causal, scale, dq, dk, dv, ld = NH * HS) {
      if (f32(dout) && f32(q) && f32(k) && f32(v) && f32(out) && f32(lse) && f32(dq) && f32(dk) && f32(dv)) {
        n.attentionBackward(dout, q, k, v, out, lse, B, Tq, Tk, NH, HS, causal, scale, dq, dk, dv, ld);
      } else js.attentionBackward(dout, q, k, v, out, lse, B, Tq, Tk, NH, HS, causal, scale, dq, dk, dv, ld);
    },
    gptBlockDecode(x, weights, keys, values, rows, starts, A, C, NH, P, eps) {
      if (typeof n.gptBlockDecode !== 'function') return false; // an addon built before the kernel existed
      if (!f32(x) || !f32(keys) || !f32(values) || !weights.every((w) => w === null || f32(w))) return false;
      n.gptBlockDecode(x, weights as (Float32Array | null)[], keys, values, rows, starts, A, C, NH, P, eps);
      return true;
    },
    gptDecode(logits, tokens, rows, starts, wte, wpe, blocks, keys, values, lnfWeight, lnfBias, head, A, C, NH, P, V, eps, panels, headRows) {
      if (typeof n.gptDecode !== 'function') return false; // an addon built before the kernel existed
      const arrays = [logits, wte, wpe, head, ...keys, ...values, lnfWeight, lnfBias, ...blocks.flat()];
      if (!arrays.every((a) => a === null || f32(a))) return false;
      const packed = panels && typeof n.packPanels === 'function' && panels.every((a) => a === null || f32(a)) ? panels : null;
      return n.gptDecode(logits as Float32Array, tokens, rows, starts, wte as Float32Array, wpe as Float32Array,
        blocks as (Float32Array | null)[][], keys as Float32Array[], values as Float32Array[], lnfWeight as Float32Array | null,
        lnfBias as Float32Array | null, head as Float32Array, A, C, NH, P, V, eps, packed as (Float32Array | null)[] | null,
        headRows ?? null);
    },
    packPanels(dst, B, transB, N, K) { n.packPanels(dst, B, transB, N, K); },
    panelsApply(transB, M, K) { return typeof n.panelsApply === 'function' && n.panelsApply(transB, M, K); },
    llamaBlockDecode(x, weights, keys, values, rows, starts, A, C, NH, KVH, hidden, P, eps, theta) {
      if (typeof n.llamaBlockDecode !== 'function') return false; // an addon built before the kernel existed
      if (!f32(x) || !f32(keys) || !f32(values) || !weights.every((w) => w === null || f32(w))) return false;
      n.llamaBlockDecode(x, weights as (Float32Array | null)[], keys, values, rows, starts, A, C, NH, KVH, hidden, P, eps, theta);
      return true;
    },
    sample(logits, V, invTemperature, topK, topP, u, u2, scratch) {
      if (typeof n.sample !== 'function' || !f32(logits) || !f32(scratch)) return null;
      return n.sample(logits, V, invTemperature, topK, topP, u, u2, scratch);
    },
    adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2) {
      if (f32(param) && f32(grad) && f32(m) && f32(v)) n.adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2);
      else js.adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2);
    },
    lstmCell(gates, cPrev, B, H, c, h) {
      if (f32(gates) && f32(cPrev) && f32(c) && f32(h)) n.lstmCell(gates, cPrev, B, H, c, h);
      else js.lstmCell(gates, cPrev, B, H, c, h);
    },
    lstmCellBackward(gates, cPrev, c, dh, dc, B, H, dgates) {
      if (f32(gates) && f32(cPrev) && f32(c) && f32(dh) && f32(dc) && f32(dgates)) {
        n.lstmCellBackward(gates, cPrev, c, dh, dc, B, H, dgates);
      } else js.lstmCellBackward(gates, cPrev, c, dh, dc, B, H, dgates);
    },
    gruCell(gx, gh, hPrev, B, H, h) {
      if (f32(gx) && f32(gh) && f32(hPrev) && f32(h)) n.gruCell(gx, gh, hPrev, B, H, h);
      else js.gruCell(gx, gh, hPrev, B, H, h);
    },
    gruCellBackward(gates, gh, hPrev, dh, B, H, dgx, dgh, dhPrev) {
      if (f32(gates) && f32(gh) && f32(hPrev) && f32(dh) && f32(dgx) && f32(dgh) && f32(dhPrev)) {
        n.gruCellBackward(gates, gh, hPrev, dh, B, H, dgx, dgh, dhPrev);
      } else js.gruCellBackward(gates, gh, hPrev, dh, B, H, dgx, dgh, dhPrev);
    },
    conv2d(x, weight, bias, s, out) {
      if (f32(x) && f32(weight) && f32n(bias) && f32(out)) n.conv2d(x, weight, bias, convShape(s), out);
      else js.conv2d(x, weight, bias, s, out);
    },
    conv2dBackward(dy, x, weight, s, dx, dweight, dbias) {
      if (f32(dy) && f32(x) && f32(weight) && f32n(dx) && f32n(dweight) && f32n(dbias)) {
        n.conv2dBackward(dy, x, weight, convShape(s), dx, dweight, dbias);
      } else js.conv2dBackward(dy, x, weight, s, dx, dweight, dbias);
    },
    maxPool2d(x, s, out, indices) {
      if (f32(x) && f32(out)) n.maxPool2d(x, poolShape(s), out, indices); else js.maxPool2d(x, s, out, indices);
    },
    maxPool2dBackward(dy, indices, s, dx) {
      if (f32(dy) && f32(dx)) n.maxPool2dBackward(dy, indices, poolShape(s), dx); else js.maxPool2dBackward(dy, indices, s, dx);
    },
    avgPool2d(x, s, countIncludePad, divisorOverride, out) {
      if (f32(x) && f32(out)) n.avgPool2d(x, poolShape(s), countIncludePad, divisorOverride, out);
      else js.avgPool2d(x, s, countIncludePad, divisorOverride, out);
    },
    avgPool2dBackward(dy, s, countIncludePad, divisorOverride, dx) {
      if (f32(dy) && f32(dx)) n.avgPool2dBackward(dy, poolShape(s), countIncludePad, divisorOverride, dx);
      else js.avgPool2dBackward(dy, s, countIncludePad, divisorOverride, dx);
    },
    batchNormStats(x, N, C, HW, mean, variance) {
      if (f32(x) && f32(mean) && f32(variance)) n.batchNormStats(x, N, C, HW, mean, variance);
      else js.batchNormStats(x, N, C, HW, mean, variance);
    },
    batchNorm(x, mean, invstd, weight, bias, N, C, HW, out) {
      if (f32(x) && f32(mean) && f32(invstd) && f32n(weight) && f32n(bias) && f32(out)) n.batchNorm(x, mean, invstd, weight, bias, N, C, HW, out);
      else js.batchNorm(x, mean, invstd, weight, bias, N, C, HW, out);
    },
    batchNormBackward(dy, x, mean, invstd, weight, N, C, HW, batchStats, dx, dweight, dbias) {
      if (f32(dy) && f32(x) && f32(mean) && f32(invstd) && f32n(weight) && f32n(dx) && f32n(dweight) && f32n(dbias)) {
        n.batchNormBackward(dy, x, mean, invstd, weight, N, C, HW, batchStats, dx, dweight, dbias);
      } else js.batchNormBackward(dy, x, mean, invstd, weight, N, C, HW, batchStats, dx, dweight, dbias);
    },
    releaseMemory: () => n.memoryRelease(),
    ...alignedStorage(n, freshMemoryCollector()),
  };
}

/** Buffers from this size on start on a 64-byte boundary (smaller ones stay in V8's heap, 16-byte aligned). */
const ALIGNED_MIN_BYTES = 16 * 1024;
/** Buffers from this size on ask for huge pages (numpy's threshold; src/tensor/storage.ts uses the same). */
const HUGE_MIN_BYTES = 4 * 1024 * 1024;

/**
 * Tensor storage that starts on a cache line. malloc (under V8's ArrayBuffers) aligns to 16 bytes, and a kernel
 * that streams a weight matrix with 64-byte vector loads reads two cache lines for each one then: a decoding step
 * of the T4 model took 265 us instead of 212 us on misaligned weights. Each buffer is 64 bytes longer than asked and
 * the array a view from its first boundary; the tensor layer pools these views whole (ownsWhole). The fresh-memory
 * notes and the huge-page advice the tensor layer gives ordinary buffers are given here.
 */
function alignedStorage(n: Addon, note: ((bytes: number) => void) | undefined): Pick<Backend, 'allocate' | 'ownsWhole' | 'noteFreshMemory' | 'adviseFresh'> {
  const advise = n.memoryAdviseHuge ? (buffer: ArrayBuffer) => n.memoryAdviseHuge!(buffer) : undefined;
  const unsafe = (globalThis as { Buffer?: { allocUnsafeSlow(bytes: number): Uint8Array } }).Buffer?.allocUnsafeSlow;
  if (typeof n.alignOffset !== 'function' || !unsafe) return { noteFreshMemory: note, adviseFresh: advise };
  const whole = new WeakSet<AnyArray>();
  return {
    noteFreshMemory: note,
    adviseFresh: advise,
    allocate(dtype: DType, count: number): AnyArray | undefined {
      const size = dtype === 'float64' ? 8 : 4;
      const bytes = count * size;
      if (bytes < ALIGNED_MIN_BYTES) return undefined;
      const buffer = unsafe(bytes + 64).buffer as ArrayBuffer;
      note?.(bytes);
      if (bytes >= HUGE_MIN_BYTES) advise?.(buffer);
      const offset = n.alignOffset!(buffer);
      const a = dtype === 'float32' ? new Float32Array(buffer, offset, count)
        : dtype === 'float64' ? new Float64Array(buffer, offset, count) : new Int32Array(buffer, offset, count);
      whole.add(a);
      return a;
    },
    ownsWhole: (a: AnyArray) => whole.has(a),
  };
}

/** Controls of the loaded addon for tests and benchmarks: instruction set, thread count, GEMM blocking. */
export interface NativeControls {
  info(): { isa: string; threads: number; poolSize: number };
  /** Switches the instruction set ('avx512', 'avx2', 'neon', 'scalar'); false when the CPU lacks it. */
  setIsa(name: string): boolean;
  /** Threads used by parallel kernels, 1 .. the pool size (KILN_THREADS or the machine's cores). */
  setThreads(n: number): void;
  /** GEMM cache blocking (0 keeps the default): MC rows of A, KC depth, NC columns of B. */
  gemmTune(mc: number, kc: number, nc: number): void;
  /** Whether the CPU has AVX512_BF16 (vdpbf16ps) and whether bf16 GEMMs use it now. */
  bf16Info(): { supported: boolean; active: boolean };
  /** Turns the vdpbf16ps path on or off (off: the rounded float32 fallback); false when on is asked and unsupported. */
  setBf16(on: boolean): boolean;
}

let cached: (NativeLoad & { addon?: Addon }) | undefined;

/** Fresh tensor memory between two young-generation collections that Kiln asks for (KILN_FRESH_GC_BYTES). */
const DEFAULT_FRESH_GC_BYTES = 4 * 1024 * 1024;

/**
 * Tensors that plain code drops (`c = a.matmul(b)` in a loop) are freed only when V8 collects them, and V8 waits
 * for tens of MB of new ArrayBuffers first: until then every result lands on fresh pages, which fault (about
 * 10 us a page on a VM, several times the GEMM). So after every KILN_FRESH_GC_BYTES of fresh tensor memory Kiln
 * asks V8 for a young-generation collection (a scavenge: well under a millisecond when few objects survive);
 * freed buffers go back to the C library, which keeps them mapped (memory.c), and the next results reuse them warm.
 * 0 turns it off. Returns the hook, or undefined where the collector cannot be reached.
 */
function freshMemoryCollector(): ((bytes: number) => void) | undefined {
  const raw = process.env.KILN_FRESH_GC_BYTES;
  const every = raw === undefined || raw.trim() === '' ? DEFAULT_FRESH_GC_BYTES : Number(raw);
  if (!Number.isSafeInteger(every) || every < 0) {
    throw new Error(`KILN_FRESH_GC_BYTES must be a whole number of bytes (0 turns the collections off), got '${raw}'`);
  }
  if (every === 0) return undefined;
  let gc: ((options: { type: 'minor' }) => void) | undefined;
  try {
    setFlagsFromString('--expose-gc'); // only contexts made from now on see gc(); the user's global stays as it is
    gc = runInNewContext('gc') as (options: { type: 'minor' }) => void;
  } catch {
    return undefined;
  }
  let pending = 0;
  return (bytes) => {
    pending += bytes;
    if (pending < every) return;
    pending = 0;
    gc!({ type: 'minor' });
  };
}

const DEFAULT_CACHE_BYTES = 1024 * 1024 * 1024;

/**
 * How much freed memory the process keeps mapped for reuse (native/memory.c): KILN_CACHE_BYTES, default 1 GiB;
 * 0 leaves the C library's own policy.
 */
function memoryCacheBound(): number {
  const raw = process.env.KILN_CACHE_BYTES;
  if (raw === undefined || raw.trim() === '') return DEFAULT_CACHE_BYTES;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new Error(`KILN_CACHE_BYTES must be a whole number of bytes (0 keeps the C library's policy), got '${raw}'`);
  }
  return n;
}

/**
 * The prebuilt N-API addons shipped for this platform (prebuilds/<platform>-<arch>/*.napi*.node, the node-gyp-build
 * layout), glibc ones first. A build for the other libc, or for a newer glibc, fails to load and the next is tried:
 * cheaper than asking for the libc (process.report takes tens of milliseconds).
 */
export function prebuiltCandidates(root = packageRoot()): string[] {
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir).filter((f) => f.endsWith('.node') && f.split('.').includes('napi'));
  const rank = (f: string) => (f.includes('.glibc.') ? 0 : f.includes('.musl.') ? 2 : 1);
  return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)).map((f) => join(dir, f));
}

/** Requires one addon file; returns it, or why it is not Kiln's addon or failed to load. */
function requireAddon(path: string): { addon?: Addon; error?: string } {
  try {
    const addon = createRequire(import.meta.url)(path) as Addon;
    if (typeof addon?.gemm !== 'function' || typeof addon.info !== 'function') return { error: `${path} is not Kiln's native addon` };
    return { addon };
  } catch (e) {
    return { error: `${path} failed to load: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` };
  }
}

/** The addon file in use and where it came from, once loaded. */
export interface NativeSource { path: string; kind: 'KILN_NATIVE_PATH' | 'prebuilt' | 'built at install' }

let source: NativeSource | undefined;

/** Which addon file loaded (KILN_NATIVE_PATH, the shipped prebuilt, or the install-time build), when one did. */
export function nativeSource(): NativeSource | undefined {
  loadNativeBackend();
  return source;
}

/**
 * The first addon that loads, in the order KILN_NATIVE_PATH, prebuilt, built at install, in Kiln's folder `root`;
 * else why none did. Loads but does not start it (loadNativeBackend does).
 */
export function findAddon(root = packageRoot()): { addon?: Addon; source?: NativeSource; error?: string } {
  const custom = process.env.KILN_NATIVE_PATH;
  if (custom && custom.trim() !== '') {
    const path = resolve(custom);
    if (!existsSync(path)) return { error: `KILN_NATIVE_PATH is ${custom}, which does not exist` };
    const r = requireAddon(path);
    return r.addon ? { addon: r.addon, source: { path, kind: 'KILN_NATIVE_PATH' } } : { error: r.error };
  }
  const failures: string[] = [];
  for (const path of prebuiltCandidates(root)) {
    const r = requireAddon(path);
    if (r.addon) return { addon: r.addon, source: { path, kind: 'prebuilt' } };
    failures.push(`the prebuilt ${r.error}`);
  }
  const built = join(root, 'build', 'Release', 'kiln_native.node');
  if (existsSync(built)) {
    const r = requireAddon(built);
    if (r.addon) return { addon: r.addon, source: { path: built, kind: 'built at install' } };
    failures.push(`the addon ${r.error}`);
  } else {
    const none = failures.length === 0 ? `no prebuilt addon for ${process.platform}-${process.arch} and ` : '';
    failures.push(`${none}the addon was not built (${built} is missing; run npm install with a C compiler present)`);
  }
  return { error: failures.join('; ') };
}

/** Loads the addon once and caches the result; never throws: returns { error } when unavailable. */
export function loadNativeBackend(): NativeLoad {
  if (cached) return { backend: cached.backend, info: cached.info, error: cached.error };
  try {
    const found = findAddon();
    if (!found.addon) {
      cached = { error: found.error };
    } else {
      const addon = found.addon;
      addon.memoryInit(memoryCacheBound());
      const i = addon.info();
      source = found.source;
      cached = { backend: wrap(addon), info: { isa: i.isa, threads: i.threads }, addon };
    }
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    cached = { error: `the addon failed to load: ${msg}` };
  }
  return { backend: cached.backend, info: cached.info, error: cached.error };
}

/** The addon's controls, or undefined when it is not loaded. */
export function nativeControls(): NativeControls | undefined {
  loadNativeBackend();
  const a = cached?.addon;
  if (!a) return undefined;
  return {
    info: () => a.info(),
    setIsa: (name) => a.setIsa(name),
    setThreads: (t) => a.setThreads(t),
    gemmTune: (mc, kc, nc) => a.gemmTune(mc, kc, nc),
    bf16Info: () => a.bf16Info?.() ?? { supported: false, active: false },
    setBf16: (on) => a.setBf16?.(on) ?? !on,
  };
}

export type { AnyArray, FloatArray };

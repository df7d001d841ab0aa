// Conformance of the vision kernels (conv2d, pooling, batch norm) on the active backend against the reference
// backend, float32, over awkward geometries: stride, asymmetric padding, dilation, groups, 1x1 kernels, one image
// and many, and thread counts 1 and all (the native weight gradient sums per-thread partials).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backend, backendInfo, jsBackend, type Conv2dShape, type Pool2dShape } from '../../src/backend/index.js';
import { nativeControls } from '../../src/backend/native/index.js';
import { wasmControls } from '../../src/backend/wasm/node.js';
import { assertClose, randF32, rng } from './helpers.js';

const be = backend();
const name = backendInfo().name;
const controls = name === 'native' ? nativeControls() : name === 'wasm' ? wasmControls() : undefined;

function conv(N: number, C: number, H: number, W: number, OC: number, K: [number, number], o: Partial<Conv2dShape> = {}): Conv2dShape {
  const s = { N, C, H, W, OC, KH: K[0], KW: K[1], OH: 0, OW: 0, strideH: 1, strideW: 1, padH: 0, padW: 0,
    dilationH: 1, dilationW: 1, groups: 1, ...o };
  s.OH = o.OH ?? Math.floor((H + 2 * s.padH - s.dilationH * (s.KH - 1) - 1) / s.strideH) + 1;
  s.OW = o.OW ?? Math.floor((W + 2 * s.padW - s.dilationW * (s.KW - 1) - 1) / s.strideW) + 1;
  return s;
}

const convCases: [string, Conv2dShape][] = [
  ['T5 conv1 shape (batch 3)', conv(3, 1, 28, 28, 32, [5, 5], { padH: 2, padW: 2 })],
  ['T5 conv2 shape (batch 5)', conv(5, 32, 14, 14, 64, [5, 5], { padH: 2, padW: 2 })],
  ['stride 2, uneven padding, rectangular kernel', conv(2, 3, 9, 11, 4, [3, 2], { strideH: 2, strideW: 3, padH: 1, padW: 0 })],
  ["'same' with an even kernel (one extra pad at the far side)", conv(2, 2, 6, 7, 3, [4, 4], { padH: 1, padW: 1, OH: 6, OW: 7 })],
  ['dilation 2', conv(2, 3, 10, 9, 5, [3, 3], { dilationH: 2, dilationW: 2, padH: 2, padW: 1 })],
  ['groups 2', conv(3, 4, 7, 7, 6, [3, 3], { groups: 2, padH: 1, padW: 1 })],
  ['depthwise', conv(2, 4, 6, 6, 4, [3, 3], { groups: 4 })],
  ['1x1 pointwise', conv(4, 8, 5, 5, 16, [1, 1])],
  ['one image, big enough to thread', conv(1, 16, 20, 20, 32, [3, 3], { padH: 1, padW: 1 })],
  // Stride 1 with 64 or more products per output takes the native direct kernels (14-pixel by 32-channel tiles,
  // 6-column by 64-channel weight-gradient tiles): rows and channel counts that leave partial tiles, groups, a 7-wide
  // kernel (two column tiles), padding wider than the kernel (the input gradient crops dy) and 'same' with an even kernel.
  ['direct: groups 2, 7x7 kernel, 17-pixel rows', conv(2, 8, 9, 17, 6, [7, 7], { groups: 2, padH: 3, padW: 3 })],
  ['direct: 70 output channels, no padding, 28-pixel rows', conv(2, 16, 8, 30, 70, [3, 3])],
  ['direct: padding wider than the kernel', conv(2, 8, 5, 5, 8, [3, 3], { padH: 3, padW: 3 })],
  ["direct: 'same' with an even kernel", conv(2, 16, 6, 7, 3, [4, 4], { padH: 1, padW: 1, OH: 6, OW: 7 })],
  // 16 to 63 products with 16 or more output channels a group: the forward pass and weight gradient go direct (the
  // weight gradient in 12-column by 32-channel tiles), the input gradient by im2col. A 13-wide kernel takes two
  // column tiles; T5's conv1 shape above is the other short case.
  ['short direct: 17 output channels, 1x13 kernel over 2 channels', conv(3, 2, 5, 16, 17, [1, 13], { padW: 6 })],
  ['short direct: groups 2, 20 output channels a group', conv(2, 4, 6, 6, 40, [3, 3], { groups: 2, padH: 1, padW: 1 })],
];

function checkConv(label: string, s: Conv2dShape, seed: number): void {
  const r = rng(seed);
  const nx = s.N * s.C * s.H * s.W;
  const nw = s.OC * (s.C / s.groups) * s.KH * s.KW;
  const ny = s.N * s.OC * s.OH * s.OW;
  const x = randF32(r, nx);
  const w = randF32(r, nw);
  const b = randF32(r, s.OC);
  const dy = randF32(r, ny);
  const [out, ref] = [new Float32Array(ny).fill(NaN), new Float32Array(ny)];
  be.conv2d(x, w, b, s, out);
  jsBackend.conv2d(x, w, b, s, ref);
  assertClose(out, ref, `${label}: conv2d`, 1e-4, 1e-4);
  be.conv2d(x, w, null, s, out);
  jsBackend.conv2d(x, w, null, s, ref);
  assertClose(out, ref, `${label}: conv2d without bias`, 1e-4, 1e-4);
  const got = [new Float32Array(nx).fill(NaN), new Float32Array(nw).fill(NaN), new Float32Array(s.OC).fill(NaN)];
  const want = [new Float32Array(nx), new Float32Array(nw), new Float32Array(s.OC)];
  be.conv2dBackward(dy, x, w, s, got[0], got[1], got[2]);
  jsBackend.conv2dBackward(dy, x, w, s, want[0], want[1], want[2]);
  ['dx', 'dweight', 'dbias'].forEach((n, i) => assertClose(got[i], want[i], `${label}: ${n}`, 1e-4, 1e-3));
  // Only the weight gradient asked for.
  const dwOnly = new Float32Array(nw).fill(NaN);
  be.conv2dBackward(dy, x, w, s, null, dwOnly, null);
  assertClose(dwOnly, want[1], `${label}: dweight alone`, 1e-4, 1e-3);
  // Only the input gradient asked for.
  const dxOnly = new Float32Array(nx).fill(NaN);
  be.conv2dBackward(dy, x, w, s, dxOnly, null, null);
  assertClose(dxOnly, want[0], `${label}: dx alone`, 1e-4, 1e-3);
}

test('conv2d forward and backward match the reference backend', () => {
  convCases.forEach(([label, s], i) => checkConv(label, s, 10 + i));
});

test('conv2d matches the reference on every instruction set (im2col + GEMM where the direct kernels do not apply)', { skip: !controls && 'native and wasm backends only' }, () => {
  const isa = controls!.info().isa;
  try {
    for (const name of ['avx512', 'avx2', 'neon', 'simd128', 'scalar']) {
      if (name === isa || !controls!.setIsa(name)) continue;
      convCases.forEach(([label, s], i) => checkConv(`${name}: ${label}`, s, 40 + i));
    }
  } finally {
    controls!.setIsa(isa);
  }
});

test('conv2d on one thread and on all threads gives the same values', { skip: !controls && 'native and wasm backends only' }, () => {
  const threads = controls!.info().threads;
  try {
    controls!.setThreads(1);
    checkConv('1 thread', convCases[1][1], 3);
    checkConv('1 thread, direct', convCases[10][1], 4);
    checkConv('1 thread, short direct', convCases[13][1], 5);
  } finally {
    controls!.setThreads(threads);
  }
});

function pool(P: number, H: number, W: number, K: [number, number], o: Partial<Pool2dShape> & { ceil?: boolean } = {}): Pool2dShape {
  const s = { P, H, W, OH: 0, OW: 0, KH: K[0], KW: K[1], strideH: K[0], strideW: K[1], padH: 0, padW: 0, dilationH: 1, dilationW: 1, ...o };
  const out = (n: number, k: number, st: number, p: number, d: number) => {
    const span = n + 2 * p - d * (k - 1) - 1;
    let v = (o.ceil ? Math.ceil(span / st) : Math.floor(span / st)) + 1;
    if (o.ceil && (v - 1) * st >= n + p) v--;
    return v;
  };
  s.OH = out(H, s.KH, s.strideH, s.padH, s.dilationH);
  s.OW = out(W, s.KW, s.strideW, s.padW, s.dilationW);
  return s;
}

const poolCases: [string, Pool2dShape][] = [
  ['2x2 stride 2', pool(64, 28, 28, [2, 2])],
  ['2x2 stride 2, odd sizes', pool(5, 7, 9, [2, 2])],
  ['3x3 stride 2 pad 1', pool(6, 9, 10, [3, 3], { strideH: 2, strideW: 2, padH: 1, padW: 1 })],
  ['ceil mode', pool(5, 7, 8, [3, 2], { strideH: 2, strideW: 3, ceil: true })],
  ['dilation 2', pool(3, 9, 9, [2, 3], { strideH: 1, strideW: 2, dilationH: 2, dilationW: 2, padH: 1 })],
];

test('max pooling and its backward match the reference backend', () => {
  poolCases.forEach(([label, s], k) => {
    const r = rng(40 + k);
    const x = randF32(r, s.P * s.H * s.W);
    x[3] = x[4]; // a tie: the first wins
    // in one 2x2 window at the start of plane 1: a tie between its first row and its second
    const p1 = s.H * s.W;
    x[p1 + s.W] = x[p1] = 5;
    // NaN wins a window, and the last NaN wins over an earlier one (PyTorch), in windows of plane 2
    x[2 * p1 + 1] = NaN;
    x[2 * p1 + 2] = NaN;
    x[2 * p1 + s.W + 3] = NaN;
    const n = s.P * s.OH * s.OW;
    const [out, ref] = [new Float32Array(n), new Float32Array(n)];
    const [idx, refIdx] = [new Int32Array(n), new Int32Array(n)];
    be.maxPool2d(x, s, out, idx);
    jsBackend.maxPool2d(x, s, ref, refIdx);
    assertClose(out, ref, `${label}: maxPool2d`, 0, 0);
    assert.deepEqual([...idx], [...refIdx], `${label}: indices`);
    const dy = randF32(r, n);
    const [dx, refDx] = [new Float32Array(x.length).fill(NaN), new Float32Array(x.length)];
    be.maxPool2dBackward(dy, idx, s, dx);
    jsBackend.maxPool2dBackward(dy, refIdx, s, refDx);
    assertClose(dx, refDx, `${label}: maxPool2dBackward`, 1e-6, 1e-6);
  });
});

test('average pooling and its backward match the reference backend, with every divisor rule', () => {
  poolCases.filter(([label]) => !label.startsWith('dilation')).forEach(([label, s], k) => {
    for (const [pad, div] of [[true, 0], [false, 0], [true, 3]] as const) {
      const r = rng(50 + k);
      const x = randF32(r, s.P * s.H * s.W);
      const n = s.P * s.OH * s.OW;
      const [out, ref] = [new Float32Array(n), new Float32Array(n)];
      be.avgPool2d(x, s, pad, div, out);
      jsBackend.avgPool2d(x, s, pad, div, ref);
      assertClose(out, ref, `${label} (${pad}, ${div}): avgPool2d`, 1e-5, 1e-6);
      const dy = randF32(r, n);
      const [dx, refDx] = [new Float32Array(x.length).fill(NaN), new Float32Array(x.length)];
      be.avgPool2dBackward(dy, s, pad, div, dx);
      jsBackend.avgPool2dBackward(dy, s, pad, div, refDx);
      assertClose(dx, refDx, `${label} (${pad}, ${div}): avgPool2dBackward`, 1e-5, 1e-6);
    }
  });
});

test('batch norm statistics, normalisation and gradients match the reference backend', () => {
  for (const [N, C, HW] of [[8, 16, 25], [3, 5, 1], [64, 3, 49]]) {
    const r = rng(N * 100 + C);
    const x = randF32(r, N * C * HW, -2, 3);
    const [m, v, rm, rv] = [new Float32Array(C), new Float32Array(C), new Float32Array(C), new Float32Array(C)];
    be.batchNormStats(x, N, C, HW, m, v);
    jsBackend.batchNormStats(x, N, C, HW, rm, rv);
    assertClose(m, rm, `(${N}, ${C}, ${HW}) mean`, 1e-5, 1e-6);
    assertClose(v, rv, `(${N}, ${C}, ${HW}) variance`, 1e-5, 1e-6);
    const invstd = rv.map((q) => 1 / Math.sqrt(q + 1e-5));
    const w = randF32(r, C);
    const b = randF32(r, C);
    const [out, ref] = [new Float32Array(x.length), new Float32Array(x.length)];
    be.batchNorm(x, rm, invstd, w, b, N, C, HW, out);
    jsBackend.batchNorm(x, rm, invstd, w, b, N, C, HW, ref);
    assertClose(out, ref, 'batchNorm', 1e-5, 1e-5);
    const dy = randF32(r, x.length);
    for (const batchStats of [true, false]) {
      const got = [new Float32Array(x.length), new Float32Array(C), new Float32Array(C)];
      const want = [new Float32Array(x.length), new Float32Array(C), new Float32Array(C)];
      be.batchNormBackward(dy, x, rm, invstd, w, N, C, HW, batchStats, got[0], got[1], got[2]);
      jsBackend.batchNormBackward(dy, x, rm, invstd, w, N, C, HW, batchStats, want[0], want[1], want[2]);
      ['dx', 'dweight', 'dbias'].forEach((n, i) => assertClose(got[i], want[i], `batchNormBackward ${batchStats}: ${n}`, 1e-4, 1e-4));
    }
  }
});

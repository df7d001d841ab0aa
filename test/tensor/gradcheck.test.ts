// Every registered differentiable op is checked against central finite differences in float64, and a test
// fails when an op has no case here, so coverage cannot slip as ops are added.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import type { Tensor } from '../../src/index.js';
import { gradcheck, leaf, type GradcheckOptions } from '../helpers/gradcheck.js';

type Case = { fn: (...xs: Tensor[]) => Tensor; inputs: () => Tensor[]; options?: GradcheckOptions };
const i32 = (v: number[], shape?: number[]): Tensor => kiln.tensor(v, { dtype: 'int32', shape });

const unary = (f: (x: Tensor) => Tensor, opts: Parameters<typeof leaf>[2] = {}): Case[] => [
  { fn: f, inputs: () => [leaf([3, 4], 1, opts)] },
];

export const cases: Record<string, Case[]> = {
  neg: unary((x) => x.neg()),
  exp: unary((x) => x.exp()),
  log: unary((x) => x.log(), { positive: true }),
  sqrt: unary((x) => x.sqrt(), { positive: true }),
  rsqrt: unary((x) => x.rsqrt(), { positive: true }),
  abs: unary((x) => x.abs(), { awayFromZero: true }),
  sign: unary((x) => x.sign(), { awayFromZero: true }),
  square: unary((x) => x.square()),
  reciprocal: unary((x) => x.reciprocal(), { awayFromZero: true }),
  sin: unary((x) => x.sin()),
  cos: unary((x) => x.cos()),
  tanh: unary((x) => x.tanh()),
  sigmoid: unary((x) => x.sigmoid()),
  relu: unary((x) => x.relu(), { awayFromZero: true }),
  silu: unary((x) => x.silu()),
  gelu: [
    { fn: (x) => x.gelu(), inputs: () => [leaf([3, 5], 2)] },
    { fn: (x) => x.gelu('tanh'), inputs: () => [leaf([3, 5], 3)] },
  ],
  add: [
    { fn: (a, b) => a.add(b), inputs: () => [leaf([3, 4], 1), leaf([4], 2)] },
    { fn: (a, b) => a.add(b), inputs: () => [leaf([2, 1, 4], 1), leaf([3, 1], 2)] },
    { fn: (a) => a.add(2.5), inputs: () => [leaf([3], 1)] },
  ],
  sub: [{ fn: (a, b) => a.sub(b), inputs: () => [leaf([3, 1], 1), leaf([1, 4], 2)] }],
  mul: [{ fn: (a, b) => a.mul(b), inputs: () => [leaf([2, 1, 4], 3), leaf([3, 1], 4)] }],
  div: [{ fn: (a, b) => a.div(b), inputs: () => [leaf([3, 4], 5), leaf([4], 6, { awayFromZero: true })] }],
  pow: [
    { fn: (a) => a.pow(3), inputs: () => [leaf([3, 4], 7)] },
    { fn: (a, b) => a.pow(b), inputs: () => [leaf([3, 4], 8, { positive: true }), leaf([3, 4], 9)] },
  ],
  maximum: [{ fn: (a, b) => a.maximum(b), inputs: () => [leaf([3, 4], 10), leaf([4], 11)] }],
  minimum: [{ fn: (a, b) => a.minimum(b), inputs: () => [leaf([3, 4], 12), leaf([3, 1], 13)] }],
  where: [{
    fn: (a, b) => kiln.where(kiln.tensor([[1, 0, 1, 0]], { dtype: 'float64' }), a, b),
    inputs: () => [leaf([3, 4], 14), leaf([3, 1], 15)],
  }],
  clamp: [{ fn: (x) => x.clamp(-0.5, 0.7), inputs: () => [leaf([4, 5], 16)] }],
  clone: unary((x) => x.clone()),
  cast: [{ fn: (x) => x.to('float32').mul(2).to('float64'), inputs: () => [leaf([5], 17)], options: { eps: 1e-2, rtol: 1e-4, atol: 1e-5 } }],
  sum: [
    { fn: (x) => x.sum(), inputs: () => [leaf([2, 3, 4], 18)] },
    { fn: (x) => x.sum([0, 2], true), inputs: () => [leaf([2, 3, 4], 19)] },
    { fn: (x) => x.sum(1), inputs: () => [leaf([2, 3, 4], 20)] },
  ],
  max: [{ fn: (x) => x.max(1), inputs: () => [leaf([3, 5], 21)] }, { fn: (x) => x.max(), inputs: () => [leaf([4], 22)] }],
  min: [{ fn: (x) => x.min([0, 2], true), inputs: () => [leaf([2, 3, 4], 23)] }],
  mmT: [
    { fn: (a, b) => a.matmul(b), inputs: () => [leaf([3, 4], 24), leaf([4, 2], 25)] },
    { fn: (a, b) => a.matmul(b), inputs: () => [leaf([2, 1, 3, 4], 26), leaf([5, 4, 2], 27)] },
    { fn: (a, b) => a.matmul(b), inputs: () => [leaf([4], 28), leaf([4], 29)] },
    { fn: (a, b) => kiln.mmT(a, b, true, true), inputs: () => [leaf([4, 3], 30), leaf([2, 4], 31)] },
    { fn: (a, b) => kiln.mmT(a, b, true, false), inputs: () => [leaf([2, 4, 3], 32), leaf([2, 4, 5], 33)] },
  ],
  linear: [
    { fn: (x, w, b) => kiln.linear(x, w, b), inputs: () => [leaf([2, 3, 4], 34), leaf([5, 4], 35), leaf([5], 36)] },
    { fn: (x, w) => kiln.linear(x, w), inputs: () => [leaf([3, 4], 37), leaf([2, 4], 38)] },
  ],
  conv1d: [
    { fn: (x, w, b) => kiln.conv1d(x, w, b), inputs: () => [leaf([2, 3, 4], 67), leaf([4, 5], 68), leaf([5], 69)] },
    { fn: (x, w) => kiln.conv1d(x, w), inputs: () => [leaf([3, 4], 70), leaf([4, 2], 71)] },
  ],
  qkvAttention: [{ fn: (x) => kiln.qkvAttention(x, 2), inputs: () => [leaf([2, 5, 12], 80)] }],
  reshape: unary((x) => x.reshape([4, -1])),
  permute: [{ fn: (x) => x.permute([2, 0, 1]), inputs: () => [leaf([2, 3, 4], 39)] }],
  expand: [{ fn: (x) => x.expand([2, 3, 4]), inputs: () => [leaf([3, 1], 40)] }],
  narrow: [{ fn: (x) => x.narrow(1, 1, 2), inputs: () => [leaf([2, 4, 3], 41)] }],
  cat: [{ fn: (a, b) => kiln.cat([a, b], 1), inputs: () => [leaf([2, 3], 42), leaf([2, 2], 43)] }],
  indexSelect: [{ fn: (x) => x.indexSelect(0, i32([2, 0, 2])), inputs: () => [leaf([3, 4], 44)] }],
  gather: [{ fn: (x) => x.gather(1, i32([0, 2, 1, 1, 0, 0], [2, 3])), inputs: () => [leaf([2, 4], 45)] }],
  softmax: [{ fn: (x) => x.softmax(-1), inputs: () => [leaf([3, 5], 46)] }, { fn: (x) => x.softmax(0), inputs: () => [leaf([3, 5], 47)] }],
  logSoftmax: [{ fn: (x) => x.logSoftmax(-1), inputs: () => [leaf([3, 5], 48)] }],
  layerNorm: [
    { fn: (x, w, b) => kiln.layerNorm(x, 6, w, b), inputs: () => [leaf([2, 3, 6], 49), leaf([6], 50), leaf([6], 51)] },
    { fn: (x) => kiln.layerNorm(x, [2, 3]), inputs: () => [leaf([4, 2, 3], 52)] },
  ],
  rmsNorm: [
    { fn: (x, w) => kiln.rmsNorm(x, w, 1e-5), inputs: () => [leaf([2, 3, 6], 90), leaf([6], 91)] },
    { fn: (x) => kiln.rmsNorm(x, null, 0.1), inputs: () => [leaf([4, 5], 92)] },
  ],
  rope: [
    { fn: (x) => kiln.rope(x, 2, { theta: 100 }), inputs: () => [leaf([2, 3, 8], 93)] },
    { fn: (x) => kiln.rope(x, 1, { start: [3, 0] }), inputs: () => [leaf([2, 2, 6], 94)] },
  ],
  embedding: [{ fn: (w) => kiln.embedding(i32([1, 3, 1, 0], [2, 2]), w), inputs: () => [leaf([4, 3], 53)] }],
  dropout: [{ fn: (x) => kiln.dropout(x, 0.4, true, new kiln.Generator(3)), inputs: () => [leaf([4, 5], 54)] }],
  // Recurrences over T = 3 steps, B = 2, H = 3, both directions; weights scaled down to keep the gates unsaturated.
  lstmSequence: [
    { fn: (x, w, b, h, c) => kiln.lstmSequence(x, w.mul(0.5), b, h, c), inputs: () => [leaf([3, 2, 12], 120), leaf([12, 3], 121), leaf([12], 122), leaf([2, 3], 123), leaf([2, 3], 124)] },
    { fn: (x, w, h, c) => kiln.lstmSequence(x, w.mul(0.5), null, h, c, true), inputs: () => [leaf([3, 2, 12], 125), leaf([12, 3], 126), leaf([2, 3], 127), leaf([2, 3], 128)] },
  ],
  gruSequence: [
    { fn: (x, w, b, h) => kiln.gruSequence(x, w.mul(0.5), b, h), inputs: () => [leaf([3, 2, 9], 130), leaf([9, 3], 131), leaf([9], 132), leaf([2, 3], 133)] },
    { fn: (x, w, h) => kiln.gruSequence(x, w.mul(0.5), null, h, true), inputs: () => [leaf([3, 2, 9], 134), leaf([9, 3], 135), leaf([2, 3], 136)] },
  ],
  rnnSequence: [
    { fn: (x, w, b, h) => kiln.rnnSequence(x, w.mul(0.5), b, h), inputs: () => [leaf([3, 2, 3], 140), leaf([3, 3], 141), leaf([3], 142), leaf([2, 3], 143)] },
    { fn: (x, w, h) => kiln.rnnSequence(x, w.mul(0.5), null, h, 'relu', true), inputs: () => [leaf([3, 2, 3], 144, { awayFromZero: true }), leaf([3, 3], 145), leaf([2, 3], 146)] },
  ],
  crossEntropy: [
    { fn: (x) => kiln.crossEntropy(x, i32([0, 3, 1, 2])), inputs: () => [leaf([4, 5], 55)] },
    { fn: (x) => kiln.crossEntropy(x, i32([0, -100, 1, 4]), { labelSmoothing: 0.1, reduction: 'sum' }), inputs: () => [leaf([4, 5], 56)] },
    { fn: (x) => kiln.crossEntropy(x, i32([0, 2, 1, 1, 0, 2], [2, 3]), { reduction: 'none' }), inputs: () => [leaf([2, 3, 3], 57)] },
  ],
  attention: [
    { fn: (q, k, v) => kiln.attention(q, k, v, { heads: 2 }), inputs: () => [leaf([2, 3, 4], 58), leaf([2, 3, 4], 59), leaf([2, 3, 4], 60)] },
    { fn: (q, k, v) => kiln.attention(q, k, v, { heads: 1, causal: false }), inputs: () => [leaf([1, 2, 3], 61), leaf([1, 4, 3], 62), leaf([1, 4, 3], 63)] },
    { fn: (q, k, v) => kiln.attention(q, k, v, { heads: 2 }), inputs: () => [leaf([1, 2, 4], 64), leaf([1, 5, 4], 65), leaf([1, 5, 4], 66)] },
  ],
  conv2d: [
    { fn: (x, w, b) => kiln.conv2d(x, w, b, { padding: 1 }), inputs: () => [leaf([2, 3, 5, 5], 100), leaf([4, 3, 3, 3], 101), leaf([4], 102)] },
    { fn: (x, w) => kiln.conv2d(x, w, null, { stride: [2, 1], padding: [1, 0], dilation: [1, 2] }),
      inputs: () => [leaf([1, 2, 6, 7], 103), leaf([3, 2, 2, 3], 104)] },
    { fn: (x, w, b) => kiln.conv2d(x, w, b, { groups: 2, padding: 'same' }), inputs: () => [leaf([2, 4, 4, 5], 105), leaf([6, 2, 2, 2], 106), leaf([6], 107)] },
  ],
  maxPool2d: [
    { fn: (x) => kiln.maxPool2d(x, 2), inputs: () => [leaf([2, 3, 4, 6], 108)] },
    { fn: (x) => kiln.maxPool2d(x, 3, { stride: 2, padding: 1, dilation: [1, 2], ceilMode: true }), inputs: () => [leaf([2, 7, 8], 109)] },
  ],
  avgPool2d: [
    { fn: (x) => kiln.avgPool2d(x, [2, 3], { stride: 2, padding: 1 }), inputs: () => [leaf([2, 2, 5, 6], 110)] },
    { fn: (x) => kiln.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false, ceilMode: true }), inputs: () => [leaf([3, 6, 6], 111)] },
  ],
  adaptiveAvgPool2d: [
    { fn: (x) => kiln.adaptiveAvgPool2d(x, [3, 2]), inputs: () => [leaf([2, 2, 7, 5], 112)] },
    { fn: (x) => kiln.adaptiveAvgPool2d(x, 1), inputs: () => [leaf([2, 3, 4, 4], 113)] },
  ],
  batchNorm: [
    { fn: (x, w, b) => kiln.batchNorm(x, null, null, { weight: w, bias: b, training: true }),
      inputs: () => [leaf([4, 3, 2, 3], 114), leaf([3], 115), leaf([3], 116)] },
    { fn: (x) => kiln.batchNorm(x, null, null, { training: true }), inputs: () => [leaf([5, 4], 117)] },
    { fn: (x, w, b) => kiln.batchNorm(x, kiln.tensor([0.1, -0.2, 0.3], { dtype: 'float64' }), kiln.tensor([0.5, 1.5, 2], { dtype: 'float64' }),
      { weight: w, bias: b }), inputs: () => [leaf([2, 3, 4], 118), leaf([3], 119), leaf([3], 120)] },
  ],
};

test('every registered op has a gradient check', () => {
  const missing = kiln.registeredOps().filter((op) => !(op in cases));
  assert.deepEqual(missing, [], `ops without a gradient check: ${missing.join(', ')}`);
});

for (const [op, list] of Object.entries(cases)) {
  test(`gradcheck ${op}`, () => {
    list.forEach((c, i) => gradcheck(`${op}#${i}`, c.fn, c.inputs(), c.options));
  });
}

test('gradcheck catches a wrong backward', () => {
  // An op whose backward is deliberately off by a factor of two must be caught.
  const wrong = (x: Tensor): Tensor => kiln.record('wrong', kiln.noGrad(() => x.mul(3)), [x], (g) => [g.mul(6)]);
  assert.throws(() => gradcheck('wrong', wrong, [leaf([3], 1)]), /analytic 6|analytic -?\d/);
});

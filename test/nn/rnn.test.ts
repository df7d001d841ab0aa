// nn.RNN, nn.LSTM and nn.GRU against PyTorch (test/golden/rnn.json from tools/golden/rnn_ref.py): outputs, final
// states and every gradient, in float64 and float32; gradchecks of whole layers; state-dict names; bad input.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import type { DType, Tensor } from '../../src/index.js';
import { assertClose, fromGolden, readGolden, type GoldenTensor } from '../helpers/golden.js';
import { gradcheck, leaf } from '../helpers/gradcheck.js';

const { nn } = kiln;

interface Case {
  name: string; kind: 'RNN' | 'LSTM' | 'GRU';
  config: { inputSize: number; hiddenSize: number; numLayers: number; bidirectional: boolean; batchFirst: boolean;
    bias: boolean; nonlinearity?: 'tanh' | 'relu' };
  state_dict: Record<string, GoldenTensor>; grads: Record<string, GoldenTensor>;
  input: GoldenTensor; h0: GoldenTensor; c0?: GoldenTensor; output: GoldenTensor; h_n: GoldenTensor; c_n?: GoldenTensor;
  w_out: GoldenTensor; w_h: GoldenTensor; w_c?: GoldenTensor;
  grad_input: GoldenTensor; grad_h0: GoldenTensor; grad_c0?: GoldenTensor;
}
const golden = readGolden<{ cases: Case[] }>('rnn.json');

type AnyRnn = kiln.nn.RNN | kiln.nn.LSTM | kiln.nn.GRU;

function build(c: Case, dtype: DType): AnyRnn {
  const { inputSize, hiddenSize, ...rest } = c.config;
  const opts = { ...rest, dtype };
  return c.kind === 'LSTM' ? new nn.LSTM(inputSize, hiddenSize, opts)
    : c.kind === 'GRU' ? new nn.GRU(inputSize, hiddenSize, opts) : new nn.RNN(inputSize, hiddenSize, opts);
}

/** [output, hN, cN or null] whichever layer it is. */
function run(m: AnyRnn, x: Tensor, h0: Tensor, c0: Tensor | null): [Tensor, Tensor, Tensor | null] {
  if (m instanceof nn.LSTM) {
    const [out, [h, c]] = m.forward(x, [h0, c0!]);
    return [out, h, c];
  }
  const [out, h] = m.forward(x, h0);
  return [out, h, null];
}

for (const [dtype, rtol, atol] of [['float64', 1e-9, 1e-10], ['float32', 2e-4, 2e-5]] as const) {
  for (const c of golden.cases) {
    test(`${c.name} matches PyTorch in ${dtype}`, () => {
      const m = build(c, dtype);
      const sd = Object.fromEntries(Object.entries(c.state_dict).map(([k, v]) => [k, fromGolden(v, dtype)]));
      assert.deepEqual(Object.keys(m.stateDict()), Object.keys(c.state_dict), 'parameter names and order');
      m.loadStateDict(sd);
      const x = fromGolden(c.input, dtype).requiresGrad_();
      const h0 = fromGolden(c.h0, dtype).requiresGrad_();
      const c0 = c.c0 ? fromGolden(c.c0, dtype).requiresGrad_() : null;
      const [out, hN, cN] = run(m, x, h0, c0);
      assertClose(out, c.output, 'output', rtol, atol);
      assertClose(hN, c.h_n, 'h_n', rtol, atol);
      if (c.c_n) assertClose(cN!, c.c_n, 'c_n', rtol, atol);
      let loss = out.mul(fromGolden(c.w_out, dtype)).sum().add(hN.mul(fromGolden(c.w_h, dtype)).sum());
      if (c.w_c) loss = loss.add(cN!.mul(fromGolden(c.w_c, dtype)).sum());
      loss.backward();
      const params = Object.fromEntries(m.namedParameters());
      for (const [k, g] of Object.entries(c.grads)) assertClose(params[k].grad!, g, `grad ${k}`, rtol, atol * 10);
      assertClose(x.grad!, c.grad_input, 'grad input', rtol, atol * 10);
      assertClose(h0.grad!, c.grad_h0, 'grad h0', rtol, atol * 10);
      if (c.grad_c0) assertClose(c0!.grad!, c.grad_c0, 'grad c0', rtol, atol * 10);
    });
  }
}

test('a state dict goes out and back in with the same values', () => {
  const a = new nn.LSTM(3, 4, { numLayers: 2, bidirectional: true });
  const b = new nn.LSTM(3, 4, { numLayers: 2, bidirectional: true });
  b.loadStateDict(a.stateDict());
  const x = kiln.randn([5, 2, 3]);
  assert.deepEqual(a.forward(x)[0].data(), b.forward(x)[0].data());
  assert.deepEqual(Object.keys(a.stateDict()).slice(0, 5),
    ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0', 'weight_ih_l0_reverse']);
});

test('parameters start uniform in +-1/sqrt(hidden) with PyTorch shapes', () => {
  const m = new nn.GRU(6, 16, { numLayers: 2, bidirectional: true, bias: false });
  const shapes = Object.fromEntries(m.namedParameters().map(([k, p]) => [k, p.shape]));
  assert.deepEqual(shapes, {
    weight_ih_l0: [48, 6], weight_hh_l0: [48, 16], weight_ih_l0_reverse: [48, 6], weight_hh_l0_reverse: [48, 16],
    weight_ih_l1: [48, 32], weight_hh_l1: [48, 16], weight_ih_l1_reverse: [48, 32], weight_hh_l1_reverse: [48, 16],
  });
  for (const p of m.parameters()) {
    const v = p.data();
    const max = Math.max(...v.map(Math.abs));
    assert.ok(max <= 0.25 && max > 0.2, `max |w| ${max} should be just under 1/sqrt(16)`);
  }
});

test('without initial states the layers start from zeros, and unbatched input works', () => {
  const m = new nn.LSTM(3, 4, { numLayers: 2 });
  const x = kiln.randn([5, 3]);
  const [out, [h, c]] = m.forward(x);
  assert.deepEqual(out.shape, [5, 4]);
  assert.deepEqual(h.shape, [2, 4]);
  assert.deepEqual(c.shape, [2, 4]);
  const z = kiln.zeros([2, 1, 4]);
  const [outB] = m.forward(x.unsqueeze(1), [z, z]);
  assert.deepEqual(outB.squeeze(1).data(), out.data());
});

test('dropout acts between layers only, in training mode only', () => {
  const one = new nn.GRU(3, 4, { dropout: 0.5 });
  const x = kiln.randn([4, 2, 3]);
  const a = one.forward(x)[0].data();
  one.eval();
  assert.deepEqual(one.forward(x)[0].data(), a, 'a single layer has no dropout');
  const two = new nn.GRU(3, 4, { numLayers: 2, dropout: 0.5, generator: new kiln.Generator(1) });
  const train = two.forward(x)[0].data();
  two.eval();
  const evalOut = two.forward(x)[0].data();
  assert.notDeepEqual(train, evalOut);
  assert.deepEqual(two.forward(x)[0].data(), evalOut);
});

test('gradcheck: a 2-layer bidirectional batch-first LSTM, GRU and RNN in float64', () => {
  const layers: AnyRnn[] = [
    new nn.LSTM(2, 3, { numLayers: 2, bidirectional: true, batchFirst: true, dtype: 'float64' }),
    new nn.GRU(2, 3, { numLayers: 2, bidirectional: true, batchFirst: true, dtype: 'float64' }),
    new nn.RNN(2, 3, { numLayers: 2, bidirectional: true, batchFirst: true, dtype: 'float64' }),
  ];
  for (const m of layers) {
    const params = m.parameters();
    const fn = (x: Tensor, ..._ps: Tensor[]): Tensor => {
      const [out, h, c] = run(m, x, kiln.zeros([4, 2, 3], { dtype: 'float64' }), kiln.zeros([4, 2, 3], { dtype: 'float64' }));
      const parts = [out.reshape([-1]), h.reshape([-1])];
      if (c) parts.push(c.reshape([-1]));
      return kiln.cat(parts, 0);
    };
    gradcheck(m.constructor.name, fn, [leaf([2, 3, 2], 5), ...params]);
  }
});

test('bad input is refused with a sentence naming what was wrong', () => {
  const m = new nn.LSTM(3, 4, { numLayers: 2, batchFirst: true });
  assert.throws(() => m.forward(kiln.randn([2, 5, 6])), /LSTM: input has 6 features per step, expected inputSize 3/);
  assert.throws(() => m.forward(kiln.randn([2, 5, 3, 1])), /LSTM: input must be 3-D \(B, T, inputSize\) or 2-D/);
  const x = kiln.randn([2, 5, 3]);
  assert.throws(() => m.forward(x, [kiln.zeros([1, 2, 4]), kiln.zeros([2, 2, 4])]), /LSTM: h0 must have shape \[2, 2, 4\].*got \[1, 2, 4\]/);
  assert.throws(() => m.forward(x, [kiln.zeros([2, 2, 4]), kiln.zeros([2, 3, 4])]), /LSTM: c0 must have shape/);
  assert.throws(() => m.forward(x, kiln.zeros([2, 2, 4]) as unknown as [Tensor, Tensor]), /LSTM: the initial state must be a pair/);
  assert.throws(() => m.forward(x.to('float64')), /LSTM: input is float64 but the parameters are float32/);
  assert.throws(() => m.forward(kiln.randn([2, 0, 3])), /sequence length and batch must be at least 1/);
  const g = new nn.GRU(3, 4);
  assert.throws(() => g.forward(kiln.randn([5, 2, 3]), kiln.zeros([1, 3, 4])), /GRU: h0 must have shape \[1, 2, 4\]/);
  assert.throws(() => new nn.RNN(3, 4, { nonlinearity: 'sigmoid' as 'tanh' }), /RNN: nonlinearity must be 'tanh' or 'relu'/);
  assert.throws(() => new nn.LSTM(3, 0), /LSTM: hiddenSize must be a positive integer, got 0/);
  assert.throws(() => new nn.GRU(3, 4, { numLayers: 1.5 }), /GRU: numLayers must be a positive integer/);
  assert.throws(() => new nn.GRU(3, 4, { dropout: 1 }), /GRU: dropout must be a number in \[0, 1\)/);
  const w = kiln.randn([8, 3]);
  assert.throws(() => kiln.lstmSequence(kiln.randn([3, 1, 8]), w, null, kiln.zeros([1, 2]), kiln.zeros([1, 2])),
    /lstmSequence: weightHh must have shape \(4 \* hidden, hidden\), got \[8, 3\]/);
  assert.throws(() => kiln.gruSequence(kiln.randn([3, 1, 6]), kiln.randn([6, 2]), null, kiln.zeros([2, 2])),
    /gruSequence: h0 must have shape \(1, 2\), got \[2, 2\]/);
});

/** LSTM and GRU steps composed from primitive ops: the reference the fused sequence ops are held against. */
function composed(kind: 'LSTM' | 'GRU', xproj: Tensor, w: Tensor, b: Tensor, h0: Tensor, c0: Tensor): Tensor[] {
  const T = xproj.shape[0];
  const H = w.shape[1];
  let h = h0;
  let c = c0;
  const hs: Tensor[] = [];
  for (let t = 0; t < T; t++) {
    const xt = xproj.narrow(0, t, 1).squeeze(0);
    const gh = h.matmul(w.transpose(0, 1)).add(b);
    if (kind === 'LSTM') {
      const [i, f, g, o] = kiln.chunk(xt.add(gh), 4, 1);
      c = f.sigmoid().mul(c).add(i.sigmoid().mul(g.tanh()));
      h = o.sigmoid().mul(c.tanh());
    } else {
      const [xr, xz, xn] = kiln.chunk(xt, 3, 1);
      const [hr, hz, hn] = kiln.chunk(gh, 3, 1);
      const r = xr.add(hr).sigmoid();
      const z = xz.add(hz).sigmoid();
      const n = xn.add(r.mul(hn)).tanh();
      h = z.neg().add(1).mul(n).add(z.mul(h));
    }
    hs.push(h);
  }
  assert.equal(h.shape[1], H);
  return [kiln.stack(hs, 0), c];
}

test('the fused LSTM and GRU sequence ops match their composed reference in float32 (vector and tail lanes)', () => {
  const H = 21; // 16 lanes and a tail of 5 on AVX-512, 8 + 8 + 5 on AVX2
  for (const kind of ['LSTM', 'GRU'] as const) {
    const G = kind === 'LSTM' ? 4 : 3;
    const gen = new kiln.Generator(11);
    const mk = (shape: number[], s = 1): Tensor => kiln.randn(shape, { generator: gen }).mul(s).requiresGrad_();
    const inputs = [mk([4, 3, G * H]), mk([G * H, H], 0.3), mk([G * H], 0.5), mk([3, H]), mk([3, H])];
    const [xp, w, b, h0, c0] = inputs;
    const fused = kind === 'LSTM' ? kiln.lstmSequence(xp, w, b, h0, c0) : kiln.gruSequence(xp, w, b, h0);
    const [refH, refC] = composed(kind, xp, w, b, h0, c0);
    const outH = fused.narrow(0, 0, 4);
    const wts = kiln.randn(outH.shape, { generator: gen });
    const close = (a: Tensor, e: Tensor, what: string): void => assertClose(a, { shape: [...e.shape], data: [...e.data()] }, what, 1e-4, 1e-5);
    close(outH, refH, `${kind} h`);
    if (kind === 'LSTM') close(fused.narrow(0, 4, 1).squeeze(0), refC, 'LSTM c_T');
    const lossOf = (h: Tensor, c: Tensor | null): Tensor => (c ? h.mul(wts).sum().add(c.sum()) : h.mul(wts).sum());
    const gradsOf = (loss: Tensor): Tensor[] => {
      for (const t of inputs) t.grad = null;
      loss.backward();
      return inputs.map((t) => (t.grad ? t.grad.clone() : kiln.zeros(t.shape)));
    };
    const gf = gradsOf(lossOf(outH, kind === 'LSTM' ? fused.narrow(0, 4, 1) : null));
    const gr = gradsOf(lossOf(refH, kind === 'LSTM' ? refC : null));
    gf.forEach((g, i) => close(g, gr[i], `${kind} grad of input ${i}`));
  }
});

test('retainGraph keeps the saved buffers: a second backward gives the same gradients again', () => {
  for (const m of [new nn.LSTM(3, 4, { numLayers: 2 }), new nn.GRU(3, 4), new nn.RNN(3, 4)] as AnyRnn[]) {
    const x = kiln.randn([5, 2, 3]);
    const loss = (m.forward(x)[0] as Tensor).square().sum();
    loss.backward(undefined, { retainGraph: true });
    const first = m.parameters().map((p) => [...p.grad!.data()]);
    for (const p of m.parameters()) p.grad = null;
    loss.backward();
    m.parameters().forEach((p, i) => assert.deepEqual([...p.grad!.data()], first[i]));
  }
});

test('inference under noGrad gives the recording forward pass its buffers back and the same outputs', () => {
  const m = new nn.LSTM(5, 24, { numLayers: 2, bidirectional: true });
  const g = new nn.GRU(5, 24);
  const x = kiln.randn([6, 3, 5]);
  const want = [m.forward(x)[0].data(), g.forward(x)[0].data()];
  for (let i = 0; i < 3; i++) {
    const got = kiln.noGrad(() => [m.forward(x)[0].data(), g.forward(x)[0].data()]);
    assert.deepEqual(got, want);
  }
  assert.deepEqual([m.forward(x)[0].data(), g.forward(x)[0].data()], want);
});

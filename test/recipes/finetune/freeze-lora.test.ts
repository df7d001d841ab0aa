// Freezing by name patterns and LoRA: pattern matching, gradient checks in float64, merge equivalence, PEFT-style
// adapter state, and the bad inputs (a pattern or target that matches nothing, a target that is not linear).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../../src/index.js';
import { Module, nn, type Tensor } from '../../../src/index.js';
import { freezeParameters, namePattern } from '../../../src/nn/freeze.js';
import {
  applyLoRA, mergeLoRA, LoRALinear, adapterStateDict, adapterConfig, loadAdapter, loraLayers,
} from '../../../src/nn/lora.js';
import { Conv1D } from '../../../src/models/conv1d.js';
import { gradcheck } from '../../helpers/gradcheck.js';

class Block extends Module {
  c_attn: Conv1D;
  c_proj: Conv1D;
  fc: nn.Linear;
  constructor(C: number, dtype: kiln.DType) {
    super();
    this.c_attn = new Conv1D(C, 3 * C, { dtype, std: 0.5 });
    this.c_proj = new Conv1D(3 * C, C, { dtype, std: 0.5 });
    this.fc = new nn.Linear(C, C, { dtype });
  }
  forward(x: Tensor): Tensor { return this.fc.forward(this.c_proj.forward(this.c_attn.forward(x).tanh())); }
}

class Toy extends Module {
  wte: nn.Embedding;
  h: nn.ModuleList;
  constructor(dtype: kiln.DType = 'float32') {
    super();
    this.wte = new nn.Embedding(10, 4, { dtype });
    this.h = new nn.ModuleList([new Block(4, dtype), new Block(4, dtype), new Block(4, dtype)]);
  }
  forward(x: Tensor): Tensor {
    let y = x;
    for (const b of this.h) y = (b as Block).forward(y);
    return y;
  }
}

test('name patterns: globs, classes, alternatives, ranges, and prefixes', () => {
  assert.ok(namePattern('transformer.wte.*').test('transformer.wte.weight'));
  assert.ok(namePattern('transformer.wte').test('transformer.wte.weight'));
  assert.ok(!namePattern('transformer.wte').test('transformer.wtex.weight'));
  assert.ok(namePattern('h.[0-1].*').test('h.1.fc.weight'));
  assert.ok(!namePattern('h.[0-1].*').test('h.2.fc.weight'));
  assert.ok(namePattern('h.{0..10}.fc').test('h.10.fc.bias'));
  assert.ok(!namePattern('h.{0..10}.fc').test('h.11.fc.bias'));
  assert.ok(namePattern('h.*.{c_attn,c_proj}.weight').test('h.3.c_proj.weight'));
  assert.ok(!namePattern('h.1').test('h.10.fc.weight'));
  assert.throws(() => namePattern('h.[0'), /no closing/);
});

test('freezeParameters freezes what the patterns match and reports it', () => {
  kiln.manualSeed(1);
  const m = new Toy();
  const r = freezeParameters(m, ['wte.*', 'h.{0..1}.*']);
  assert.deepEqual(r.matched['wte.*'], ['wte.weight']);
  assert.equal(r.matched['h.{0..1}.*'].length, 12);
  for (const [n, p] of m.namedParameters()) assert.equal(p.requiresGrad, n.startsWith('h.2.'), n);
  assert.equal(r.trainable, m.numParameters({ trainableOnly: true }));
  // The frozen ones get no gradient; the optimizer would only see the rest.
  const x = kiln.randn([2, 4]);
  m.forward(x).sum().backward();
  for (const [n, p] of m.namedParameters()) assert.equal(p.grad !== null, n.startsWith('h.2.'), n);
});

test('freezeParameters: a pattern that matches nothing is an error and changes nothing', () => {
  const m = new Toy();
  assert.throws(() => freezeParameters(m, ['wte.*', 'transformer.h.0.*']),
    /freeze: pattern 'transformer\.h\.0\.\*' matches no parameter of the model \(its \d+ parameter names look like 'wte\.weight'/);
  assert.ok(m.parameters().every((p) => p.requiresGrad));
});

test('LoRA on Linear and Conv1D: gradients match finite differences in float64', () => {
  kiln.manualSeed(2);
  for (const base of [new nn.Linear(5, 3, { dtype: 'float64' }), new Conv1D(5, 3, { dtype: 'float64', std: 0.5 })]) {
    const layout = base instanceof nn.Linear ? 'out-in' : 'in-out';
    const l = new LoRALinear(base, layout, 2, 6);
    kiln.nn.init.normal_(l.lora_B.weight, 0, 0.5); // B is zeros at first; give A's gradient something to carry
    const x = kiln.randn([2, 3, 5], { dtype: 'float64' }).requiresGrad_();
    gradcheck(`lora-${layout}`, (xi) => l.forward(xi), [x, l.lora_A.weight, l.lora_B.weight]);
    assert.equal(base.weight.grad, null, 'the base weight stays frozen');
    assert.equal(base.weight.requiresGrad, false);
  }
});

test('a fresh adapter leaves the output unchanged; merged forward equals adapter forward', () => {
  kiln.manualSeed(3);
  const m = new Toy('float64');
  const x = kiln.randn([2, 3, 4], { dtype: 'float64' });
  const before = kiln.noGrad(() => m.forward(x)).data();
  const r = applyLoRA(m, { rank: 2, alpha: 4, targets: ['c_attn', 'h.2.c_proj', 'fc'] });
  assert.deepEqual(r.adapted, ['h.0.c_attn', 'h.0.fc', 'h.1.c_attn', 'h.1.fc', 'h.2.c_attn', 'h.2.c_proj', 'h.2.fc']);
  assert.deepEqual(m.forward(x).data(), before);
  // Only adapters train.
  const trainable = m.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
  assert.ok(trainable.length === 14 && trainable.every((n) => /\.lora_[AB]\.weight$/.test(n)), trainable.join());
  assert.ok(m.namedParameters().some(([n]) => n === 'h.0.c_attn.base_layer.weight'));
  // Train a few steps so B is nonzero, then compare.
  const opt = new kiln.optim.Adam(m.trainableParameters(), { lr: 0.05 });
  for (let i = 0; i < 3; i++) {
    opt.zeroGrad();
    m.forward(x).square().mean().backward();
    opt.step();
  }
  m.eval();
  const adapted = kiln.noGrad(() => m.forward(x)).data() as Float64Array;
  assert.ok(adapted.some((v, i) => Math.abs(v - (before as Float64Array)[i]) > 1e-6), 'training changed the output');
  const sd = adapterStateDict(m);
  assert.deepEqual(sd['base_model.model.h.0.c_attn.lora_A.weight'].shape, [2, 4]);
  assert.deepEqual(sd['base_model.model.h.0.c_attn.lora_B.weight'].shape, [12, 2]);
  const cfg = adapterConfig(m, ['c_attn', 'h.2.c_proj', 'fc']);
  const saved = Object.fromEntries(Object.entries(sd).map(([k, v]) => [k, v.clone().detach()]));
  const merged = mergeLoRA(m);
  assert.equal(merged.length, 7);
  assert.equal(loraLayers(m).length, 0);
  assert.deepEqual(m.namedParameters().map(([n]) => n), new Toy('float64').namedParameters().map(([n]) => n));
  const after = kiln.noGrad(() => m.forward(x)).data() as Float64Array;
  after.forEach((v, i) => assert.ok(Math.abs(v - adapted[i]) < 1e-12, `merged output ${i}: ${v} vs ${adapted[i]}`));
  // Adapters reload onto a fresh copy of the base weights and give the adapted output.
  kiln.manualSeed(3);
  const fresh = new Toy('float64');
  loadAdapter(fresh, cfg, saved);
  fresh.eval();
  const reloaded = kiln.noGrad(() => fresh.forward(x)).data() as Float64Array;
  reloaded.forEach((v, i) => assert.ok(Math.abs(v - adapted[i]) < 1e-12));
});

test('applyLoRA: a target that matches no layer, or a non-linear layer, is an error and changes nothing', () => {
  const m = new Toy();
  assert.throws(() => applyLoRA(m, { rank: 2, targets: ['c_attn', 'q_proj'] }),
    /applyLoRA: target 'q_proj' matches no layer of the model; its linear layers are named like 'h\.0\.c_attn'/);
  assert.throws(() => applyLoRA(m, { rank: 2, targets: ['wte'] }), /matches 'wte' \(Embedding\), but LoRA wraps only linear layers/);
  assert.throws(() => applyLoRA(m, { rank: 0, targets: ['fc'] }), /rank must be a positive integer/);
  assert.throws(() => applyLoRA(m, { rank: 2, targets: [] }), /at least one/);
  assert.equal(loraLayers(m).length, 0);
  assert.ok(m.parameters().every((p) => p.requiresGrad));
});

test('frozen parameters refuse backward with a clear error', () => {
  const l = new nn.Linear(3, 2);
  l.freeze();
  assert.throws(() => l.forward(kiln.randn([1, 3])).sum().backward(), /does not require grad.*frozen parameters/);
});

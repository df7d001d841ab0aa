import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';

const { nn } = kiln;

class Block extends nn.Module {
  fc = new nn.Linear(4, 4);
  norm = new nn.LayerNorm(4);
  forward(x: kiln.Tensor): kiln.Tensor { return this.norm.forward(this.fc.forward(x)); }
}

class Net extends nn.Module {
  embed = new nn.Embedding(10, 4);
  layers = new nn.ModuleList([new Block(), new Block()]);
  heads = new nn.ModuleDict({ cls: new nn.Linear(4, 3) });
  drop = new nn.Dropout(0.5);
  forward(idx: kiln.Tensor): kiln.Tensor {
    let h = this.embed.forward(idx);
    for (const l of this.layers) h = (l as Block).forward(h);
    return (this.heads.get('cls') as kiln.nn.Linear).forward(this.drop.forward(h));
  }
}

test('parameters are registered from properties with PyTorch-style dotted names', () => {
  const net = new Net();
  assert.deepEqual(net.namedParameters().map(([n]) => n), [
    'embed.weight',
    'layers.0.fc.weight', 'layers.0.fc.bias', 'layers.0.norm.weight', 'layers.0.norm.bias',
    'layers.1.fc.weight', 'layers.1.fc.bias', 'layers.1.norm.weight', 'layers.1.norm.bias',
    'heads.cls.weight', 'heads.cls.bias',
  ]);
  assert.equal(net.numParameters(), 40 + 2 * (16 + 4 + 4 + 4) + 12 + 3);
  const seq = new nn.Sequential(new nn.Linear(2, 3), new nn.ReLU(), new nn.Linear(3, 1));
  assert.deepEqual(seq.namedParameters().map(([n]) => n), ['0.weight', '0.bias', '2.weight', '2.bias']);
  assert.deepEqual(new nn.MLP([4, 8, 8, 2]).namedParameters().map(([n]) => n),
    ['0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias']);
});

test('stateDict and loadStateDict round-trip; mismatches are reported by name and change nothing', () => {
  const a = new Net();
  const b = new Net();
  b.loadStateDict(a.stateDict());
  const idx = kiln.tensor([[1, 2, 3]], { dtype: 'int32' });
  a.eval();
  b.eval();
  assert.deepEqual(b.forward(idx).toArray(), a.forward(idx).toArray());

  const before = b.stateDict()['heads.cls.bias'].toArray();
  const sd = a.stateDict();
  delete sd['embed.weight'];
  sd['extra.weight'] = kiln.zeros([1]);
  sd['heads.cls.bias'] = kiln.zeros([4]);
  assert.throws(() => b.loadStateDict(sd), (e: Error) =>
    /'heads.cls.bias' has shape \[4\] but the module expects \[3\]/.test(e.message) &&
    /missing: 'embed.weight'/.test(e.message) && /unexpected: 'extra.weight'/.test(e.message));
  assert.deepEqual(b.stateDict()['heads.cls.bias'].toArray(), before, 'a failed load changes nothing');

  const partial = a.stateDict();
  delete partial['embed.weight'];
  const res = b.loadStateDict(partial, { strict: false });
  assert.deepEqual(res.missing, ['embed.weight']);
});

test('train/eval propagate; dropout is the identity in eval mode', () => {
  const net = new Net();
  net.eval();
  assert.ok(net.modules().every((m) => !m.training));
  const x = kiln.ones([100]);
  assert.deepEqual(net.drop.forward(x).toArray(), x.toArray());
  net.train();
  const y = net.drop.forward(x).data();
  assert.ok([...y].some((v) => v === 0) && [...y].some((v) => v === 2), 'dropout zeroes and rescales by 1/(1-p)');
});

test('frozen parameters get no gradient and no update', () => {
  const net = new Net();
  net.embed.freeze();
  const opt = new kiln.optim.SGD(net.parameters(), { lr: 0.1 });
  const before = net.embed.weight.toArray();
  const loss = net.forward(kiln.tensor([[1, 2]], { dtype: 'int32' })).sum();
  loss.backward();
  assert.equal(net.embed.weight.grad, null);
  assert.ok(net.layers.at(0).parameters().every((p) => p.grad !== null));
  opt.step();
  assert.deepEqual(net.embed.weight.toArray(), before);
  assert.equal(net.numParameters({ trainableOnly: true }), net.numParameters() - 40);
  net.unfreeze();
  assert.equal(net.trainableParameters().length, net.parameters().length);
});

test('default initialisations follow PyTorch', () => {
  kiln.manualSeed(0);
  const lin = new nn.Linear(400, 300);
  const bound = 1 / Math.sqrt(400);
  const w = lin.weight.data();
  assert.ok(Math.max(...w) <= bound && Math.min(...w) >= -bound);
  // U(-b, b) has variance b^2 / 3.
  const varW = lin.weight.var().item();
  assert.ok(Math.abs(varW - bound * bound / 3) < 0.05 * bound * bound, `Linear weight variance ${varW}`);
  const emb = new nn.Embedding(1000, 64);
  assert.ok(Math.abs(emb.weight.var().item() - 1) < 0.05, 'Embedding ~ N(0, 1)');
  const ln = new nn.LayerNorm(5);
  assert.deepEqual(ln.weight!.toArray(), [1, 1, 1, 1, 1]);
  assert.deepEqual(ln.bias!.toArray(), [0, 0, 0, 0, 0]);
});

test('layers reject bad sizes and mismatched inputs with clear errors', () => {
  assert.throws(() => new nn.Linear(0, 3), /inFeatures must be a positive integer, got 0/);
  assert.throws(() => new nn.Linear(4, 2).forward(kiln.zeros([3, 5])), /input of shape \[3, 5\] does not match weight \[2, 4\]/);
  assert.throws(() => new nn.Embedding(5, 2).forward(kiln.tensor([7], { dtype: 'int32' })), /index 7 is out of range/);
  assert.throws(() => new nn.Embedding(5, 2).forward(kiln.tensor([1])), /int32/);
  assert.throws(() => new nn.LayerNorm(4).forward(kiln.zeros([2, 3])), /normalized shape \[4\] does not match/);
  assert.throws(() => new nn.Dropout(1.5), /p must be in \[0, 1\]/);
  assert.throws(() => new nn.MLP([3]), /at least an input and an output/);
});

test('RMSNorm and Module.to(float64)', () => {
  const n = new nn.RMSNorm(4, { eps: 1e-6 });
  const x = kiln.tensor([[1, 2, 3, 4]]);
  const rms = Math.sqrt((1 + 4 + 9 + 16) / 4 + 1e-6);
  assert.ok(n.forward(x).data().every((v, i) => Math.abs(v - (i + 1) / rms) < 1e-6));
  const net = new Net().to('float64');
  assert.ok(net.parameters().every((p) => p.dtype === 'float64'));
});

test('optimizers reject bad settings', () => {
  const p = new nn.Linear(2, 2).parameters();
  assert.throws(() => new kiln.optim.SGD([], { lr: 0.1 }), /empty parameter list/);
  assert.throws(() => new kiln.optim.SGD(p, { lr: -1 }), /lr must be a non-negative number/);
  assert.throws(() => new kiln.optim.SGD(p, { lr: 0.1, nesterov: true }), /Nesterov momentum needs momentum > 0/);
  assert.throws(() => new kiln.optim.Adam(p, { betas: [1.2, 0.9] }), /betas must be in \[0, 1\)/);
  assert.throws(() => new kiln.optim.AdamW([{ params: p }, { params: [p[0]] }]), /more than one group/);
  assert.throws(() => kiln.optim.cosineWithWarmup({ warmup: 10, total: 5 }), /total \(5\) must be greater than warmup \(10\)/);
  assert.throws(() => kiln.optim.clipGradNorm(p, 0), /maxNorm must be positive/);
});

test('schedules: step decay, linear warmup, one-cycle shapes', () => {
  const s = kiln.optim.stepDecay({ stepSize: 2, gamma: 0.5 });
  assert.deepEqual([0, 1, 2, 3, 4].map(s), [1, 1, 0.5, 0.5, 0.25]);
  const w = kiln.optim.linearWarmup({ warmup: 4 });
  assert.deepEqual([0, 2, 4, 9].map(w), [0, 0.5, 1, 1]);
  const oc = kiln.optim.oneCycle({ total: 100, pctStart: 0.3 });
  assert.ok(Math.abs(oc(0) - 1 / 25) < 1e-12);
  assert.ok(Math.abs(oc(29) - 1) < 1e-12);
  assert.ok(oc(99) < 1e-5 && oc(60) < 1 && oc(60) > oc(90));
});

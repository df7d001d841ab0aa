import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';

test('creation: shapes, dtypes, ranges, seeded randomness', () => {
  assert.deepEqual(kiln.tensor([[1, 2], [3, 4]]).shape, [2, 2]);
  assert.equal(kiln.tensor(new Float64Array(6), { shape: [2, 3] }).dtype, 'float64');
  assert.equal(kiln.tensor(new Int32Array([1, 2])).dtype, 'int32');
  assert.deepEqual(kiln.arange(5).toArray(), [0, 1, 2, 3, 4]);
  assert.equal(kiln.arange(5).dtype, 'int32');
  assert.deepEqual(kiln.arange(0, 1, 0.25).toArray(), [0, 0.25, 0.5, 0.75]);
  assert.deepEqual(kiln.linspace(0, 1, 5).toArray(), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(kiln.eye(2, 3).toArray(), [[1, 0, 0], [0, 1, 0]]);
  assert.deepEqual(kiln.full([2], 7, { dtype: 'int32' }).toArray(), [7, 7]);
  kiln.manualSeed(42);
  const a = kiln.randn([5]).toArray();
  kiln.manualSeed(42);
  assert.deepEqual(kiln.randn([5]).toArray(), a);
  const r = kiln.randint(3, 6, [1000]).data();
  assert.ok(r.every((v) => v >= 3 && v < 6) && new Set(r).size === 3);
  const u = kiln.rand([10000]).mean().item();
  assert.ok(Math.abs(u - 0.5) < 0.02);
  const n = kiln.randn([20000]);
  assert.ok(Math.abs(n.mean().item()) < 0.03 && Math.abs(n.std().item() - 1) < 0.03);
  const g = new kiln.Generator(9);
  const state = g.getState();
  const first = g.uniform();
  assert.equal(new kiln.Generator().setState(state).uniform(), first, 'generator state restores the stream');
});

test('creation rejects bad input with clear errors', () => {
  assert.throws(() => kiln.tensor([[1, 2], [3]]), /ragged nested array: expected 2 elements at \[1\], got 1/);
  assert.throws(() => kiln.tensor([1, 2, 3], { shape: [2, 2] }), /3 values do not fill shape \[2, 2\]/);
  assert.throws(() => kiln.zeros([2, -1]), /invalid size -1/);
  assert.throws(() => kiln.zeros([2], { dtype: 'float16' as never }), /unknown dtype 'float16'/);
  assert.throws(() => kiln.randint(5, 5, [2]), /low < high/);
  assert.throws(() => kiln.manualSeed(1.5), /safe integer/);
});

test('reading: item, toArray, data copy, toString', () => {
  const t = kiln.tensor([[1.5, 2], [3, 4]]);
  assert.throws(() => t.item(), /one element, got shape \[2, 2\]/);
  assert.equal(t.sum().item(), 10.5);
  const d = t.data();
  d[0] = 99;
  assert.equal(t.toArray()[0 as never][0], 1.5, 'data() is a copy');
  assert.match(t.toString(), /^tensor\(\[\[1\.5000, 2\.0000\],\n {8}\[3\.0000, 4\.0000\]\]\)$/);
  assert.match(kiln.zeros([2000]).toString(), /\.\.\./);
  assert.match(kiln.arange(3).toString(), /dtype=int32/);
});

test('broadcasting, reductions and shape ops give NumPy results', () => {
  const a = kiln.tensor([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(a.add(kiln.tensor([10, 20, 30])).toArray(), [[11, 22, 33], [14, 25, 36]]);
  assert.deepEqual(a.mul(kiln.tensor([[2], [3]])).toArray(), [[2, 4, 6], [12, 15, 18]]);
  assert.deepEqual(a.sum(0).toArray(), [5, 7, 9]);
  assert.deepEqual(a.mean(1, true).toArray(), [[2], [5]]);
  assert.deepEqual(a.max(1).toArray(), [3, 6]);
  assert.deepEqual(a.argmax(1).toArray(), [2, 2]);
  assert.deepEqual(a.argmin().toArray(), 0);
  assert.deepEqual(a.transpose(0, 1).toArray(), [[1, 4], [2, 5], [3, 6]]);
  assert.deepEqual(a.reshape([3, -1]).toArray(), [[1, 2], [3, 4], [5, 6]]);
  assert.deepEqual(a.slice(1, -2).toArray(), [[2, 3], [5, 6]]);
  assert.deepEqual(a.split(2, 1).map((t) => t.shape), [[2, 2], [2, 1]]);
  assert.deepEqual(a.chunk(2, 0).map((t) => t.toArray()), [[[1, 2, 3]], [[4, 5, 6]]]);
  assert.deepEqual(kiln.stack([a, a], 1).shape, [2, 2, 3]);
  assert.deepEqual(a.gt(3).toArray(), [[0, 0, 0], [1, 1, 1]]);
  assert.deepEqual(a.clamp(2, 5).toArray(), [[2, 2, 3], [4, 5, 5]]);
  assert.deepEqual(a.flatten().shape, [6]);
  assert.deepEqual(kiln.zeros([2, 1, 3, 1]).squeeze().shape, [2, 3]);
  assert.deepEqual(kiln.tensor([1, 2, 3], { dtype: 'int32' }).add(1).toArray(), [2, 3, 4]);
  assert.ok(Math.abs(kiln.logsumexp(kiln.tensor([[1000, 1000]]), 1).item() - (1000 + Math.log(2))) < 1e-4, 'logsumexp is stable');
  assert.equal(kiln.zeros([0, 3]).sum().item(), 0, 'empty tensors reduce');
  assert.deepEqual(kiln.zeros([0, 3]).matmul(kiln.zeros([3, 2])).shape, [0, 2]);
});

test('ops reject bad input naming the op and the shapes', () => {
  const a = kiln.zeros([2, 3]);
  assert.throws(() => a.add(kiln.zeros([4])), /add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
  assert.throws(() => a.matmul(kiln.zeros([2, 3])), /matmul: shapes \[2, 3\] and \[2, 3\] cannot be multiplied \(inner dimensions 3 and 2 differ\)/);
  assert.throws(() => a.reshape([4, -1]), /reshape: cannot reshape a tensor of shape \[2, 3\] \(6 elements\) into \[4, -1\]/);
  assert.throws(() => a.sum(2), /axis 2 is out of range for a tensor of rank 2/);
  assert.throws(() => kiln.arange(3).exp(), /exp: expected a floating-point tensor, got int32/);
  assert.throws(() => a.add(kiln.zeros([3], { dtype: 'float64' })), /add: dtype mismatch, float32 and float64/);
  assert.throws(() => a.narrow(1, 2, 2), /narrow: start 2 and length 2 do not fit dimension 1 of size 3/);
  assert.throws(() => kiln.cat([a, kiln.zeros([3, 3])], 1), /cat: shapes \[2, 3\] and \[3, 3\] differ outside dimension 1/);
  assert.throws(() => a.permute([0, 0]), /repeated axis/);
  assert.throws(() => a.expand([4, 3]), /cannot expand shape \[2, 3\] to \[4, 3\]/);
  assert.throws(() => a.indexSelect(0, kiln.tensor([0, 2], { dtype: 'int32' })), /index 2 is out of range for a dimension of size 2/);
  assert.throws(() => kiln.crossEntropy(a, kiln.tensor([0, 3], { dtype: 'int32' })), /target 3 at position 1 is not a class index in \[0, 3\)/);
  assert.throws(() => kiln.crossEntropy(a, kiln.tensor([0, 1])), /target must hold int32 class indices, got float32/);
  assert.throws(() => kiln.crossEntropy(a, kiln.tensor([0], { dtype: 'int32' })), /target shape \[1\] does not match logits \[2, 3\]/);
  assert.throws(() => kiln.attention(kiln.zeros([1, 2, 6]), kiln.zeros([1, 2, 6]), kiln.zeros([1, 2, 6]), { heads: 4 }), /6 channels do not split into 4 heads/);
  assert.throws(() => a.clamp(1, 0), /min 1 is greater than max 0/);
  assert.throws(() => kiln.gelu(a, 'fast' as never), /approximate must be 'none' or 'tanh'/);
});

// Each fused op against a composite built from primitive ops: the reference DESIGN.md asks for.
const composite = {
  softmax: (x: kiln.Tensor) => { const e = x.sub(x.max(-1, true)).exp(); return e.div(e.sum(-1, true)); },
  layerNorm: (x: kiln.Tensor, w: kiln.Tensor, b: kiln.Tensor) => {
    const m = x.mean(-1, true);
    const v = x.sub(m).square().mean(-1, true);
    return x.sub(m).div(v.add(1e-5).sqrt()).mul(w).add(b);
  },
  crossEntropy: (x: kiln.Tensor, t: kiln.Tensor) => kiln.nn.functional.nllLoss(x.logSoftmax(-1), t),
  attention: (q: kiln.Tensor, k: kiln.Tensor, v: kiln.Tensor, heads: number) => {
    const [B, T, C] = q.shape;
    const hs = C / heads;
    const split = (t: kiln.Tensor): kiln.Tensor => t.reshape([B, t.shape[1], heads, hs]).permute([0, 2, 1, 3]);
    const att = split(q).matmul(split(k).transpose(-2, -1)).mul(1 / Math.sqrt(hs));
    const mask = kiln.tensor(Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => (j <= i ? 0 : -Infinity))));
    return att.add(mask).softmax(-1).matmul(split(v)).permute([0, 2, 1, 3]).reshape([B, T, C]);
  },
};

function closeAll(a: kiln.Tensor, b: kiln.Tensor, tol: number, what: string): void {
  const x = a.data();
  const y = b.data();
  assert.equal(x.length, y.length);
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) <= tol * (1 + Math.abs(y[i])), `${what}[${i}]: ${x[i]} vs ${y[i]}`);
}

test('fused kernels agree with their composed references, forward and backward', () => {
  kiln.manualSeed(5);
  const grads = (f: () => kiln.Tensor, inputs: kiln.Tensor[]): kiln.Tensor[] => {
    inputs.forEach((t) => { t.grad = null; });
    f().mul(kiln.randn([...f().shape], { generator: new kiln.Generator(1) })).sum().backward();
    return inputs.map((t) => t.grad!);
  };
  const x = kiln.randn([6, 37], { requiresGrad: true });
  closeAll(x.softmax(-1), composite.softmax(x), 1e-6, 'softmax');
  grads(() => x.softmax(-1), [x]).forEach((g, i) => closeAll(g, grads(() => composite.softmax(x), [x])[i], 1e-5, 'dsoftmax'));

  const w = kiln.randn([37], { requiresGrad: true });
  const b = kiln.randn([37], { requiresGrad: true });
  const fused = () => kiln.layerNorm(x, 37, w, b);
  const comp = () => composite.layerNorm(x, w, b);
  closeAll(fused(), comp(), 1e-5, 'layerNorm');
  const gf = grads(fused, [x, w, b]);
  const gc = grads(comp, [x, w, b]);
  gf.forEach((g, i) => closeAll(g, gc[i], 1e-4, `dlayerNorm input ${i}`));

  const t = kiln.tensor([0, 5, 36, 1, 2, 3], { dtype: 'int32' });
  closeAll(kiln.crossEntropy(x, t), composite.crossEntropy(x, t), 1e-6, 'crossEntropy');
  closeAll(grads(() => kiln.crossEntropy(x, t), [x])[0], grads(() => composite.crossEntropy(x, t), [x])[0], 1e-6, 'dcrossEntropy');

  const q = kiln.randn([2, 5, 8], { requiresGrad: true });
  const k = kiln.randn([2, 5, 8], { requiresGrad: true });
  const v = kiln.randn([2, 5, 8], { requiresGrad: true });
  closeAll(kiln.attention(q, k, v, { heads: 2 }), composite.attention(q, k, v, 2), 1e-5, 'attention');
  const af = grads(() => kiln.attention(q, k, v, { heads: 2 }), [q, k, v]);
  const ac = grads(() => composite.attention(q, k, v, 2), [q, k, v]);
  af.forEach((g, i) => closeAll(g, ac[i], 1e-4, `dattention input ${i}`));
});

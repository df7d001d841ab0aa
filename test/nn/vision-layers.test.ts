// The vision layers as a user meets them: shapes, PyTorch's default initialisation bounds and state-dict names,
// train/eval switching of BatchNorm, and one clear error for each bad input.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';

const { nn } = kiln;
const F = nn.functional;

test('the T5 stack gives the expected shapes and trains a step', () => {
  kiln.manualSeed(0);
  const model = new nn.Sequential(
    new nn.Conv2d(1, 4, 5, { padding: 2 }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(4, 8, 5, { padding: 2 }), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Flatten(),
    new nn.Linear(8 * 7 * 7, 10));
  const x = kiln.randn([3, 1, 28, 28]);
  const y = model.forward(x);
  assert.deepEqual([...y.shape], [3, 10]);
  const loss = F.crossEntropy(y, kiln.tensor([1, 2, 3], { dtype: 'int32' }));
  loss.backward();
  for (const [name, p] of model.namedParameters()) assert.ok(p.grad && p.grad.abs().sum().item() > 0, `${name} got a gradient`);
  assert.deepEqual(Object.keys(model.stateDict()).slice(0, 4), ['0.weight', '0.bias', '3.weight', '3.bias']);
});

test('Conv2d uses PyTorch default initialisation bounds', () => {
  kiln.manualSeed(1);
  const conv = new nn.Conv2d(8, 16, [3, 5], { groups: 2 });
  assert.deepEqual([...conv.weight.shape], [16, 4, 3, 5]);
  const fanIn = 4 * 3 * 5;
  // kaiming_uniform(a = sqrt(5)) gives U(-1/sqrt(fanIn), 1/sqrt(fanIn)), the same bound as the bias.
  const bound = 1 / Math.sqrt(fanIn);
  assert.ok(conv.weight.abs().max().item() <= bound && conv.weight.abs().max().item() > 0.8 * bound);
  assert.ok(conv.bias!.abs().max().item() <= bound);
  assert.equal(new nn.Conv2d(2, 3, 1, { bias: false }).bias, null);
});

test('padding same keeps the size with any kernel, and the layer options reach the op', () => {
  const x = kiln.randn([2, 3, 9, 8]);
  for (const k of [1, 2, 3, 4, 5]) {
    assert.deepEqual([...new nn.Conv2d(3, 2, k, { padding: 'same', dilation: 2 }).forward(x).shape], [2, 2, 9, 8]);
  }
  assert.deepEqual([...new nn.Conv2d(3, 6, 3, { stride: 2, groups: 3 }).forward(x).shape], [2, 6, 4, 3]);
  assert.deepEqual([...new nn.AvgPool2d(3, { stride: 1, padding: 1 }).forward(x).shape], [2, 3, 9, 8]);
  assert.deepEqual([...new nn.AdaptiveAvgPool2d([1, null]).forward(x).shape], [2, 3, 1, 8]);
  assert.deepEqual([...new nn.MaxPool2d(2, { ceilMode: true }).forward(kiln.randn([3, 5, 5])).shape], [3, 3, 3]);
});

test('BatchNorm2d keeps PyTorch buffer names, updates them only in training, and survives a state-dict round trip', () => {
  const bn = new nn.BatchNorm2d(3);
  assert.deepEqual(Object.keys(bn.stateDict()).sort(), ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']);
  assert.equal(bn.stateDict().num_batches_tracked.dtype, 'int32');
  const x = kiln.randn([4, 3, 2, 2]).mul(2).add(1);
  bn.forward(x);
  bn.forward(x);
  assert.equal(bn.numBatchesTracked!.item(), 2);
  const mean = [...bn.runningMean!.storage];
  bn.eval();
  const y1 = bn.forward(x);
  assert.deepEqual([...bn.runningMean!.storage], mean, 'evaluation leaves the running statistics alone');
  const copy = new nn.BatchNorm2d(3);
  copy.loadStateDict(bn.stateDict());
  copy.eval();
  assert.deepEqual([...copy.forward(x).storage], [...y1.storage]);
  bn.to('float64');
  assert.equal(bn.numBatchesTracked!.dtype, 'int32', 'the counter stays an integer');
  assert.equal(bn.runningVar!.dtype, 'float64');
  bn.resetRunningStats();
  assert.equal(bn.numBatchesTracked!.item(), 0);
});

test('BatchNorm without running statistics normalises by the batch in both modes', () => {
  const bn = new nn.BatchNorm1d(2, { trackRunningStats: false, affine: false });
  assert.deepEqual(Object.keys(bn.stateDict()), []);
  const x = kiln.tensor([[1, 10], [3, 20], [5, 30]]);
  bn.eval();
  const y = bn.forward(x);
  assert.ok(Math.abs(y.mean(0).abs().max().item()) < 1e-6);
});

test('bad inputs fail with one clear sentence', () => {
  const x = kiln.randn([2, 3, 8, 8]);
  const w = kiln.randn([4, 3, 3, 3]);
  const cases: [() => unknown, RegExp][] = [
    [() => F.conv2d(kiln.randn([3, 8, 8]), w), /input must be 4-D \(N, C, H, W\), got shape \[3, 8, 8\]/],
    [() => F.conv2d(x, kiln.randn([4, 3, 3])), /weight must be 4-D/],
    [() => F.conv2d(x, kiln.randn([4, 2, 3, 3])), /input has 3 channels but weight \[4, 2, 3, 3\] with groups 1 expects 2/],
    [() => F.conv2d(kiln.randn([2, 4, 8, 8]), kiln.randn([6, 2, 3, 3]), null, { groups: 3 }), /groups \(3\) must divide the input channels \(4\)/],
    [() => F.conv2d(kiln.randn([2, 4, 8, 8]), kiln.randn([3, 2, 3, 3]), null, { groups: 2 }), /groups \(2\) must divide the output channels \(3\)/],
    [() => F.conv2d(x, kiln.randn([4, 3, 9, 3])), /kernel \[9, 3\] with dilation \[1, 1\] is larger than the padded input \[8, 8\]/],
    [() => F.conv2d(x, w, null, { dilation: 4 }), /larger than the padded input/],
    [() => F.conv2d(x, w, kiln.randn([3])), /bias must have shape \[4\], got \[3\]/],
    [() => F.conv2d(x, w, null, { stride: 0 }), /stride must be an integer >= 1/],
    [() => F.conv2d(x, w, null, { padding: -1 }), /padding must be an integer >= 0/],
    [() => F.conv2d(x, w, null, { padding: 'same', stride: 2 }), /padding 'same' needs stride 1/],
    [() => F.conv2d(x, w.to('float64')), /dtype mismatch, input float32 and weight float64/],
    [() => new nn.Conv2d(4, 6, 3, { groups: 4 }), /groups must be a positive integer dividing inChannels \(4\) and outChannels \(6\)/],
    [() => F.maxPool2d(kiln.randn([8, 8]), 2), /input must be 3-D \(C, H, W\) or 4-D \(N, C, H, W\), got shape \[8, 8\]/],
    [() => F.maxPool2d(x, 9), /kernel \[9, 9\] with dilation \[1, 1\] is larger than the padded input \[8, 8\]/],
    [() => F.maxPool2d(x, 2, { padding: 2 }), /padding \[2, 2\] must be at most half the kernel size \[2, 2\]/],
    [() => F.avgPool2d(x, 2, { divisorOverride: 0 }), /divisorOverride must be a non-zero number/],
    [() => F.adaptiveAvgPool2d(x, 0), /outputSize must hold positive integers/],
    [() => new nn.BatchNorm2d(3).forward(kiln.randn([2, 3, 4])), /BatchNorm2d: expected 4-D \(N, C, H, W\) input, got shape \[2, 3, 4\]/],
    [() => new nn.BatchNorm1d(3).forward(kiln.randn([2, 4])), /BatchNorm1d: input has 4 channels \(dim 1\) but the layer was built for 3/],
    [() => new nn.BatchNorm1d(3).forward(kiln.randn([1, 3])), /training needs more than 1 value per channel, got input shape \[1, 3\]/],
    [() => F.batchNorm(x, null, null), /evaluation \(training false\) needs runningMean and runningVar/],
    [() => F.batchNorm(x, kiln.zeros([4]), kiln.ones([3])), /runningMean must have shape \[3\], got \[4\]/],
  ];
  for (const [fn, re] of cases) assert.throws(fn, re);
});

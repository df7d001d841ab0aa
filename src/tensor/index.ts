// The tensor layer's public surface: the Tensor class, creation, ops as functions, autograd controls, RNG.

export { Tensor, isTensor, type NestedArray, type TensorLike } from './tensor.js';
export {
  noGrad, enableGrad, isGradEnabled, registeredOps, defineOp, record, activationScope, clearGrad, onGradReady,
  type BackwardFn, type BackwardOptions,
} from './autograd.js';
export { autocast, autocastPrecision, parsePrecision, type Precision } from './autocast.js';
export { releaseCachedMemory, cachedMemoryBytes, markWeightsChanged, weightsEpoch } from './storage.js';
export { Generator, manualSeed, defaultGenerator, type GeneratorState } from './random.js';
export {
  tensor, zeros, ones, full, zerosLike, onesLike, fullLike, arange, linspace, eye, rand, randn, randint, randperm,
  type CreateOptions, type RandomOptions,
} from './creation.js';
export {
  add, sub, mul, div, pow, maximum, minimum, neg, exp, log, sqrt, rsqrt, abs, sign, square, reciprocal, sin, cos,
  tanh, sigmoid, relu, gelu, silu, clamp, eq, ne, lt, le, gt, ge, where, clone, cast, sumTo,
} from './ops/elementwise.js';
export { sum, mean, max, min, variance, std, logsumexp, argmax, argmin, type VarOptions } from './ops/reduce.js';
export { matmul, mmT, linear } from './ops/matmul.js';
export { conv1d } from './ops/conv1d.js';
export { conv2d, type Conv2dOptions, type Size2 } from './ops/conv2d.js';
export { maxPool2d, maxPool2dWithIndices, avgPool2d, adaptiveAvgPool2d, type MaxPool2dOptions, type AvgPool2dOptions } from './ops/pool2d.js';
export { batchNorm, type BatchNormOptions } from './ops/batch-norm.js';
export { qkvAttention, cachedAttention, cachedGroupedAttention, type KVBuffers } from './ops/attention.js';
export {
  reshape, flatten, permute, transpose, squeeze, unsqueeze, expand, narrow, slice, cat, stack, split, chunk,
  indexSelect, gather,
} from './ops/shape-ops.js';
export {
  softmax, softmax_, logSoftmax, layerNorm, embedding, dropout, crossEntropy, attention,
  type CrossEntropyOptions, type AttentionOptions,
} from './ops/nn-ops.js';
export { rope, type RopeOptions } from './ops/rope.js';
export { rmsNorm, rmsNormReference } from './ops/rms-norm.js';
export { lstmSequence, gruSequence, rnnSequence, type RnnNonlinearity } from './ops/rnn.js';
export { adamwUpdate_, type AdamwUpdateOptions } from './ops/optim-ops.js';
export { sizeOf, broadcastShapes, type Shape } from './shape.js';
import './warmup.js'; // registers the warm-up run when a backend becomes active

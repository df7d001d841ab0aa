// The reference backend: plain TypeScript over typed arrays, float32 and float64. It runs everywhere and is the
// oracle every other backend is tested against.

import type { Backend } from '../backend.js';
import { binary, clamp, expand, unary, unaryBackward, where } from './elementwise.js';
import { argmax, reduce } from './reduce.js';
import { gemm } from './gemm.js';
import { gemmBf16 } from './bf16.js';
import { adamw, attention, attentionBackward, crossEntropy, crossEntropyBackward, layerNorm, layerNormBackward,
  softmax, softmaxBackward } from './nn-kernels.js';
import { rmsNorm, rmsNormBackward, rope } from './decoder-kernels.js';
import { copy, fill, gather, indexAdd, indexSelect, permute, scatterAdd, sliceAssign, sliceCopy } from './layout.js';

export const jsBackend: Backend = {
  name: 'js',
  fill, copy, unary, unaryBackward, clamp, binary, where, expand, reduce, argmax, gemm, gemmBf16,
  softmax, softmaxBackward, layerNorm, layerNormBackward, rmsNorm, rmsNormBackward, rope, crossEntropy, crossEntropyBackward,
  indexSelect, indexAdd, gather, scatterAdd, permute, sliceCopy, sliceAssign,
  attention, attentionBackward, adamw,
};

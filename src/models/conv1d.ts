// Hugging Face GPT-2's "Conv1D": a linear layer whose weight is stored (in, out), y = x @ W + b, so GPT-2
// state dicts move to and from Hugging Face unchanged. The op is tensor/ops/conv1d.ts.

import type { DType } from '../backend/index.js';
import { zeros } from '../tensor/creation.js';
import { conv1d } from '../tensor/ops/conv1d.js';
import type { Tensor } from '../tensor/tensor.js';
import { normal_ } from '../nn/init.js';
import { Module, Parameter } from '../nn/module.js';

/** Options of Conv1D: bias (default true), dtype, and the std of the normal init (default 0.02). */
export interface Conv1DOptions { bias?: boolean; dtype?: DType; std?: number }

/**
 * `new Conv1D(768, 2304)`: x (..., 768) to (..., 2304), weight (768, 2304) ~ N(0, std) (0.02 by default, as
 * GPT-2 initialises; std 0 leaves zeros and draws nothing), bias zeros.
 */
export class Conv1D extends Module {
  weight: Parameter;
  bias: Parameter | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, options: Conv1DOptions = {}) {
    super();
    for (const [n, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new Error(`Conv1D: ${n} must be a positive integer, got ${v}`);
    }
    const dtype = options.dtype ?? 'float32';
    const std = options.std ?? 0.02;
    const w = zeros([inFeatures, outFeatures], { dtype });
    this.weight = new Parameter(std === 0 ? w : normal_(w, 0, std));
    this.bias = options.bias === false ? null : new Parameter(zeros([outFeatures], { dtype }));
  }

  /** x @ weight + bias (the weight is stored in-out, as GPT-2's Conv1D). */
  forward(x: Tensor): Tensor { return conv1d(x, this.weight, this.bias); }
}

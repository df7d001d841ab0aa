// Normalisation layers: LayerNorm and RMSNorm, both on fused kernels.

import type { DType } from '../../backend/index.js';
import { ones, zeros } from '../../tensor/creation.js';
import { layerNorm } from '../../tensor/ops/nn-ops.js';
import type { Tensor } from '../../tensor/tensor.js';
import { rmsNorm } from '../functional.js';
import { declareActivationsStayInside, Module, Parameter } from '../module.js';

/** Options of LayerNorm: eps (default 1e-5), a learned scale (elementwiseAffine, default true) and shift (bias, default true), dtype. */
export interface LayerNormOptions { eps?: number; elementwiseAffine?: boolean; bias?: boolean; dtype?: DType }

/** Normalises the trailing dims to zero mean and unit variance, then scales and shifts. */
export class LayerNorm extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  readonly normalizedShape: number[];
  readonly eps: number;

  constructor(normalizedShape: number | readonly number[], options: LayerNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = options.eps ?? 1e-5;
    const affine = options.elementwiseAffine ?? true;
    const dtype = options.dtype ?? 'float32';
    this.weight = affine ? new Parameter(ones(this.normalizedShape, { dtype })) : null;
    this.bias = affine && options.bias !== false ? new Parameter(zeros(this.normalizedShape, { dtype })) : null;
  }

  /** Normalizes x over its last dimensions (normalizedShape). */
  forward(x: Tensor): Tensor { return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps); }
}

/** Scales by the reciprocal root-mean-square of the last dim (no centring); eps defaults to the dtype's epsilon. */
export class RMSNorm extends Module {
  weight: Parameter | null;
  readonly eps: number | undefined;

  constructor(readonly dim: number, options: { eps?: number; elementwiseAffine?: boolean; dtype?: DType } = {}) {
    super();
    this.eps = options.eps;
    this.weight = options.elementwiseAffine === false ? null : new Parameter(ones([dim], { dtype: options.dtype ?? 'float32' }));
  }

  /** Scales x by the reciprocal root mean square of its last dimension (and weight). */
  forward(x: Tensor): Tensor {
    const eps = this.eps ?? (x.dtype === 'float64' ? 2.220446049250313e-16 : 1.1920928955078125e-7);
    return rmsNorm(x, this.weight, eps);
  }
}

declareActivationsStayInside(LayerNorm, RMSNorm);

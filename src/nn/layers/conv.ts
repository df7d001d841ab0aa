// Conv2d: 2-D convolution over NCHW images with PyTorch's parameter names, layout and default initialisation.

import type { DType } from '../../backend/index.js';
import { zeros } from '../../tensor/creation.js';
import { conv2d, pair, type Conv2dOptions, type Size2 } from '../../tensor/ops/conv2d.js';
import type { Tensor } from '../../tensor/tensor.js';
import { kaimingUniform_, uniform_ } from '../init.js';
import { declareActivationsStayInside, Module, Parameter } from '../module.js';

export interface Conv2dLayerOptions extends Conv2dOptions {
  /** Learn a per-channel bias (default true). */
  bias?: boolean;
  dtype?: DType;
}

/**
 * `new nn.Conv2d(1, 32, 5, { padding: 2 }).forward(x)`: x (N, 1, 28, 28) to (N, 32, 28, 28). The weight is
 * (out, in / groups, KH, KW) and the bias (out), as torch.nn.Conv2d, so state dicts move across unchanged.
 */
export class Conv2d extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly kernelSize: [number, number];
  readonly options: Conv2dOptions;

  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: Size2, options: Conv2dLayerOptions = {}) {
    super();
    for (const [n, v] of [['inChannels', inChannels], ['outChannels', outChannels]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new Error(`Conv2d: ${n} must be a positive integer, got ${v}`);
    }
    const groups = options.groups ?? 1;
    if (!Number.isInteger(groups) || groups < 1 || inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new Error(`Conv2d: groups must be a positive integer dividing inChannels (${inChannels}) and outChannels (${outChannels}), got ${groups}`);
    }
    this.kernelSize = pair(kernelSize, 'kernelSize', 'Conv2d', 1);
    const { bias, dtype = 'float32', ...conv } = options;
    this.options = conv;
    const [KH, KW] = this.kernelSize;
    // kaiming_uniform(a = sqrt(5)) and a bias bound of 1/sqrt(fanIn): torch.nn.Conv2d.reset_parameters.
    this.weight = new Parameter(kaimingUniform_(zeros([outChannels, inChannels / groups, KH, KW], { dtype }), Math.sqrt(5)));
    const bound = 1 / Math.sqrt((inChannels / groups) * KH * KW);
    this.bias = bias === false ? null : new Parameter(uniform_(zeros([outChannels], { dtype }), -bound, bound));
  }

  /** Applies the layer to x. */
  forward(x: Tensor): Tensor { return conv2d(x, this.weight, this.bias, this.options); }
}

declareActivationsStayInside(Conv2d);

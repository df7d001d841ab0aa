// Linear: y = x W^T + b, W stored (out, in) as in PyTorch, with PyTorch's default initialisation.

import type { DType } from '../../backend/index.js';
import { linear } from '../../tensor/ops/matmul.js';
import { zeros } from '../../tensor/creation.js';
import type { Tensor } from '../../tensor/tensor.js';
import { kaimingUniform_, uniform_ } from '../init.js';
import { declareActivationsStayInside, Module, Parameter } from '../module.js';

/** Options of Linear: bias (default true) and dtype (default float32). */
export interface LinearOptions { bias?: boolean; dtype?: DType }

/** `new nn.Linear(784, 256).forward(x)`: x (..., 784) to (..., 256). */
export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, options: LinearOptions = {}) {
    super();
    for (const [n, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new Error(`Linear: ${n} must be a positive integer, got ${v}`);
    }
    const dtype = options.dtype ?? 'float32';
    // kaiming_uniform(a = sqrt(5)) and a bias bound of 1/sqrt(fanIn): torch.nn.Linear.reset_parameters.
    this.weight = new Parameter(kaimingUniform_(zeros([outFeatures, inFeatures], { dtype }), Math.sqrt(5)));
    const bound = 1 / Math.sqrt(inFeatures);
    this.bias = options.bias === false ? null : new Parameter(uniform_(zeros([outFeatures], { dtype }), -bound, bound));
  }

  /** x @ weight^T + bias. */
  forward(x: Tensor): Tensor { return linear(x, this.weight, this.bias); }
}

declareActivationsStayInside(Linear);

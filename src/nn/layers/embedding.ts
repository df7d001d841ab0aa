// Embedding: a lookup table of row vectors, initialised N(0, 1) as in PyTorch.

import type { DType } from '../../backend/index.js';
import { embedding } from '../../tensor/ops/nn-ops.js';
import { zeros } from '../../tensor/creation.js';
import type { Tensor } from '../../tensor/tensor.js';
import { normal_ } from '../init.js';
import { declareActivationsStayInside, Module, Parameter } from '../module.js';

/** `new nn.Embedding(vocab, dim).forward(idx)`: int32 idx (...) to (..., dim). */
export class Embedding extends Module {
  weight: Parameter;

  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, options: { dtype?: DType } = {}) {
    super();
    for (const [n, v] of [['numEmbeddings', numEmbeddings], ['embeddingDim', embeddingDim]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new Error(`Embedding: ${n} must be a positive integer, got ${v}`);
    }
    this.weight = new Parameter(normal_(zeros([numEmbeddings, embeddingDim], { dtype: options.dtype ?? 'float32' })));
  }

  /** The rows of weight at the int32 ids idx. */
  forward(idx: Tensor): Tensor { return embedding(idx, this.weight); }
}

declareActivationsStayInside(Embedding);

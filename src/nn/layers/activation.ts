// Parameter-free layers: activations and dropout, so they can sit in a Sequential.

import { dropout } from '../../tensor/ops/nn-ops.js';
import type { Tensor } from '../../tensor/tensor.js';
import { declareActivationsStayInside, Module } from '../module.js';

/** max(x, 0), element-wise. */
export class ReLU extends Module {
  /** Applies the activation. */
  forward(x: Tensor): Tensor { return x.relu(); }
}
/** tanh(x), element-wise. */
export class Tanh extends Module {
  /** Applies the activation. */
  forward(x: Tensor): Tensor { return x.tanh(); }
}
/** 1 / (1 + exp(-x)), element-wise. */
export class Sigmoid extends Module {
  /** Applies the activation. */
  forward(x: Tensor): Tensor { return x.sigmoid(); }
}
/** x * sigmoid(x), element-wise (SiLU, swish). */
export class SiLU extends Module {
  /** Applies the activation. */
  forward(x: Tensor): Tensor { return x.silu(); }
}
/** Returns its input unchanged (a placeholder layer). */
export class Identity extends Module {
  /** Returns x. */
  forward(x: Tensor): Tensor { return x; }
}

export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') { super(); }
  /** Applies the activation. */
  forward(x: Tensor): Tensor { return x.gelu(this.approximate); }
}

/** Zeroes elements with probability p while training; the identity in eval mode. */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new Error(`Dropout: p must be in [0, 1], got ${p}`);
  }
  /** Zeroes each element with probability p and scales the rest by 1 / (1 - p) in training mode; the identity in eval mode. */
  forward(x: Tensor): Tensor { return dropout(x, this.p, this.training); }
}

declareActivationsStayInside(ReLU, Tanh, Sigmoid, SiLU, Identity, GELU, Dropout);

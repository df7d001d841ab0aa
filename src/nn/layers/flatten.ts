// Flatten: collapses dims startDim..endDim into one (default: all but the batch dim), to sit in a Sequential.

import type { Tensor } from '../../tensor/tensor.js';
import { declareActivationsStayInside, Module } from '../module.js';

/** `new nn.Flatten().forward(x)`: (N, 64, 7, 7) to (N, 3136). */
export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) { super(); }
  /** Applies the layer to x. */
  forward(x: Tensor): Tensor { return x.flatten(this.startDim, this.endDim); }
}

declareActivationsStayInside(Flatten);

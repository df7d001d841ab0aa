// Sequential chains modules; MLP builds the common Linear-activation stack from a list of widths.

import type { DType } from '../../backend/index.js';
import { activationScope, isGradEnabled } from '../../tensor/autograd.js';
import type { Tensor } from '../../tensor/tensor.js';
import { declareActivationsStayInside, keepsNoActivations, Module } from '../module.js';
import { Dropout, GELU, ReLU, SiLU, Tanh } from './activation.js';
import { Linear } from './linear.js';

/** A module with a single-tensor forward, as Sequential needs. */
export interface Forward {
  /** Maps one tensor to another. */
  forward(x: Tensor): Tensor;
}

/** Runs its modules in order; they are named '0', '1', ... as in PyTorch. */
export class Sequential extends Module {
  private layers: (Module & Forward)[];
  private recycles?: boolean;

  constructor(...layers: (Module & Forward)[]) {
    super();
    for (const [i, l] of layers.entries()) {
      if (!(l instanceof Module) || typeof (l as Forward).forward !== 'function') {
        throw new Error(`Sequential: item ${i} is not a Module with a forward method`);
      }
    }
    this.layers = layers;
  }

  override namedChildren(): [string, Module][] { return this.layers.map((m, i) => [String(i), m]); }
  /** Number of layers. */
  get length(): number { return this.layers.length; }
  /** The layer at index i (negative counts from the end). */
  at(i: number): Module & Forward { return this.layers[i < 0 ? this.layers.length + i : i]; }

  /**
   * Runs x through the layers in order. When every layer is one of Kiln's own (none keeps a tensor its forward
   * made), the intermediate activations are declared internal (activationScope): backward hands their memory back
   * to the pool as it passes them, and the next step reuses it warm instead of faulting in fresh pages (T5's CNN:
   * about 250 faults a step fewer, a fifth of the step time).
   */
  forward(x: Tensor): Tensor {
    this.recycles ??= this.layers.every((l) => keepsNoActivations(l));
    if (this.recycles && isGradEnabled()) return activationScope(() => this.run(x), (h) => [h]);
    return this.run(x);
  }

  private run(x: Tensor): Tensor {
    let h = x;
    for (const l of this.layers) h = l.forward(h);
    return h;
  }
}

/** Options of MLP. */
export interface MLPOptions {
  /** Between the Linear layers (default 'relu'). */
  activation?: 'relu' | 'gelu' | 'tanh' | 'silu';
  /** Dropout probability after each activation (default 0: none). */
  dropout?: number;
  /** Linear layers with bias (default true). */
  bias?: boolean;
  /** Parameter dtype (default float32). */
  dtype?: DType;
}

/**
 * `new nn.MLP([784, 256, 256, 10])`: Linear layers with an activation (and optional dropout) between them,
 * none after the last.
 */
export class MLP extends Sequential {
  constructor(sizes: readonly number[], options: MLPOptions = {}) {
    if (sizes.length < 2) throw new Error(`MLP: need at least an input and an output size, got [${sizes.join(', ')}]`);
    const layers: (Module & Forward)[] = [];
    const act = options.activation ?? 'relu';
    const make = { relu: () => new ReLU(), gelu: () => new GELU(), tanh: () => new Tanh(), silu: () => new SiLU() }[act];
    if (!make) throw new Error(`MLP: unknown activation '${act}'; expected relu, gelu, tanh or silu`);
    for (let i = 0; i + 1 < sizes.length; i++) {
      layers.push(new Linear(sizes[i], sizes[i + 1], { bias: options.bias, dtype: options.dtype }));
      if (i + 2 < sizes.length) {
        layers.push(make());
        if (options.dropout) layers.push(new Dropout(options.dropout));
      }
    }
    super(...layers);
  }
}

declareActivationsStayInside(Sequential, MLP);

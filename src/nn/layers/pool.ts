// Pooling layers over the last two dims of (N, C, H, W) or (C, H, W): MaxPool2d, AvgPool2d, AdaptiveAvgPool2d.

import { adaptiveAvgPool2d, avgPool2d, maxPool2d, type AvgPool2dOptions, type MaxPool2dOptions } from '../../tensor/ops/pool2d.js';
import type { Size2 } from '../../tensor/ops/conv2d.js';
import type { Tensor } from '../../tensor/tensor.js';
import { declareActivationsStayInside, Module } from '../module.js';

/** `new nn.MaxPool2d(2).forward(x)`: (N, C, 28, 28) to (N, C, 14, 14); the stride defaults to the kernel size. */
export class MaxPool2d extends Module {
  constructor(readonly kernelSize: Size2, readonly options: MaxPool2dOptions = {}) { super(); }
  /** Applies the layer to x. */
  forward(x: Tensor): Tensor { return maxPool2d(x, this.kernelSize, this.options); }
}

/** `new nn.AvgPool2d(2).forward(x)`: (N, C, 28, 28) to (N, C, 14, 14); padded zeros count unless countIncludePad is false. */
export class AvgPool2d extends Module {
  constructor(readonly kernelSize: Size2, readonly options: AvgPool2dOptions = {}) { super(); }
  /** Applies the layer to x. */
  forward(x: Tensor): Tensor { return avgPool2d(x, this.kernelSize, this.options); }
}

/** `new nn.AdaptiveAvgPool2d(1).forward(x)`: (N, C, H, W) to (N, C, 1, 1) for any H, W; null keeps an input size. */
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: number | readonly [number | null, number | null]) { super(); }
  /** Applies the layer to x. */
  forward(x: Tensor): Tensor { return adaptiveAvgPool2d(x, this.outputSize); }
}

declareActivationsStayInside(MaxPool2d, AvgPool2d, AdaptiveAvgPool2d);

// BatchNorm1d and BatchNorm2d: batch statistics in training (moving the running estimates), running statistics in
// evaluation, with PyTorch's buffer names (running_mean, running_var, num_batches_tracked) in the state dict.

import type { DType } from '../../backend/index.js';
import { ones, zeros } from '../../tensor/creation.js';
import { batchNorm } from '../../tensor/ops/batch-norm.js';
import { fmt } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { declareActivationsStayInside, Module, Parameter } from '../module.js';

/** Options of nn.BatchNorm1d/2d: eps, momentum (null: a cumulative average), affine, trackRunningStats, dtype. */
export interface BatchNormLayerOptions {
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Weight of each new batch in the running statistics (default 0.1); null keeps a cumulative average instead. */
  momentum?: number | null;
  /** Learn a per-channel scale and shift (default true). */
  affine?: boolean;
  /** Keep running statistics for evaluation (default true); without, batch statistics are used in both modes. */
  trackRunningStats?: boolean;
  dtype?: DType;
}

/** The shared body of BatchNorm1d and BatchNorm2d, as torch.nn.modules.batchnorm._BatchNorm. */
abstract class BatchNormBase extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  readonly eps: number;
  readonly momentum: number | null;
  readonly trackRunningStats: boolean;
  protected abstract readonly ranks: readonly number[];
  protected abstract readonly layout: string;

  constructor(readonly numFeatures: number, options: BatchNormLayerOptions = {}) {
    super();
    if (!Number.isInteger(numFeatures) || numFeatures <= 0) {
      throw new Error(`${new.target.name}: numFeatures must be a positive integer, got ${numFeatures}`);
    }
    const dtype = options.dtype ?? 'float32';
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum;
    this.trackRunningStats = options.trackRunningStats ?? true;
    const affine = options.affine ?? true;
    this.weight = affine ? new Parameter(ones([numFeatures], { dtype })) : null;
    this.bias = affine ? new Parameter(zeros([numFeatures], { dtype })) : null;
    if (this.trackRunningStats) {
      this.registerBuffer('running_mean', zeros([numFeatures], { dtype }));
      this.registerBuffer('running_var', ones([numFeatures], { dtype }));
      this.registerBuffer('num_batches_tracked', zeros([], { dtype: 'int32' }));
    }
  }

  /** The running mean (C), or null without running statistics. */
  get runningMean(): Tensor | null { return this.buffer('running_mean') ?? null; }
  /** The running variance (C, unbiased), or null without running statistics. */
  get runningVar(): Tensor | null { return this.buffer('running_var') ?? null; }
  /** Training batches seen so far (a 0-d int32 tensor), or null without running statistics. */
  get numBatchesTracked(): Tensor | null { return this.buffer('num_batches_tracked') ?? null; }

  /** Sets the running statistics back to mean 0, variance 1 and no batches, as reset_running_stats(). */
  resetRunningStats(): void {
    this.runningMean?.storage.fill(0);
    this.runningVar?.storage.fill(1);
    this.numBatchesTracked?.storage.fill(0);
  }

  /** Normalises x with batch statistics (training) or the running ones (eval). */
  forward(x: Tensor): Tensor {
    const name = this.constructor.name;
    if (!this.ranks.includes(x.ndim)) throw new Error(`${name}: expected ${this.layout} input, got shape ${fmt(x.shape)}`);
    if (x.shape[1] !== this.numFeatures) {
      throw new Error(`${name}: input has ${x.shape[1]} channels (dim 1) but the layer was built for ${this.numFeatures}`);
    }
    let momentum = this.momentum ?? 0;
    const tracked = this.numBatchesTracked;
    if (this.training && tracked) {
      tracked.storage[0] += 1;
      if (this.momentum === null) momentum = 1 / tracked.storage[0]; // cumulative moving average
    }
    const useBatch = this.training || !this.trackRunningStats;
    const stats = !this.training || this.trackRunningStats;
    return batchNorm(x, stats ? this.runningMean : null, stats ? this.runningVar : null,
      { weight: this.weight, bias: this.bias, training: useBatch, momentum, eps: this.eps });
  }
}

/** Batch norm over (N, C) or (N, C, L): `new nn.BatchNorm1d(64).forward(x)`. */
export class BatchNorm1d extends BatchNormBase {
  protected readonly ranks = [2, 3];
  protected readonly layout = '2-D (N, C) or 3-D (N, C, L)';
}

/** Applies the layer to x. */
/** Batch norm over (N, C, H, W): `new nn.BatchNorm2d(32).forward(x)`. */
export class BatchNorm2d extends BatchNormBase {
  protected readonly ranks = [4];
  protected readonly layout = '4-D (N, C, H, W)';
}

declareActivationsStayInside(BatchNorm1d, BatchNorm2d);

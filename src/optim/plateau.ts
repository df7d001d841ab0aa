// ReduceLROnPlateau, as torch.optim.lr_scheduler.ReduceLROnPlateau: lowers each group's lr by `factor` when a
// watched metric (validation loss, usually) has not improved for `patience` checks.

import { Tensor } from '../tensor/tensor.js';
import type { Optimizer } from './optimizer.js';

/** Options of {@link ReduceLROnPlateau}; the defaults are PyTorch's. */
export interface ReduceLROnPlateauOptions {
  /** 'min' (default): lower is better, as for a loss; 'max': higher is better, as for accuracy. */
  mode?: 'min' | 'max';
  /** The lr is multiplied by this on a plateau (default 0.1); must be in (0, 1). */
  factor?: number;
  /** Checks without improvement tolerated before the lr drops (default 10). */
  patience?: number;
  /** How much better a metric must be to count as an improvement (default 1e-4). */
  threshold?: number;
  /** 'rel' (default): better than best * (1 -/+ threshold); 'abs': better than best -/+ threshold. */
  thresholdMode?: 'rel' | 'abs';
  /** Checks to wait after a drop before counting bad checks again (default 0). */
  cooldown?: number;
  /** The lowest lr, one for all groups or one per group (default 0). */
  minLr?: number | readonly number[];
  /** A drop smaller than this is not made (default 1e-8). */
  eps?: number;
}

/** What {@link ReduceLROnPlateau.stateDict} returns: the counters and each group's current lr. */
export interface ReduceLROnPlateauState {
  /** The best metric so far; null before the first check (JSON has no Infinity). */
  best: number | null;
  numBadChecks: number;
  cooldownCounter: number;
  lastCheck: number;
  lrs: number[];
}

/**
 * Lowers the learning rate when a metric stops improving. Call step(metric) after each evaluation (not after
 * each optimizer step); the Trainer does this itself when given one as its `schedule` and validation data.
 * ```ts
 * const plateau = new optim.ReduceLROnPlateau(opt, { factor: 0.5, patience: 2 });
 * plateau.step(valLoss);
 * ```
 */
export class ReduceLROnPlateau {
  readonly mode: 'min' | 'max';
  readonly factor: number;
  readonly patience: number;
  readonly threshold: number;
  readonly thresholdMode: 'rel' | 'abs';
  readonly cooldown: number;
  readonly minLrs: readonly number[];
  readonly eps: number;
  /** The best metric seen so far (Infinity in 'min' mode, -Infinity in 'max' mode before the first step). */
  best: number;
  /** Checks since the last improvement. */
  numBadChecks = 0;
  /** Checks left in the current cooldown. */
  cooldownCounter = 0;
  /** step() calls so far. */
  lastCheck = 0;

  constructor(readonly optimizer: Optimizer, options: ReduceLROnPlateauOptions = {}) {
    const { mode = 'min', factor = 0.1, patience = 10, threshold = 1e-4, thresholdMode = 'rel', cooldown = 0, minLr = 0, eps = 1e-8 } = options;
    const name = 'ReduceLROnPlateau';
    if (mode !== 'min' && mode !== 'max') throw new Error(`${name}: mode must be 'min' or 'max', got ${String(mode)}`);
    if (thresholdMode !== 'rel' && thresholdMode !== 'abs') throw new Error(`${name}: thresholdMode must be 'rel' or 'abs', got ${String(thresholdMode)}`);
    if (!(factor > 0 && factor < 1)) throw new Error(`${name}: factor must be in (0, 1), got ${factor}`);
    if (!Number.isInteger(patience) || patience < 0) throw new Error(`${name}: patience must be a non-negative integer, got ${patience}`);
    if (!Number.isInteger(cooldown) || cooldown < 0) throw new Error(`${name}: cooldown must be a non-negative integer, got ${cooldown}`);
    if (!(threshold >= 0)) throw new Error(`${name}: threshold must be non-negative, got ${threshold}`);
    if (!(eps >= 0)) throw new Error(`${name}: eps must be non-negative, got ${eps}`);
    const groups = optimizer.paramGroups.length;
    const minLrs = typeof minLr === 'number' ? Array<number>(groups).fill(minLr) : [...minLr];
    if (minLrs.length !== groups) throw new Error(`${name}: minLr has ${minLrs.length} values but the optimizer has ${groups} parameter groups`);
    minLrs.forEach((v, i) => { if (!(v >= 0)) throw new Error(`${name}: minLr of group ${i} must be non-negative, got ${v}`); });
    this.mode = mode;
    this.factor = factor;
    this.patience = patience;
    this.threshold = threshold;
    this.thresholdMode = thresholdMode;
    this.cooldown = cooldown;
    this.eps = eps;
    this.minLrs = minLrs;
    this.best = mode === 'min' ? Infinity : -Infinity;
  }

  /** Records one check of the metric (a number or a one-element tensor) and lowers the lr on a plateau. */
  step(metric: number | Tensor): void {
    const current = metric instanceof Tensor ? metric.item() : metric;
    if (typeof current !== 'number' || Number.isNaN(current)) {
      throw new Error(`ReduceLROnPlateau.step: expected the metric as a number, got ${String(current)}`);
    }
    this.lastCheck++;
    if (this.isBetter(current)) {
      this.best = current;
      this.numBadChecks = 0;
    } else {
      this.numBadChecks++;
    }
    if (this.cooldownCounter > 0) {
      this.cooldownCounter--;
      this.numBadChecks = 0; // bad checks in a cooldown do not count, as in PyTorch
    }
    if (this.numBadChecks > this.patience) {
      this.reduce();
      this.cooldownCounter = this.cooldown;
      this.numBadChecks = 0;
    }
  }

  /** The current lr of each group. */
  get lastLr(): number[] { return this.optimizer.paramGroups.map((g) => g.lr); }

  /** The counters and each group's lr, for a checkpoint (plain JSON). */
  stateDict(): ReduceLROnPlateauState {
    return { best: Number.isFinite(this.best) ? this.best : null, numBadChecks: this.numBadChecks, cooldownCounter: this.cooldownCounter, lastCheck: this.lastCheck, lrs: this.lastLr };
  }

  /** Restores what stateDict returned, including each group's lr. */
  loadStateDict(sd: ReduceLROnPlateauState): void {
    const groups = this.optimizer.paramGroups;
    const ok = !!sd && (sd.best === null || typeof sd.best === 'number') && [sd.numBadChecks, sd.cooldownCounter, sd.lastCheck].every((v) => Number.isInteger(v) && v >= 0) &&
      Array.isArray(sd.lrs) && sd.lrs.every((v) => typeof v === 'number' && v >= 0);
    if (!ok) throw new Error('ReduceLROnPlateau.loadStateDict: expected { best, numBadChecks, cooldownCounter, lastCheck, lrs } as saved by stateDict()');
    if (sd.lrs.length !== groups.length) {
      throw new Error(`ReduceLROnPlateau.loadStateDict: the state has ${sd.lrs.length} group lrs but the optimizer has ${groups.length} groups`);
    }
    this.best = sd.best ?? (this.mode === 'min' ? Infinity : -Infinity);
    this.numBadChecks = sd.numBadChecks;
    this.cooldownCounter = sd.cooldownCounter;
    this.lastCheck = sd.lastCheck;
    groups.forEach((g, i) => { g.lr = sd.lrs[i]!; });
  }

  private isBetter(a: number): boolean {
    const { best, threshold } = this;
    if (this.mode === 'min') return this.thresholdMode === 'rel' ? a < best * (1 - threshold) : a < best - threshold;
    return this.thresholdMode === 'rel' ? a > best * (threshold + 1) : a > best + threshold;
  }

  private reduce(): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      const next = Math.max(g.lr * this.factor, this.minLrs[i]!);
      if (g.lr - next > this.eps) g.lr = next;
    });
  }
}

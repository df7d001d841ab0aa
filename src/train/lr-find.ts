// The learning-rate range test: sweep the lr exponentially from small to large over a few hundred steps,
// record the (smoothed) loss, suggest the rate where the loss falls fastest, then put the model, the
// optimizer, the data position and the random state back as they were.

import { defaultGenerator, Tensor } from '../tensor/index.js';
import type { BaseTrainer as Trainer } from './base-trainer.js';

/** Options of lrFind. */
export interface LrFindOptions {
  /** First learning rate (default 1e-7). */
  minLr?: number;
  /** Last learning rate (default 10). */
  maxLr?: number;
  /** Steps of the sweep (default 100). */
  steps?: number;
  /** Exponential smoothing of the loss curve (default 0.98, bias-corrected). */
  smoothing?: number;
  /** Stop when the smoothed loss exceeds this multiple of the best one (default 4). */
  divergeFactor?: number;
}

/** What lrFind found: the rates tried, their (smoothed) losses and a suggested rate. */
export interface LrFindResult {
  lrs: number[];
  /** The raw loss at each step. */
  losses: number[];
  /** The bias-corrected exponentially smoothed loss. */
  smoothed: number[];
  /** Where the smoothed loss falls fastest against log(lr) (before its minimum). */
  suggestedLr: number;
  /** The lr with the lowest smoothed loss (too large to train at: take a tenth of it, or the suggestion). */
  minLossLr: number;
  /** Why the sweep stopped: 'completed' or 'diverged'. */
  stoppedBy: 'completed' | 'diverged';
}

/**
 * Runs the range test with a trainer's model, optimizer, loss and training data, then restores them all.
 * `const { suggestedLr, lrs, smoothed } = lrFind(trainer, { minLr: 1e-6, maxLr: 1, steps: 200 })`
 */
export function lrFind<B>(trainer: Trainer<B>, options: LrFindOptions = {}): LrFindResult {
  const { minLr = 1e-7, maxLr = 10, steps = 100, smoothing = 0.98, divergeFactor = 4 } = options;
  if (!(minLr > 0 && maxLr > minLr)) throw new Error(`lrFind: need 0 < minLr < maxLr, got ${minLr} and ${maxLr}`);
  if (!Number.isInteger(steps) || steps < 2) throw new Error(`lrFind: steps must be an integer of at least 2, got ${steps}`);
  if (!(smoothing >= 0 && smoothing < 1)) throw new Error(`lrFind: smoothing must be in [0, 1), got ${smoothing}`);
  const { model, optimizer, source } = trainer;
  // Snapshot everything the sweep touches.
  const weights: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(model.stateDict())) weights[k] = new Tensor(t.storage.slice(), t.shape);
  const optState = optimizer.stateDict();
  for (const s of Object.values(optState.state)) {
    for (const [k, v] of Object.entries(s)) if (v instanceof Tensor) s[k] = new Tensor(v.storage.slice(), v.shape);
  }
  const groupLrs = optimizer.paramGroups.map((g) => g.lr);
  const dataState = JSON.parse(JSON.stringify(source.state()));
  const rng = defaultGenerator.getState();
  const wasTraining = model.training;

  const lrs: number[] = [];
  const losses: number[] = [];
  const smoothed: number[] = [];
  let avg = 0;
  let best = Infinity;
  let stoppedBy: LrFindResult['stoppedBy'] = 'completed';
  const ratio = maxLr / minLr;
  try {
    model.train();
    for (let i = 0; i < steps; i++) {
      const lr = minLr * ratio ** (i / (steps - 1));
      for (const g of optimizer.paramGroups) g.lr = lr;
      let batch = source.next();
      if (batch === undefined) batch = source.next();
      if (batch === undefined) throw new Error('lrFind: the training source gave no batch');
      optimizer.zeroGrad();
      const { loss } = trainer.computeLoss(batch);
      const lv = loss.item();
      lrs.push(lr);
      losses.push(lv);
      if (!Number.isFinite(lv)) {
        smoothed.push(Infinity);
        stoppedBy = 'diverged';
        break;
      }
      avg = smoothing * avg + (1 - smoothing) * lv;
      const sm = avg / (1 - smoothing ** (i + 1));
      smoothed.push(sm);
      if (sm < best) best = sm;
      if (i > 0 && sm > divergeFactor * best) {
        stoppedBy = 'diverged';
        break;
      }
      loss.backward();
      optimizer.step();
    }
  } finally {
    model.loadStateDict(weights);
    optimizer.loadStateDict(optState);
    optimizer.paramGroups.forEach((g, i) => { g.lr = groupLrs[i]; });
    optimizer.zeroGrad();
    source.restore(dataState);
    defaultGenerator.setState(rng);
    model.train(wasTraining);
  }
  // Minimum of the smoothed curve, then the steepest descent (per log-lr, over a short window) before it,
  // skipping the first tenth of the sweep where the smoothed curve is still settling.
  let iMin = 0;
  for (let i = 1; i < smoothed.length; i++) if (smoothed[i] < smoothed[iMin]) iMin = i;
  const w = Math.max(1, Math.round(smoothed.length / 20));
  const skip = Math.min(Math.max(2, Math.floor(steps / 10)), Math.max(0, iMin - w));
  let iSteep = iMin;
  let steepest = Infinity;
  for (let i = skip + w; i <= iMin; i++) {
    const slope = (smoothed[i] - smoothed[i - w]) / (Math.log(lrs[i]) - Math.log(lrs[i - w]));
    if (slope < steepest) { steepest = slope; iSteep = i - Math.floor(w / 2); }
  }
  return { lrs, losses, smoothed, suggestedLr: lrs[iSteep] ?? minLr, minLossLr: lrs[iMin] ?? minLr, stoppedBy };
}

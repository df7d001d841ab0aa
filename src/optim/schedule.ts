// Learning-rate schedules. A schedule is a function from the step number to a multiplier of each group's
// initial lr; a Scheduler applies it to an optimizer, as torch's LambdaLR does (lr = initial * f(step)).

import type { Optimizer } from './optimizer.js';

/** A learning-rate schedule: the multiplier of each group's initial lr at a step. */
export type Schedule = (step: number) => number;

/** The same lr throughout. */
export function constant(): Schedule { return () => 1; }

/** Multiplies by gamma every stepSize steps. */
export function stepDecay(options: { stepSize: number; gamma?: number }): Schedule {
  const { stepSize, gamma = 0.1 } = options;
  if (!(stepSize > 0)) throw new Error(`stepDecay: stepSize must be positive, got ${stepSize}`);
  return (s) => gamma ** Math.floor(s / stepSize);
}

/** Rises linearly from 0 to 1 over `warmup` steps, then stays at 1. */
export function linearWarmup(options: { warmup: number }): Schedule {
  const { warmup } = options;
  if (!(warmup >= 0)) throw new Error(`linearWarmup: warmup must be non-negative, got ${warmup}`);
  return (s) => (warmup > 0 && s < warmup ? s / warmup : 1);
}

/**
 * Linear warmup from 0 over `warmup` steps, then cosine decay to `floor` (a fraction of the initial lr) at
 * `total` steps, staying there after: f(s) = floor + (1 - floor) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2.
 */
export function cosineWithWarmup(options: { warmup?: number; total: number; floor?: number }): Schedule {
  const { warmup = 0, total, floor = 0 } = options;
  if (!(total > warmup)) throw new Error(`cosineWithWarmup: total (${total}) must be greater than warmup (${warmup})`);
  if (!(floor >= 0 && floor <= 1)) throw new Error(`cosineWithWarmup: floor must be in [0, 1], got ${floor}`);
  return (s) => {
    if (s < warmup) return s / warmup;
    const progress = Math.min(1, (s - warmup) / (total - warmup));
    return floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

/**
 * One-cycle (as torch's OneCycleLR with cosine annealing, relative to the max lr): starts at 1/divFactor, rises
 * to 1 over pctStart of the steps, then anneals to 1/(divFactor * finalDivFactor) at `total`.
 */
export function oneCycle(options: { total: number; pctStart?: number; divFactor?: number; finalDivFactor?: number }): Schedule {
  const { total, pctStart = 0.3, divFactor = 25, finalDivFactor = 1e4 } = options;
  if (!(total > 1)) throw new Error(`oneCycle: total must be more than 1 step, got ${total}`);
  const up = pctStart * total - 1;
  const down = total - 1;
  const cos = (from: number, to: number, p: number): number => to + (from - to) * 0.5 * (1 + Math.cos(Math.PI * p));
  const start = 1 / divFactor;
  const end = start / finalDivFactor;
  return (s) => (s <= up ? cos(start, 1, up > 0 ? s / up : 1) : cos(1, end, Math.min(1, (s - up) / (down - up))));
}

/**
 * Applies a schedule to an optimizer: construction sets lr = initialLr * f(0); each step() advances one step.
 * `const sched = new optim.Scheduler(opt, optim.cosineWithWarmup({ warmup: 100, total: 5000, floor: 0.1 }))`
 */
export class Scheduler {
  private stepCount = 0;

  constructor(readonly optimizer: Optimizer, readonly schedule: Schedule) { this.apply(); }

  /** Advances the schedule by one step and sets each group's lr. */
  step(): void {
    this.stepCount++;
    this.apply();
  }

  /** The current lr of each group. */
  get lastLr(): number[] { return this.optimizer.paramGroups.map((g) => g.lr); }
  /** Steps taken. */
  get lastStep(): number { return this.stepCount; }

  private apply(): void {
    const f = this.schedule(this.stepCount);
    if (!Number.isFinite(f)) throw new Error(`Scheduler: the schedule gave ${f} at step ${this.stepCount}`);
    for (const g of this.optimizer.paramGroups) g.lr = g.initialLr * f;
  }

  /** The step count, for a checkpoint. */
  stateDict(): { step: number } { return { step: this.stepCount }; }

  /** Restores the step count and sets each group's lr for it. */
  loadStateDict(sd: { step: number }): void {
    if (!sd || !Number.isInteger(sd.step) || sd.step < 0) throw new Error('Scheduler.loadStateDict: expected { step: a non-negative integer }');
    this.stepCount = sd.step;
    this.apply();
  }
}

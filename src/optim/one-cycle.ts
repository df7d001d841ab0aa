// OneCycle, as torch.optim.lr_scheduler.OneCycleLR: the lr rises from maxLr/divFactor to maxLr, then anneals far
// below the start, while the momentum (SGD's momentum, Adam's beta1) moves the opposite way.

import type { Optimizer, ParamGroup } from './optimizer.js';

/** Options of {@link OneCycle}; the defaults are PyTorch's. Give totalSteps, or epochs and stepsPerEpoch. */
export interface OneCycleOptions {
  /** The peak lr, one for all groups or one per group. */
  maxLr: number | readonly number[];
  /** Optimizer steps in the cycle. */
  totalSteps?: number;
  /** With stepsPerEpoch, the cycle's length when totalSteps is not given. */
  epochs?: number;
  /** With epochs, the cycle's length when totalSteps is not given. */
  stepsPerEpoch?: number;
  /** The fraction of the cycle spent rising (default 0.3). */
  pctStart?: number;
  /** 'cos' (default) or 'linear' annealing between the phase ends. */
  annealStrategy?: 'cos' | 'linear';
  /** Cycle the momentum inversely to the lr (default true). */
  cycleMomentum?: boolean;
  /** The momentum at the lr's peak (default 0.85). */
  baseMomentum?: number;
  /** The momentum at the start and end (default 0.95). */
  maxMomentum?: number;
  /** The starting lr is maxLr / divFactor (default 25). */
  divFactor?: number;
  /** The final lr is the starting lr / finalDivFactor (default 1e4). */
  finalDivFactor?: number;
  /** Three phases as in fast.ai: up, back down to the start, then down to the final lr (default false). */
  threePhase?: boolean;
}

interface Phase { endStep: number; lr: [Corner, Corner]; momentum: [MomentumCorner, MomentumCorner] }
type Corner = 'initial' | 'max' | 'min';
type MomentumCorner = 'max' | 'base';

const cosine = (start: number, end: number, pct: number): number => end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);
const linear = (start: number, end: number, pct: number): number => (end - start) * pct + start;

/**
 * The one-cycle learning-rate policy: construction sets each group's lr to maxLr / divFactor (and its momentum to
 * maxMomentum); each step() moves one optimizer step along the cycle. Stepping past totalSteps throws.
 * ```ts
 * const sched = new optim.OneCycle(opt, { maxLr: 0.01, totalSteps: 1000 });
 * // after each opt.step(): sched.step();
 * ```
 */
export class OneCycle {
  readonly totalSteps: number;
  private readonly lrs: { initial: number; max: number; min: number }[];
  private readonly momenta: { base: number; max: number } | null;
  private readonly phases: Phase[];
  private readonly anneal: (start: number, end: number, pct: number) => number;
  private readonly useBeta1: boolean;
  private stepCount = 0;

  constructor(readonly optimizer: Optimizer, options: OneCycleOptions) {
    const name = 'OneCycle';
    if (!options || typeof options !== 'object') throw new Error(`${name}: expected options with maxLr and totalSteps (or epochs and stepsPerEpoch)`);
    const { pctStart = 0.3, annealStrategy = 'cos', cycleMomentum = true, baseMomentum = 0.85, maxMomentum = 0.95,
      divFactor = 25, finalDivFactor = 1e4, threePhase = false } = options;
    this.totalSteps = cycleLength(options);
    if (!(pctStart >= 0 && pctStart <= 1)) throw new Error(`${name}: pctStart must be in [0, 1], got ${pctStart}`);
    if (annealStrategy !== 'cos' && annealStrategy !== 'linear') throw new Error(`${name}: annealStrategy must be 'cos' or 'linear', got ${String(annealStrategy)}`);
    if (!(divFactor > 0) || !(finalDivFactor > 0)) throw new Error(`${name}: divFactor and finalDivFactor must be positive, got ${divFactor} and ${finalDivFactor}`);
    const groups = optimizer.paramGroups;
    const maxLrs = typeof options.maxLr === 'number' ? Array<number>(groups.length).fill(options.maxLr) : [...(options.maxLr ?? [])];
    if (maxLrs.length !== groups.length) throw new Error(`${name}: maxLr has ${maxLrs.length} values but the optimizer has ${groups.length} parameter groups`);
    maxLrs.forEach((v, i) => { if (!(v > 0)) throw new Error(`${name}: maxLr of group ${i} must be positive, got ${v}`); });
    this.lrs = maxLrs.map((max) => ({ initial: max / divFactor, max, min: max / divFactor / finalDivFactor }));
    this.anneal = annealStrategy === 'cos' ? cosine : linear;
    const t = this.totalSteps;
    this.phases = threePhase
      ? [{ endStep: pctStart * t - 1, lr: ['initial', 'max'], momentum: ['max', 'base'] },
        { endStep: 2 * pctStart * t - 2, lr: ['max', 'initial'], momentum: ['base', 'max'] },
        { endStep: t - 1, lr: ['initial', 'min'], momentum: ['max', 'max'] }]
      : [{ endStep: pctStart * t - 1, lr: ['initial', 'max'], momentum: ['max', 'base'] },
        { endStep: t - 1, lr: ['max', 'min'], momentum: ['base', 'max'] }];
    let start = 0;
    for (const [i, p] of this.phases.entries()) {
      // PyTorch divides by the phase's length, so a phase of no length is an error there too (0/0).
      if (!(p.endStep > start)) {
        throw new Error(`${name}: phase ${i + 1} of the cycle has no steps (totalSteps ${t}, pctStart ${pctStart}); use more steps or another pctStart`);
      }
      start = p.endStep;
    }
    this.useBeta1 = groups.every((g) => Array.isArray(g.betas));
    if (cycleMomentum) {
      if (!this.useBeta1 && !groups.every((g) => typeof g.momentum === 'number')) {
        throw new Error(`${name}: cycleMomentum needs an optimizer with momentum (SGD) or betas (Adam); pass cycleMomentum: false`);
      }
      if (!(baseMomentum >= 0 && maxMomentum < 1 && baseMomentum <= maxMomentum)) {
        throw new Error(`${name}: momenta must satisfy 0 <= baseMomentum <= maxMomentum < 1, got ${baseMomentum} and ${maxMomentum}`);
      }
    }
    this.momenta = cycleMomentum ? { base: baseMomentum, max: maxMomentum } : null;
    this.apply();
  }

  /** Advances one optimizer step along the cycle and sets each group's lr (and momentum). */
  step(): void {
    if (this.stepCount + 1 > this.totalSteps) {
      throw new Error(`OneCycle.step: tried to step ${this.stepCount + 1} times, but the cycle has totalSteps ${this.totalSteps}`);
    }
    this.stepCount++;
    this.apply();
  }

  /** The current lr of each group. */
  get lastLr(): number[] { return this.optimizer.paramGroups.map((g) => g.lr); }
  /** Steps taken along the cycle. */
  get lastStep(): number { return this.stepCount; }

  /** The position in the cycle, for a checkpoint. */
  stateDict(): { step: number } { return { step: this.stepCount }; }

  /** Restores the position saved by stateDict and sets each group's lr (and momentum) for it. */
  loadStateDict(sd: { step: number }): void {
    if (!sd || !Number.isInteger(sd.step) || sd.step < 0 || sd.step > this.totalSteps) {
      throw new Error(`OneCycle.loadStateDict: expected { step: an integer from 0 to ${this.totalSteps} }, got ${JSON.stringify(sd)}`);
    }
    this.stepCount = sd.step;
    this.apply();
  }

  private apply(): void {
    const s = this.stepCount;
    let start = 0;
    let phase = this.phases[this.phases.length - 1]!;
    for (const [i, p] of this.phases.entries()) {
      if (s <= p.endStep || i === this.phases.length - 1) { phase = p; break; }
      start = p.endStep;
    }
    const pct = (s - start) / (phase.endStep - start);
    this.optimizer.paramGroups.forEach((g, i) => {
      const lrs = this.lrs[i]!;
      g.lr = this.anneal(lrs[phase.lr[0]], lrs[phase.lr[1]], pct);
      if (this.momenta) setMomentum(g, this.anneal(this.momenta[phase.momentum[0]], this.momenta[phase.momentum[1]], pct), this.useBeta1);
    });
  }
}

function setMomentum(g: ParamGroup, m: number, useBeta1: boolean): void {
  if (useBeta1) g.betas = [m, (g.betas as [number, number])[1]];
  else g.momentum = m;
}

function cycleLength(o: OneCycleOptions): number {
  if (o.totalSteps !== undefined) {
    if (!Number.isInteger(o.totalSteps) || o.totalSteps <= 0) throw new Error(`OneCycle: totalSteps must be a positive integer, got ${o.totalSteps}`);
    return o.totalSteps;
  }
  if (o.epochs === undefined || o.stepsPerEpoch === undefined) throw new Error('OneCycle: give totalSteps, or both epochs and stepsPerEpoch');
  if (!Number.isInteger(o.epochs) || o.epochs <= 0) throw new Error(`OneCycle: epochs must be a positive integer, got ${o.epochs}`);
  if (!Number.isInteger(o.stepsPerEpoch) || o.stepsPerEpoch <= 0) throw new Error(`OneCycle: stepsPerEpoch must be a positive integer, got ${o.stepsPerEpoch}`);
  return o.epochs * o.stepsPerEpoch;
}

// The Trainer: the feedback loop (batch, forward, loss, backward, clip, step, schedule) with gradient
// accumulation, evaluation without gradients, early stopping, the metrics log and progress display,
// atomic checkpoints with exact resume, Ctrl-C handling and non-finite guards. It knows nothing of GPTs:
// a training source is a DataLoader or any BatchSource, and the loss may be any function of (model, batch).

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { crossEntropy, defaultGenerator, noGrad, type Generator, Tensor } from '../tensor/index.js';
import type { Module } from '../nn/index.js';
import { mseLoss } from '../nn/functional.js';
import type { Optimizer } from '../optim/index.js';
import { clipGradNorm, gradNorm } from '../optim/index.js';
import { DataLoader } from '../data/dataloader.js';
import { writeFileAtomic } from '../io/atomic.js';
import {
  checkModelMatches, cleanStaleCheckpointTemps, listCheckpoints, pruneCheckpoints, readCheckpoint, writeCheckpoint,
  STATE_FILE, type JSONValue, type TrainerState,
} from './checkpoint.js';
import { MetricsLog, countCorrect, type MetricsRecord } from './metrics.js';
import { Progress, type ProgressMode } from './progress.js';
import { lrFind, type LrFindOptions, type LrFindResult } from './lr-find.js';

export type { JSONValue };

/** A batch; DataLoaders over a TensorDataset give [input, target]. */
export type Batch = unknown;

/**
 * A source of training batches with a resumable position. next() returns undefined at the end of an epoch
 * (and the next call starts the following one); a source without epochs never returns undefined.
 */
export interface BatchSource<B = Batch> {
  next(): B | undefined;
  state(): JSONValue | object;
  restore(state: unknown): void;
}

/** A model the Trainer can drive: any Module (the built-in losses call its forward(input) and expect a Tensor). */
export type TrainableModel = Module;

/** What a loss function returns: the loss, or the loss with the output and target (for accuracy). */
export type LossResult = Tensor | { loss: Tensor; output?: Tensor; target?: Tensor };
export type LossFn<B = Batch> = (model: TrainableModel, batch: B) => LossResult;

export interface EarlyStoppingOptions {
  /** Evaluations without improvement before stopping. */
  patience: number;
  /** The least decrease of validation loss that counts as an improvement (default 0). */
  minDelta?: number;
  /** Put the best weights back when training stops (default true). */
  restoreBest?: boolean;
}

export interface CheckpointOptions {
  /** Write a checkpoint every N steps (default: at the end of each epoch, or only at the end without epochs). */
  every?: number;
  /** Keep the newest K checkpoints (default 3), plus the best one. */
  keepLast?: number;
  /** Also keep the checkpoint with the best validation loss, writing one when it improves (default true). */
  keepBest?: boolean;
}

export interface StepInfo {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  trainer: Trainer<any>;
}

export interface EvalInfo {
  step: number;
  epoch: number;
  valLoss: number;
  accuracy?: number;
  improved: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  trainer: Trainer<any>;
}

export interface TrainerOptions<B = Batch> {
  model: TrainableModel;
  optimizer: Optimizer;
  /** A learning-rate scheduler (optim.Scheduler), stepped once per optimizer step. */
  schedule?: { step(): void; stateDict(): unknown; loadStateDict(sd: never): void } | null;
  /**
   * 'crossEntropy' (default) or 'mse' between model.forward(input) and target of an [input, target] or
   * { input, target } batch; or a function (model, batch) => loss | { loss, output, target }.
   */
  loss?: 'crossEntropy' | 'mse' | LossFn<B>;
  /** Training batches: a DataLoader or any BatchSource. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  train: DataLoader<any, B> | BatchSource<B>;
  /** Validation batches: a DataLoader (read in order, its position untouched), an array, or a function returning an iterable. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  validation?: DataLoader<any, B> | readonly B[] | (() => Iterable<B>);
  /** Passes over the training data (needs a source with epochs). */
  epochs?: number;
  /** Optimizer steps in all; with epochs, whichever comes first. */
  maxSteps?: number;
  /** Micro-batches per optimizer step (default 1); the loss is averaged over them. */
  gradAccumulation?: number;
  /** Clip the global gradient norm to this value. */
  clipGradNorm?: number;
  /** Evaluate every N steps (default: at the end of each epoch, and at the end of training). */
  evalEvery?: number;
  /** Write a metrics line every N steps (default 10). */
  logEvery?: number;
  /** 'accuracy': the argmax of the output against integer targets, on training batches (accuracy) and validation (val_accuracy). */
  metrics?: 'accuracy'[];
  earlyStopping?: EarlyStoppingOptions;
  /** Checkpoint settings; needs runDir. false turns checkpoints off. */
  checkpoints?: CheckpointOptions | false;
  /** The run directory: config.json, metrics.jsonl, checkpoints/. Without it nothing is written. */
  runDir?: string;
  /** What config.json records (model and run settings); a resume checks its `model` entry. */
  config?: Record<string, JSONValue>;
  /** Seeds the global generator (dropout, ...) at the start of a fresh fit. */
  seed?: number;
  /** Skip a batch whose loss or gradient is not finite, instead of stopping. */
  skipNonFinite?: boolean;
  /** Tokens in a batch (a number, or a function of the batch): metrics then show tokens_per_s. */
  tokensPerBatch?: number | ((batch: B) => number);
  /** Samples in a batch (default: the first dimension of the first tensor in it). */
  samplesPerBatch?: (batch: B) => number;
  /** 'auto' (default): a bar on a terminal, lines otherwise; false: silent. */
  progress?: ProgressMode;
  /** Other random generators whose state goes into checkpoints (by name). */
  generators?: Record<string, Generator>;
  /** Handle SIGINT (first: finish the step, checkpoint, stop; second: exit at once). Default true with a runDir. */
  handleSignals?: boolean;
  onStep?: (info: StepInfo) => void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onEpoch?: (info: { epoch: number; step: number; trainer: Trainer<any> }) => void;
  /** After each evaluation; returned fields are added to the metrics line (e.g. generated samples). */
  onEval?: (info: EvalInfo) => Record<string, JSONValue> | void;
}

export interface FitOptions {
  /** Continue from the newest complete checkpoint of this run directory (or from this checkpoint folder); true: runDir. */
  resume?: string | boolean;
}

export type StopReason = 'completed' | 'early-stopping' | 'interrupted' | 'stopped';

export interface FitResult {
  step: number;
  epoch: number;
  stopReason: StopReason;
  bestValLoss: number | null;
  bestStep: number | null;
  /** The newest checkpoint folder written or resumed from. */
  lastCheckpoint: string | null;
  /** The step the run resumed from, when it did. */
  resumedFrom: number | null;
}

export interface EvalResult { loss: number; accuracy?: number; samples: number }

/** Thrown when the loss or a gradient is not finite (and skipNonFinite is off). */
export class NonFiniteError extends Error {
  constructor(message: string, readonly step: number, readonly lastCheckpoint: string | null) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

function isSource(x: unknown): x is BatchSource {
  return !!x && typeof (x as BatchSource).next === 'function' && typeof (x as BatchSource).state === 'function' &&
    typeof (x as BatchSource).restore === 'function';
}

function cloneState(sd: Record<string, Tensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(sd)) out[k] = new Tensor(t.storage.slice(), t.shape);
  return out;
}

function sameJSON(a: unknown, b: unknown): boolean { return JSON.stringify(a) === JSON.stringify(b); }

/**
 * Trains a model.
 * ```ts
 * const trainer = new Trainer({ model, optimizer: new optim.Adam(model.parameters(), { lr: 1e-3 }),
 *   train: new DataLoader(trainSet, { batchSize: 128, shuffle: true }), validation: new DataLoader(valSet, { batchSize: 500 }),
 *   epochs: 3, metrics: ['accuracy'], earlyStopping: { patience: 2 }, runDir: 'runs/mnist' });
 * const result = await trainer.fit();            // later: await trainer.fit({ resume: true })
 * ```
 */
export class Trainer<B = Batch> {
  readonly options: TrainerOptions<B>;
  readonly model: TrainableModel;
  readonly optimizer: Optimizer;
  readonly source: BatchSource<B>;
  /** Optimizer steps taken. */
  step = 0;
  /** Completed passes over the training data. */
  epoch = 0;
  bestValLoss: number | null = null;
  bestStep: number | null = null;
  private bestCheckpointStep: number | null = null;
  private bestWeights: Record<string, Tensor> | null = null;
  private wait = 0;
  private elapsedBefore = 0;
  private samplesSeen = 0;
  private tokensSeen = 0;
  private stopRequested: StopReason | null = null;
  private interrupted = false;
  private lastCheckpoint: string | null = null;
  private lastCheckpointStep = -1;
  private lastEvalStep = -1;
  private lastValLoss: number | null = null;
  private metricsLog: MetricsLog | null = null;
  private progress: Progress | null = null;
  private startTime = 0;

  constructor(options: TrainerOptions<B>) {
    const o = options;
    if (!o || typeof o !== 'object') throw new Error('Trainer: expected an options object');
    if (!o.model || typeof o.model.parameters !== 'function') throw new Error('Trainer: model must be a Module');
    if (!o.optimizer || typeof o.optimizer.step !== 'function') throw new Error('Trainer: optimizer must be an optimizer (e.g. new optim.AdamW(model.parameters()))');
    if (!isSource(o.train)) throw new Error('Trainer: train must be a DataLoader or a BatchSource with next(), state() and restore()');
    if (o.epochs === undefined && o.maxSteps === undefined) throw new Error('Trainer: give epochs or maxSteps');
    const posInt = (v: unknown, name: string): void => {
      if (v !== undefined && (!Number.isInteger(v) || (v as number) < 1)) throw new Error(`Trainer: ${name} must be a positive integer, got ${String(v)}`);
    };
    posInt(o.epochs, 'epochs');
    posInt(o.maxSteps, 'maxSteps');
    posInt(o.gradAccumulation, 'gradAccumulation');
    posInt(o.evalEvery, 'evalEvery');
    posInt(o.logEvery, 'logEvery');
    if (o.clipGradNorm !== undefined && !(o.clipGradNorm > 0)) throw new Error(`Trainer: clipGradNorm must be positive, got ${o.clipGradNorm}`);
    if (o.earlyStopping) {
      posInt(o.earlyStopping.patience, 'earlyStopping.patience');
      if (!o.validation) throw new Error('Trainer: earlyStopping needs validation data');
    }
    if (o.checkpoints) {
      if (!o.runDir) throw new Error('Trainer: checkpoints need a runDir');
      posInt(o.checkpoints.every, 'checkpoints.every');
      if (o.checkpoints.keepLast !== undefined) posInt(o.checkpoints.keepLast, 'checkpoints.keepLast');
    }
    const loss = o.loss ?? 'crossEntropy';
    if (typeof loss !== 'function' && loss !== 'crossEntropy' && loss !== 'mse') {
      throw new Error(`Trainer: loss must be 'crossEntropy', 'mse' or a function (model, batch) => Tensor, got ${String(loss)}`);
    }
    this.options = o;
    this.model = o.model;
    this.optimizer = o.optimizer;
    this.source = o.train as BatchSource<B>;
  }

  private get checkpointsOn(): boolean { return !!this.options.runDir && this.options.checkpoints !== false; }
  private get checkpointsDir(): string { return join(this.options.runDir ?? '.', 'checkpoints'); }

  /** Asks the loop to stop after the current step (from a callback). */
  stop(): void { this.stopRequested = 'stopped'; }

  /** The learning-rate range test on this trainer's model, optimizer, loss and data; everything is restored after. */
  lrFind(options: LrFindOptions = {}): LrFindResult { return lrFind(this, options); }

  /** The learning rate of the first parameter group. */
  get lr(): number { return this.optimizer.paramGroups[0].lr; }

  // ---- loss and batches ----

  /** Runs the loss on a batch: { loss, output?, target? }. */
  computeLoss(batch: B): { loss: Tensor; output?: Tensor; target?: Tensor } {
    const loss = this.options.loss ?? 'crossEntropy';
    if (typeof loss === 'function') {
      const r = loss(this.model, batch);
      if (r instanceof Tensor) return { loss: r };
      if (!r || !(r.loss instanceof Tensor)) throw new Error('Trainer: the loss function must return a Tensor or { loss: Tensor, ... }');
      return r;
    }
    const [input, target] = splitBatch(batch);
    const m = this.model as unknown as { forward?: (x: Tensor) => unknown };
    if (typeof m.forward !== 'function') throw new Error('Trainer: the model has no forward(x); pass loss as a function (model, batch) => Tensor');
    const output = m.forward(input);
    if (!(output instanceof Tensor)) {
      throw new Error("Trainer: the built-in losses need forward(input) to return a Tensor; pass loss as a function (model, batch) => Tensor");
    }
    const l = loss === 'mse' ? mseLoss(output, target) : crossEntropy(output, target);
    return { loss: l, output, target };
  }

  private samplesIn(batch: B): number {
    if (this.options.samplesPerBatch) return this.options.samplesPerBatch(batch);
    const first = Array.isArray(batch) ? batch[0] : batch instanceof Tensor ? batch
      : batch && typeof batch === 'object' ? Object.values(batch)[0] : undefined;
    return first instanceof Tensor && first.ndim > 0 ? first.shape[0] : 1;
  }

  private tokensIn(batch: B): number {
    const t = this.options.tokensPerBatch;
    return t === undefined ? 0 : typeof t === 'number' ? t : t(batch);
  }

  private validationBatches(data = this.options.validation): Iterable<B> {
    if (!data) throw new Error('Trainer.evaluate: no validation data was given');
    if (data instanceof DataLoader) return data.iterEpoch(0);
    if (typeof data === 'function') return data();
    if (Array.isArray(data)) return data;
    throw new Error('Trainer: validation must be a DataLoader, an array of batches or a function returning batches');
  }

  /**
   * Mean loss (weighted by batch size) and, when asked, accuracy over validation data, in eval mode without
   * gradients; the model's mode is restored after.
   */
  evaluate(data?: TrainerOptions<B>['validation']): EvalResult {
    const wasTraining = this.model.training;
    this.model.eval();
    let sum = 0;
    let n = 0;
    let correct = 0;
    let total = 0;
    const wantAcc = this.options.metrics?.includes('accuracy') ?? false;
    try {
      noGrad(() => {
        for (const batch of this.validationBatches(data)) {
          const { loss, output, target } = this.computeLoss(batch);
          const k = this.samplesIn(batch);
          sum += loss.item() * k;
          n += k;
          if (wantAcc && output && target) {
            const c = countCorrect(output, target);
            correct += c.correct;
            total += c.total;
          }
        }
      });
    } finally {
      this.model.train(wasTraining);
    }
    if (n === 0) throw new Error('Trainer.evaluate: the validation data gave no batches');
    const out: EvalResult = { loss: sum / n, samples: n };
    if (wantAcc && total > 0) out.accuracy = correct / total;
    return out;
  }

  // ---- the loop ----

  private totalSteps(): number | undefined {
    const o = this.options;
    let fromEpochs: number | undefined;
    if (o.epochs !== undefined && o.train instanceof DataLoader) {
      fromEpochs = o.epochs * Math.ceil(o.train.length / (o.gradAccumulation ?? 1));
    }
    if (o.maxSteps !== undefined && fromEpochs !== undefined) return Math.min(o.maxSteps, fromEpochs);
    return o.maxSteps ?? fromEpochs;
  }

  private elapsed(): number { return this.elapsedBefore + (performance.now() - this.startTime) / 1000; }

  private done(): boolean {
    const o = this.options;
    return (o.maxSteps !== undefined && this.step >= o.maxSteps) || (o.epochs !== undefined && this.epoch >= o.epochs);
  }

  /**
   * Trains until epochs or maxSteps, early stopping, stop() or Ctrl-C. With resume, continues from the newest
   * complete checkpoint so the losses from the next step on are bitwise those of a run never stopped.
   */
  async fit(fitOptions: FitOptions = {}): Promise<FitResult> {
    const o = this.options;
    const accum = o.gradAccumulation ?? 1;
    const logEvery = o.logEvery ?? 10;
    let resumedFrom: number | null = null;
    if (o.runDir) mkdirSync(o.runDir, { recursive: true });
    this.metricsLog = o.runDir ? new MetricsLog(join(o.runDir, 'metrics.jsonl')) : null;
    if (fitOptions.resume) {
      const target = fitOptions.resume === true ? o.runDir : fitOptions.resume;
      if (!target) throw new Error('Trainer.fit: resume: true needs a runDir');
      resumedFrom = this.resume(target);
    } else {
      this.startFresh();
    }
    this.stopRequested = null;
    this.interrupted = false;
    const total = this.totalSteps();
    this.progress = new Progress(o.progress ?? 'auto', total);
    this.progress.start(this.step);
    this.startTime = performance.now();
    const removeSignals = (o.handleSignals ?? !!o.runDir) ? this.installSignals() : () => {};
    this.model.train();
    const params = this.optimizer.params();
    const wantAcc = o.metrics?.includes('accuracy') ?? false;
    let interval = { loss: 0, count: 0, samples: 0, tokens: 0, t0: performance.now(), correct: 0, total: 0 };
    let stopReason: StopReason = 'completed';
    try {
      while (!this.done()) {
        if (this.stopRequested) break;
        // ---- one optimizer step over `accum` micro-batches ----
        this.optimizer.zeroGrad();
        let micro = 0;
        let lossSum = 0;
        let samples = 0;
        let tokens = 0;
        let epochEnded = false;
        let skipped = false;
        while (micro < accum) {
          const batch = this.source.next();
          if (batch === undefined) { epochEnded = true; break; }
          const { loss, output, target } = this.computeLoss(batch);
          const lv = loss.item();
          if (!Number.isFinite(lv)) {
            this.nonFinite(`the loss is ${lv}`);
            skipped = true;
            break;
          }
          (accum > 1 ? loss.div(accum) : loss).backward();
          lossSum += lv;
          if (wantAcc && output && target) {
            const c = countCorrect(output, target);
            interval.correct += c.correct;
            interval.total += c.total;
          }
          samples += this.samplesIn(batch);
          tokens += this.tokensIn(batch);
          micro++;
        }
        if (!skipped && micro > 0) {
          if (micro < accum) {
            // A short final accumulation (epoch end): rescale so the gradient is the mean over the micro-batches taken.
            const f = accum / micro;
            for (const p of params) if (p.grad) { const s = p.grad.storage; for (let i = 0; i < s.length; i++) s[i] *= f; }
          }
          const norm = o.clipGradNorm !== undefined ? clipGradNorm(params, o.clipGradNorm) : gradNorm(params.map((p) => p.grad));
          if (!Number.isFinite(norm)) {
            this.nonFinite(`the gradient norm is ${norm}`);
            skipped = true;
          } else {
            const lr = this.lr;
            this.optimizer.step();
            o.schedule?.step();
            this.step++;
            this.samplesSeen += samples;
            this.tokensSeen += tokens;
            const loss = lossSum / micro;
            interval.loss += loss;
            interval.count++;
            interval.samples += samples;
            interval.tokens += tokens;
            const evalNow = !!o.validation && o.evalEvery !== undefined && this.step % o.evalEvery === 0;
            if (this.step % logEvery === 0 || evalNow || this.done()) {
              const secs = (performance.now() - interval.t0) / 1000;
              const rec: MetricsRecord = {
                step: this.step, epoch: this.epoch, loss: interval.loss / interval.count, lr, grad_norm: norm,
              };
              if (interval.total > 0) rec.accuracy = interval.correct / interval.total;
              if (o.tokensPerBatch !== undefined) rec.tokens_per_s = secs > 0 ? interval.tokens / secs : null;
              else rec.samples_per_s = secs > 0 ? interval.samples / secs : null;
              if (evalNow) Object.assign(rec, this.runEval());
              this.emit(rec);
              interval = { loss: 0, count: 0, samples: 0, tokens: 0, t0: performance.now(), correct: 0, total: 0 };
            }
            o.onStep?.({ step: this.step, epoch: this.epoch, loss, lr, gradNorm: norm, trainer: this });
            const every = o.checkpoints ? o.checkpoints.every : undefined;
            if (every !== undefined && this.step % every === 0) this.saveDue = true;
            this.saveIfDue();
          }
        }
        if (skipped) this.optimizer.zeroGrad();
        if (epochEnded) {
          this.epoch++;
          if (o.validation && o.evalEvery === undefined && this.lastEvalStep !== this.step) this.emit(this.evalRecord());
          o.onEpoch?.({ epoch: this.epoch, step: this.step, trainer: this });
          const every = o.checkpoints ? o.checkpoints.every : undefined;
          if (every === undefined) this.saveDue = true;
          this.saveIfDue();
          if (micro === 0 && this.source instanceof DataLoader && this.source.length === 0) {
            throw new Error('Trainer: the training DataLoader has no batches (dataset smaller than batchSize with dropLast?)');
          }
        }
        // Let signal handlers run between steps.
        await new Promise<void>((r) => setImmediate(r));
        if (this.interrupted) { stopReason = 'interrupted'; break; }
      }
      if (this.stopRequested && stopReason === 'completed') stopReason = this.stopRequested;
      // ---- the end: a last evaluation and checkpoint ----
      if (o.validation && this.lastEvalStep !== this.step && stopReason !== 'interrupted') this.emit(this.evalRecord());
      if (this.checkpointsOn && this.lastCheckpointStep !== this.step) this.saveCheckpoint();
      if (stopReason === 'interrupted') this.progress.message(`interrupted: checkpoint written at step ${this.step} (${this.lastCheckpoint})`);
      if (o.earlyStopping && (o.earlyStopping.restoreBest ?? true) && this.bestWeights && this.bestStep !== this.step) {
        this.model.loadStateDict(this.bestWeights);
      }
    } finally {
      removeSignals();
      this.progress.stop();
    }
    return {
      step: this.step, epoch: this.epoch, stopReason, bestValLoss: this.bestValLoss, bestStep: this.bestStep,
      lastCheckpoint: this.lastCheckpoint, resumedFrom,
    };
  }

  /** Runs an evaluation, updates best/early stopping, and returns the metrics fields. */
  private runEval(): MetricsRecord {
    const o = this.options;
    const r = this.evaluate();
    this.lastEvalStep = this.step;
    this.lastValLoss = r.loss;
    const minDelta = o.earlyStopping?.minDelta ?? 0;
    const improved = this.bestValLoss === null || r.loss < this.bestValLoss - minDelta;
    if (improved) {
      this.bestValLoss = r.loss;
      this.bestStep = this.step;
      this.wait = 0;
      if (o.earlyStopping && (o.earlyStopping.restoreBest ?? true)) this.bestWeights = cloneState(this.model.stateDict());
    } else {
      this.wait++;
    }
    const rec: MetricsRecord = { val_loss: r.loss };
    if (r.accuracy !== undefined) rec.val_accuracy = r.accuracy;
    rec.best_val_loss = this.bestValLoss;
    rec.best_step = this.bestStep;
    const extra = o.onEval?.({ step: this.step, epoch: this.epoch, valLoss: r.loss, accuracy: r.accuracy, improved, trainer: this });
    if (extra) Object.assign(rec, extra);
    if (improved && this.checkpointsOn && !(o.checkpoints && o.checkpoints.keepBest === false)) {
      // Saved by the caller once this evaluation's metrics line is written, so the checkpoint's log length includes it.
      this.bestCheckpointStep = this.step;
      this.saveDue = true;
    }
    if (o.earlyStopping && this.wait >= o.earlyStopping.patience) {
      this.stopRequested = 'early-stopping';
      rec.early_stop = true;
    }
    return rec;
  }

  private evalRecord(): MetricsRecord {
    return { step: this.step, epoch: this.epoch, ...this.runEval() };
  }

  private emit(rec: MetricsRecord): void {
    const elapsed = this.elapsed();
    rec.elapsed_s = elapsed;
    const total = this.totalSteps();
    if (total !== undefined && this.step > 0) {
      const done = this.step - (this.resumedStep ?? 0);
      const rate = done > 0 ? (performance.now() - this.startTime) / 1000 / done : NaN;
      rec.remaining_s = Number.isFinite(rate) ? Math.max(0, (total - this.step) * rate) : null;
    }
    this.metricsLog?.append(rec);
    this.progress?.log(rec);
  }

  private resumedStep: number | null = null;
  private saveDue = false;

  private saveIfDue(): void {
    if (this.saveDue && this.checkpointsOn && this.lastCheckpointStep !== this.step) this.saveCheckpoint();
    this.saveDue = false;
  }

  private nonFinite(what: string): void {
    const step = this.step + 1;
    if (this.options.skipNonFinite) {
      this.progress?.message(`step ${step}: ${what}; skipping the batch (skipNonFinite)`);
      return;
    }
    const ckpt = this.lastCheckpoint ?? (this.checkpointsOn ? listCheckpoints(this.checkpointsDir)[0]?.dir ?? null : null);
    throw new NonFiniteError(`Trainer: ${what} at step ${step}; training stopped. ` +
      (ckpt ? `The last good checkpoint is '${ckpt}' (resume with fit({ resume })).` : 'There is no checkpoint to go back to.') +
      ' Lower the learning rate, clip gradients (clipGradNorm), or set skipNonFinite to skip such batches.', step, ckpt);
  }

  private installSignals(): () => void {
    let count = 0;
    const handler = (): void => {
      count++;
      if (count === 1) {
        this.interrupted = true;
        this.progress?.message('interrupt: finishing the current step and writing a checkpoint (Ctrl-C again to quit at once)');
      } else {
        process.exit(130);
      }
    };
    process.on('SIGINT', handler);
    return () => { process.off('SIGINT', handler); };
  }

  // ---- checkpoints and resume ----

  private rngStates(): TrainerState['rng'] {
    const out: TrainerState['rng'] = { default: defaultGenerator.getState() };
    for (const [k, g] of Object.entries(this.options.generators ?? {})) out[k] = g.getState();
    return out;
  }

  private modelShapes(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const [k, t] of Object.entries(this.model.stateDict())) out[k] = [...t.shape];
    return out;
  }

  /** Writes checkpoints/step-N now (after a finite-check of every parameter) and prunes old ones. */
  saveCheckpoint(): string {
    if (!this.options.runDir) throw new Error('Trainer.saveCheckpoint: no runDir was given');
    const sd = this.model.stateDict();
    for (const [k, t] of Object.entries(sd)) {
      const s = t.storage;
      for (let i = 0; i < s.length; i++) {
        if (!Number.isFinite(s[i])) {
          throw new NonFiniteError(`Trainer: parameter '${k}' holds ${s[i]} at step ${this.step}; refusing to write a poisoned checkpoint. ` +
            `The last good checkpoint is '${this.lastCheckpoint ?? 'none'}'.`, this.step, this.lastCheckpoint);
        }
      }
    }
    const o = this.options;
    const dir = writeCheckpoint(this.checkpointsDir, {
      step: this.step,
      epoch: this.epoch,
      data: this.source.state() as JSONValue,
      rng: this.rngStates(),
      best_val_loss: this.bestValLoss,
      best_step: this.bestStep,
      best_checkpoint_step: this.bestCheckpointStep,
      val_loss: this.lastEvalStep === this.step ? this.lastValLoss : null,
      early_stopping: o.earlyStopping ? { wait: this.wait } : null,
      schedule: (o.schedule?.stateDict() ?? null) as JSONValue,
      elapsed_s: this.startTime ? this.elapsed() : this.elapsedBefore,
      samples_seen: this.samplesSeen,
      tokens_seen: this.tokensSeen,
      metrics_bytes: this.metricsLog?.bytes() ?? 0,
      config: (o.config ?? null) as JSONValue,
      model_shapes: this.modelShapes(),
    }, sd, this.optimizer.stateDict());
    this.lastCheckpoint = dir;
    this.lastCheckpointStep = this.step;
    const keep = new Set<number>();
    if (this.bestCheckpointStep !== null) keep.add(this.bestCheckpointStep);
    pruneCheckpoints(this.checkpointsDir, (o.checkpoints && o.checkpoints.keepLast) || 3, keep);
    return dir;
  }

  private startFresh(): void {
    const o = this.options;
    if (o.runDir && this.checkpointsOn) {
      const existing = listCheckpoints(this.checkpointsDir);
      if (existing.length > 0) {
        throw new Error(`Trainer.fit: the run directory '${o.runDir}' already holds checkpoints (newest: ${existing[0].dir}); ` +
          'pass fit({ resume: true }) to continue it, or choose another runDir');
      }
    }
    if (o.runDir) {
      writeFileAtomic(join(o.runDir, 'config.json'), `${JSON.stringify(o.config ?? {}, null, 2)}\n`);
      this.metricsLog?.truncateTo(0);
    }
    if (o.seed !== undefined) defaultGenerator.manualSeed(o.seed);
    this.step = 0;
    this.epoch = 0;
    this.bestValLoss = null;
    this.bestStep = null;
    this.bestCheckpointStep = null;
    this.bestWeights = null;
    this.wait = 0;
    this.elapsedBefore = 0;
    this.samplesSeen = 0;
    this.tokensSeen = 0;
    this.lastCheckpoint = null;
    this.lastCheckpointStep = -1;
    this.lastEvalStep = -1;
    this.resumedStep = null;
  }

  /** Loads the newest complete checkpoint of a run directory (or a given checkpoint folder); returns its step. */
  private resume(target: string): number {
    const o = this.options;
    let dir: string;
    if (existsSync(join(target, STATE_FILE))) dir = target;
    else {
      const ckDir = join(target, 'checkpoints');
      if (!existsSync(target)) throw new Error(`Trainer.fit: cannot resume: '${target}' does not exist`);
      cleanStaleCheckpointTemps(ckDir);
      const list = listCheckpoints(ckDir);
      if (list.length === 0) throw new Error(`Trainer.fit: cannot resume: '${resolve(ckDir)}' holds no complete checkpoint`);
      dir = list[0].dir;
    }
    const ck = readCheckpoint(dir);
    const s = ck.state;
    const modelFile = join(dir, 'model.safetensors');
    checkModelMatches(modelFile, ck.model, this.model.stateDict());
    const savedModel = (s.config as Record<string, unknown> | null)?.model;
    const ownModel = o.config?.model;
    if (savedModel !== undefined && ownModel !== undefined && !sameJSON(savedModel, ownModel)) {
      throw new Error(`checkpoint '${join(dir, STATE_FILE)}' was written for a different model configuration: ` +
        `config.model there is ${JSON.stringify(savedModel)}, here ${JSON.stringify(ownModel)}`);
    }
    // Everything checked; now restore.
    this.model.loadStateDict(ck.model);
    try {
      this.optimizer.loadStateDict(ck.optimizer as Parameters<Optimizer['loadStateDict']>[0]);
    } catch (err) {
      throw new Error(`checkpoint file '${join(dir, 'optimizer.safetensors')}' does not fit this optimizer: ${(err as Error).message}`);
    }
    if (o.schedule && s.schedule !== null) (o.schedule.loadStateDict as (sd: unknown) => void)(s.schedule);
    try {
      this.source.restore(s.data);
    } catch (err) {
      throw new Error(`checkpoint '${join(dir, STATE_FILE)}' does not fit the training data: ${(err as Error).message}`);
    }
    defaultGenerator.setState(s.rng.default);
    for (const [k, g] of Object.entries(o.generators ?? {})) {
      if (!s.rng[k]) throw new Error(`checkpoint '${join(dir, STATE_FILE)}' has no state for the generator '${k}'`);
      g.setState(s.rng[k]);
    }
    this.step = s.step;
    this.epoch = s.epoch;
    this.bestValLoss = s.best_val_loss;
    this.bestStep = s.best_step;
    this.bestCheckpointStep = s.best_checkpoint_step;
    this.wait = s.early_stopping?.wait ?? 0;
    this.elapsedBefore = s.elapsed_s;
    this.samplesSeen = s.samples_seen;
    this.tokensSeen = s.tokens_seen;
    this.lastCheckpoint = dir;
    this.lastCheckpointStep = s.step;
    this.lastEvalStep = s.val_loss !== null ? s.step : -1;
    this.lastValLoss = s.val_loss;
    this.resumedStep = s.step;
    this.bestWeights = null;
    if (o.earlyStopping && (o.earlyStopping.restoreBest ?? true) && s.best_checkpoint_step !== null) {
      const bestDir = join(this.checkpointsDir, `step-${s.best_checkpoint_step}`);
      if (existsSync(join(bestDir, STATE_FILE))) this.bestWeights = readCheckpoint(bestDir).model;
    }
    if (this.metricsLog) this.metricsLog.truncateTo(s.metrics_bytes);
    if (o.runDir && !existsSync(join(o.runDir, 'config.json'))) {
      writeFileAtomic(join(o.runDir, 'config.json'), `${JSON.stringify(o.config ?? {}, null, 2)}\n`);
    }
    return s.step;
  }

  /** The config.json of a run directory. */
  static readConfig(runDir: string): unknown {
    return JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
  }
}

function splitBatch(batch: unknown): [Tensor, Tensor] {
  if (Array.isArray(batch) && batch.length >= 2 && batch[0] instanceof Tensor && batch[1] instanceof Tensor) return [batch[0], batch[1]];
  if (batch && typeof batch === 'object') {
    const b = batch as Record<string, unknown>;
    const input = b.input ?? b.x;
    const target = b.target ?? b.y;
    if (input instanceof Tensor && target instanceof Tensor) return [input, target];
  }
  throw new Error('Trainer: a batch for the built-in losses must be [input, target] or { input, target } tensors; ' +
    'pass loss as a function (model, batch) => Tensor for other batches');
}

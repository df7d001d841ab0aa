// The Trainer, the public face of training: it holds model, optimizer, data and run state; fit() starts a run
// fresh or resumed (resume.ts), catches Ctrl-C (signals.ts) and drives the loop (loop.ts). It knows nothing of GPTs.

import { readFileSync } from 'node:fs';
import { makeDirs } from '../io/atomic.js';
import { join } from 'node:path';
import { autocast, defaultGenerator, type Tensor } from '../tensor/index.js';
import type { Optimizer } from '../optim/index.js';
import { writeFileAtomic } from '../io/atomic.js';
import { listCheckpoints, pruneCheckpoints, writeCheckpoint, type JSONValue, type TrainerState } from './checkpoint.js';
import { evaluateModel } from './evaluation.js';
import { computeLoss } from './loss.js';
import { runLoop } from './loop.js';
import { lrFind, type LrFindOptions, type LrFindResult } from './lr-find.js';
import { MetricsLog } from './metrics.js';
import {
  checkOptions, checkpointsDir, checkpointsOn, NonFiniteError, totalSteps,
  type BatchSource, type Batch, type EvalResult, type FitOptions, type FitResult, type StopReason, type TrainableModel,
  type TrainerOptions,
} from './options.js';
import { Progress } from './progress.js';
import { resumeRun } from './resume.js';
import { RunState } from './run-state.js';
import { catchInterrupts } from './signals.js';
import { DataParallel } from './data-parallel.js';

export type { JSONValue };
export {
  NonFiniteError, type Batch, type BatchSource, type TrainableModel, type LossResult, type LossFn,
  type EarlyStoppingOptions, type CheckpointOptions, type StepInfo, type EvalInfo, type StepSchedule, type TrainerOptions,
  type FitOptions, type StopReason, type FitResult, type EvalResult,
} from './options.js';

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
  private run = new RunState();
  private metricsLog: MetricsLog | null = null;
  private parallel: DataParallel | null = null;

  constructor(options: TrainerOptions<B>) {
    checkOptions(options);
    this.options = options;
    this.model = options.model;
    this.optimizer = options.optimizer;
    this.source = options.train as BatchSource<B>;
  }

  /**
   * The process group this trainer runs in (joined on first use). Under `mpirun -np N` the model is wrapped for
   * data-parallel training and each rank trains on its slice of every batch the training source yields.
   * @internal the loop and evaluation use it
   */
  dataParallel(): DataParallel {
    this.parallel ??= new DataParallel();
    return this.parallel;
  }

  /** Optimizer steps taken. */
  get step(): number { return this.run.step; }
  /** Sets the step count (a callback may move it). */
  set step(v: number) { this.run.step = v; }
  /** Completed passes over the training data. */
  get epoch(): number { return this.run.epoch; }
  /** Sets the epoch count. */
  set epoch(v: number) { this.run.epoch = v; }
  /** The lowest validation loss so far (null before the first evaluation). */
  get bestValLoss(): number | null { return this.run.bestValLoss; }
  /** Sets the best validation loss. */
  set bestValLoss(v: number | null) { this.run.bestValLoss = v; }
  /** The step of the lowest validation loss (null before the first evaluation). */
  get bestStep(): number | null { return this.run.bestStep; }
  /** Sets the step of the best validation loss. */
  set bestStep(v: number | null) { this.run.bestStep = v; }

  /** Asks the loop to stop after the current step (from a callback). */
  stop(): void { this.run.stopRequested = 'stopped'; }

  /** The learning-rate range test on this trainer's model, optimizer, loss and data; everything is restored after. */
  lrFind(options: LrFindOptions = {}): LrFindResult {
    const dp = this.dataParallel();
    if (dp.active) {
      throw new Error(`Trainer.lrFind: this process is one of ${dp.world} started by mpirun; run the learning-rate range ` +
        'test in a single process (without mpirun) and use the rate it finds for the data-parallel run');
    }
    return lrFind(this, options);
  }

  /** The learning rate of the first parameter group. */
  get lr(): number { return this.optimizer.paramGroups[0].lr; }

  /** Runs the loss on a batch in the run's precision (its backward keeps it): { loss, output?, target? }. */
  computeLoss(batch: B): { loss: Tensor; output?: Tensor; target?: Tensor } {
    return autocast(this.options.precision ?? 'float32', () => computeLoss(this.options, this.model, batch));
  }

  /**
   * Mean loss (weighted by batch size) and, when asked, accuracy over validation data, in eval mode without
   * gradients; the model's mode is restored after.
   */
  evaluate(data?: TrainerOptions<B>['validation']): EvalResult { return evaluateModel(this, data); }

  /**
   * Trains until epochs or maxSteps, early stopping, stop() or Ctrl-C. With resume, continues from the newest
   * complete checkpoint so the losses from the next step on are bitwise those of a run never stopped.
   */
  async fit(fitOptions: FitOptions = {}): Promise<FitResult> {
    const o = this.options;
    const run = this.run;
    let resumedFrom: number | null = null;
    const dp = this.dataParallel();
    // Only rank 0 writes the run folder (metrics, config, checkpoints) and shows progress; the others are quiet.
    if (o.runDir && dp.isMain) makeDirs(o.runDir, 'run folder');
    this.metricsLog = o.runDir && dp.isMain ? new MetricsLog(join(o.runDir, 'metrics.jsonl')) : null;
    if (fitOptions.resume) {
      const target = fitOptions.resume === true ? o.runDir : fitOptions.resume;
      if (!target) throw new Error('Trainer.fit: resume: true needs a runDir');
      resumedFrom = resumeRun(this, run, this.metricsLog, target, { worldSize: dp.world, reshard: fitOptions.reshard });
    } else {
      this.startFresh();
    }
    dp.wrap(this.model);
    run.stopRequested = null;
    run.interrupted = false;
    const progress = new Progress(dp.isMain ? o.progress ?? 'auto' : false, totalSteps(o));
    progress.start(run.step);
    run.startTime = performance.now();
    const removeSignals = (o.handleSignals ?? !!o.runDir) ? catchInterrupts(() => {
      run.interrupted = true;
      progress.message('interrupt: finishing the current step and writing a checkpoint (Ctrl-C again to quit at once)');
    }, { sigterm: dp.active }) : () => {};
    this.model.train();
    let stopReason: StopReason;
    try {
      stopReason = await runLoop(this, { run, metricsLog: this.metricsLog, progress });
    } finally {
      removeSignals();
      progress.stop();
    }
    return {
      step: run.step, epoch: run.epoch, stopReason, bestValLoss: run.bestValLoss, bestStep: run.bestStep,
      lastCheckpoint: run.lastCheckpoint, resumedFrom,
    };
  }

  /**
   * Writes checkpoints/step-N now (after a finite-check of every parameter) and prunes old ones. Under several
   * ranks every rank calls it: rank 0 writes, and all wait for it, so no rank runs ahead of a checkpoint.
   */
  saveCheckpoint(): string {
    if (!this.options.runDir) throw new Error('Trainer.saveCheckpoint: no runDir was given');
    const run = this.run;
    const sd = this.model.stateDict();
    for (const [k, t] of Object.entries(sd)) {
      const s = t.storage;
      for (let i = 0; i < s.length; i++) {
        if (!Number.isFinite(s[i])) {
          throw new NonFiniteError(`Trainer: parameter '${k}' holds ${s[i]} at step ${run.step}; refusing to write a poisoned checkpoint. ` +
            `The last good checkpoint is '${run.lastCheckpoint ?? 'none'}'.`, run.step, run.lastCheckpoint);
        }
      }
    }
    const o = this.options;
    // The check above runs on every rank (the parameters are the same everywhere, so all refuse together); rank 0
    // alone writes, and the others wait for it.
    const dp = this.dataParallel();
    if (!dp.isMain) {
      dp.barrier();
      run.lastCheckpoint = join(checkpointsDir(o), `step-${run.step}`);
      run.lastCheckpointStep = run.step;
      return run.lastCheckpoint;
    }
    const rng: TrainerState['rng'] = { default: defaultGenerator.getState() };
    for (const [k, g] of Object.entries(o.generators ?? {})) rng[k] = g.getState();
    const modelShapes: Record<string, number[]> = {};
    for (const [k, t] of Object.entries(sd)) modelShapes[k] = [...t.shape];
    const dir = writeCheckpoint(checkpointsDir(o), {
      step: run.step,
      epoch: run.epoch,
      data: this.source.state() as JSONValue,
      rng,
      best_val_loss: run.bestValLoss,
      best_step: run.bestStep,
      best_checkpoint_step: run.bestCheckpointStep,
      val_loss: run.lastEvalStep === run.step ? run.lastValLoss : null,
      early_stopping: o.earlyStopping ? { wait: run.wait } : null,
      schedule: (o.schedule?.stateDict() ?? null) as JSONValue,
      elapsed_s: run.startTime ? run.elapsed() : run.elapsedBefore,
      samples_seen: run.samplesSeen,
      tokens_seen: run.tokensSeen,
      metrics_bytes: this.metricsLog?.bytes() ?? 0,
      config: (o.config ?? null) as JSONValue,
      model_shapes: modelShapes,
      world_size: dp.world,
    }, sd, this.optimizer.stateDict());
    run.lastCheckpoint = dir;
    run.lastCheckpointStep = run.step;
    const keep = new Set<number>();
    if (run.bestCheckpointStep !== null) keep.add(run.bestCheckpointStep);
    pruneCheckpoints(checkpointsDir(o), (o.checkpoints && o.checkpoints.keepLast) || 3, keep);
    dp.barrier();
    return dir;
  }

  /** A fresh fit: refuses a run directory that already holds checkpoints, writes config.json, resets the run state. */
  private startFresh(): void {
    const o = this.options;
    if (o.runDir && checkpointsOn(o)) {
      const existing = listCheckpoints(checkpointsDir(o));
      if (existing.length > 0) {
        throw new Error(`Trainer.fit: the run directory '${o.runDir}' already holds checkpoints (newest: ${existing[0].dir}); ` +
          'pass fit({ resume: true }) to continue it, or choose another runDir');
      }
    }
    if (o.runDir && this.dataParallel().isMain) {
      writeFileAtomic(join(o.runDir, 'config.json'), `${JSON.stringify(o.config ?? {}, null, 2)}\n`);
      this.metricsLog?.truncateTo(0);
    }
    if (o.seed !== undefined) defaultGenerator.manualSeed(o.seed);
    this.run.reset();
  }

  /** The config.json of a run directory. */
  static readConfig(runDir: string): unknown {
    return JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
  }
}

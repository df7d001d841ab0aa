// The Trainer without files: model, optimizer, data and run state; fit() starts a run fresh or from an in-memory
// checkpoint and drives the loop (loop.ts). The Node Trainer (trainer.ts) extends it with the run folder,
// Ctrl-C, the terminal bar and mpirun; the browser build uses it as it is. It knows nothing of GPTs.

import { autocast, defaultGenerator, type Tensor } from '../tensor/index.js';
import type { Optimizer } from '../optim/index.js';
import { type JSONValue, type TrainerState } from './checkpoint-state.js';
export type { MemoryCheckpoint } from './memory-checkpoint.js';
import { evaluateModel } from './evaluation.js';
import { computeLoss } from './loss.js';
import { runLoop, type MetricsSink } from './loop.js';
import { lrFind, type LrFindOptions, type LrFindResult } from './lr-find.js';
import {
  decodeMemoryCheckpoint, encodeMemoryCheckpoint, isMemoryCheckpoint, type MemoryCheckpoint,
} from './memory-checkpoint.js';
import {
  checkOptions, NonFiniteError, totalSteps,
  type BatchSource, type Batch, type EvalResult, type FitOptions, type FitResult, type StopReason, type TrainableModel,
  type TrainerOptions,
} from './options.js';
import { singleProcess, type ParallelWorld } from './parallel.js';
import { silentProgress, type ProgressMode, type ProgressSink } from './progress-sink.js';
import { RunState } from './run-state.js';

/**
 * Trains a model, keeping checkpoints in memory (the browser build's Trainer; in Node, `Trainer` adds a run folder).
 * ```ts
 * const trainer = new Trainer({ model, optimizer: new optim.AdamW(model.parameters(), { lr: 1e-3 }), train, maxSteps: 500 });
 * await trainer.fit();
 * const ck = trainer.checkpoint();       // weights, optimizer and data position, as bytes
 * await trainer.fit({ resume: ck });     // later: continues exactly where ck was taken
 * ```
 */
export class BaseTrainer<B = Batch> {
  readonly options: TrainerOptions<B>;
  readonly model: TrainableModel;
  readonly optimizer: Optimizer;
  readonly source: BatchSource<B>;
  /** @internal the run's counters; the loop and the Node Trainer use them */
  protected run = new RunState();
  /** @internal where metrics lines go besides onLog (metrics.jsonl in Node) */
  protected metricsLog: MetricsSink | null = null;

  constructor(options: TrainerOptions<B>) {
    checkOptions(options);
    if (options.runDir !== undefined && !this.hasRunFolder()) {
      throw new Error(`Trainer: runDir '${options.runDir}' needs a file system, which this build lacks; in a browser keep ` +
        'checkpoints in memory with trainer.checkpoint() and fit({ resume: checkpoint })');
    }
    this.options = options;
    this.model = options.model;
    this.optimizer = options.optimizer;
    this.source = options.train as BatchSource<B>;
  }

  /** Whether this trainer can write a run folder (the Node Trainer can). @internal */
  protected hasRunFolder(): boolean { return false; }

  /** The processes this trainer runs with: one here; several under mpirun with the Node Trainer. @internal */
  dataParallel(): ParallelWorld { return singleProcess; }

  /** Optimizer steps taken. */
  get step(): number { return this.run.step; }
/** Sets the step count (a callback may move it). */
  set step(v: number) { this.run.step = v; }
  /** Completed passes over the training data. */
  get epoch(): number { return this.run.epoch; }
/** Sets the epoch count. */
  set epoch(v: number) { this.run.epoch = v; }
  /** The lowest validation loss so far, or null before the first evaluation. */
  get bestValLoss(): number | null { return this.run.bestValLoss; }
/** Sets the best validation loss. */
  set bestValLoss(v: number | null) { this.run.bestValLoss = v; }
  /** The step of the lowest validation loss, or null. */
  get bestStep(): number | null { return this.run.bestStep; }
/** Sets the step of the best validation loss. */
  set bestStep(v: number | null) { this.run.bestStep = v; }

  /** Asks the loop to stop after the current step (from a callback, or from a message handler between steps). */
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

  /** Runs the loss on a batch: { loss, output?, target? }. */
  computeLoss(batch: B): { loss: Tensor; output?: Tensor; target?: Tensor } {
    return autocast(this.options.precision ?? 'float32', () => computeLoss(this.options, this.model, batch));
  }

  /**
   * Mean loss (weighted by batch size) and, when asked, accuracy over validation data, in eval mode without
   * gradients; the model's mode is restored after.
   */
  evaluate(data?: TrainerOptions<B>['validation']): EvalResult { return evaluateModel(this, data); }

  /**
   * Trains until epochs or maxSteps, early stopping or stop(). With resume (an in-memory checkpoint from
   * checkpoint(), or in Node a run folder), continues so the losses from the next step on are bitwise those of a
   * run never stopped.
   */
  async fit(fitOptions: FitOptions = {}): Promise<FitResult> {
    const o = this.options;
    const run = this.run;
    let resumedFrom: number | null = null;
    const dp = this.dataParallel();
    this.metricsLog = this.openMetrics();
    if (isMemoryCheckpoint(fitOptions.resume)) {
      resumedFrom = decodeMemoryCheckpoint(this, run, fitOptions.resume);
    } else if (fitOptions.resume) {
      resumedFrom = this.resumeFrom(fitOptions.resume, fitOptions);
    } else {
      this.startFresh();
    }
    dp.wrap(this.model);
    run.stopRequested = null;
    run.interrupted = false;
    const progress = this.makeProgress(dp.isMain ? o.progress ?? 'auto' : false, totalSteps(o));
    progress.start(run.step);
    run.startTime = performance.now();
    const removeSignals = (o.handleSignals ?? !!o.runDir) ? this.catchInterrupts(() => {
      run.interrupted = true;
      progress.message('interrupt: finishing the current step and writing a checkpoint (Ctrl-C again to quit at once)');
    }, dp.active) : () => {};
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
   * The run as it stands, in memory: weights and optimizer state as safetensors bytes, and the trainer state
   * (step, data position, RNG states). Pass it to fit({ resume }) of a trainer built the same way to continue,
   * or store it (IndexedDB, a download). Refuses non-finite weights.
   */
  checkpoint(): MemoryCheckpoint {
    const sd = this.model.stateDict();
    this.checkFinite(sd);
    return encodeMemoryCheckpoint(this.trainerState(sd), sd, this.optimizer.stateDict());
  }

  /** Writes a checkpoint to the run folder; the browser build has none and throws. */
  saveCheckpoint(): string {
    throw new Error('Trainer.saveCheckpoint: no runDir was given');
  }

  /** The newest checkpoint written, for error messages; null without a run folder. @internal */
  newestCheckpoint(): string | null { return this.run.lastCheckpoint; }

  /** Refuses to checkpoint a parameter that is not finite. @internal */
  protected checkFinite(sd: Record<string, Tensor>): void {
    const run = this.run;
    for (const [k, t] of Object.entries(sd)) {
      const s = t.storage;
      for (let i = 0; i < s.length; i++) {
        if (!Number.isFinite(s[i])) {
          throw new NonFiniteError(`Trainer: parameter '${k}' holds ${s[i]} at step ${run.step}; refusing to write a poisoned checkpoint. ` +
            `The last good checkpoint is '${run.lastCheckpoint ?? 'none'}'.`, run.step, run.lastCheckpoint);
        }
      }
    }
  }

  /** trainer_state.json's contents for the run as it stands (without the file records). @internal */
  protected trainerState(sd: Record<string, Tensor>): Omit<TrainerState, 'files' | 'format' | 'version'> {
    const o = this.options;
    const run = this.run;
    const rng: TrainerState['rng'] = { default: defaultGenerator.getState() };
    for (const [k, g] of Object.entries(o.generators ?? {})) rng[k] = g.getState();
    const modelShapes: Record<string, number[]> = {};
    for (const [k, t] of Object.entries(sd)) modelShapes[k] = [...t.shape];
    return {
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
      world_size: this.dataParallel().world,
    };
  }

  /** Where metrics lines are written besides onLog: nowhere here, metrics.jsonl in Node. @internal */
  protected openMetrics(): MetricsSink | null { return null; }

  /** Resumes from a run folder or checkpoint folder: only the Node Trainer can. @internal */
  protected resumeFrom(target: string | true, _fitOptions: FitOptions): number {
    throw new Error(`Trainer.fit: resume: ${JSON.stringify(target)} names a run folder, which this build cannot read; ` +
      'pass a checkpoint from trainer.checkpoint() instead');
  }

  /** A fresh fit: seeds the global generator and resets the run state. @internal */
  protected startFresh(): void {
    if (this.options.seed !== undefined) defaultGenerator.manualSeed(this.options.seed);
    this.run.reset();
  }

  /** The progress display: none here (callbacks report); a terminal bar in Node. @internal */
  protected makeProgress(_mode: ProgressMode, _total: number | undefined): ProgressSink { return silentProgress; }

  /** Installs interrupt handlers for one fit(); returns their removal. None here; Ctrl-C in Node. @internal */
  protected catchInterrupts(_first: () => void, _sigterm: boolean): () => void { return () => {}; }
}

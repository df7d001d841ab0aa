// The Trainer's options and results: what new Trainer() and fit() take, what callbacks receive and fit()
// returns, the error a non-finite step throws, and the few facts derived from the options alone.

import type { Tensor, Generator } from '../tensor/index.js';
import type { Module } from '../nn/index.js';
import { ReduceLROnPlateau, type Optimizer } from '../optim/index.js';
import { DataLoader } from '../data/dataloader.js';
import type { JSONValue } from './checkpoint-state.js';
import type { ProgressMode } from './progress-sink.js';
import type { BaseTrainer as Trainer } from './base-trainer.js';
import type { MemoryCheckpoint } from './memory-checkpoint.js';

/** A batch; DataLoaders over a TensorDataset give [input, target]. */
export type Batch = unknown;

/**
 * A source of training batches with a resumable position. next() returns undefined at the end of an epoch
 * (and the next call starts the following one); a source without epochs never returns undefined.
 */
export interface BatchSource<B = Batch> {
  /** The next batch, or undefined at the end of an epoch. */
  next(): B | undefined;
  /** The position, as JSON for a checkpoint. */
  state(): JSONValue | object;
  /** Continues from a position saved by state(). */
  restore(state: unknown): void;
}

/** A model the Trainer can drive: any Module (the built-in losses call its forward(input) and expect a Tensor). */
export type TrainableModel = Module;

/** What a loss function returns: the loss, or the loss with the output and target (for accuracy). */
export type LossResult = Tensor | { loss: Tensor; output?: Tensor; target?: Tensor };
/** A custom loss: computes the loss of the model on a batch. */
export type LossFn<B = Batch> = (model: TrainableModel, batch: B) => LossResult;

/** Early stopping on the validation loss. */
export interface EarlyStoppingOptions {
  /** Evaluations without improvement before stopping. */
  patience: number;
  /** The least decrease of validation loss that counts as an improvement (default 0). */
  minDelta?: number;
  /** Put the best weights back when training stops (default true). */
  restoreBest?: boolean;
}

/** When checkpoints are written and how many are kept. */
export interface CheckpointOptions {
  /** Write a checkpoint every N steps (default: at the end of each epoch, or only at the end without epochs). */
  every?: number;
  /** Keep the newest K checkpoints (default 3), plus the best one. */
  keepLast?: number;
  /** Also keep the checkpoint with the best validation loss, writing one when it improves (default true). */
  keepBest?: boolean;
}

/** A schedule the Trainer steps once per optimizer step and saves in checkpoints (optim.Scheduler, optim.OneCycle). */
export interface StepSchedule {
  /** Advances one optimizer step. */
  step(): void;
  /** The schedule's position, as JSON for a checkpoint. */
  stateDict(): unknown;
  /** Restores a position saved by stateDict(). */
  loadStateDict(sd: never): void;
}

/** What onStep receives after each optimizer step. */
export interface StepInfo {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  trainer: Trainer<any>;
}

/** What onEval receives after each evaluation. */
export interface EvalInfo {
  step: number;
  epoch: number;
  valLoss: number;
  accuracy?: number;
  improved: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  trainer: Trainer<any>;
}

/** The options of new Trainer(): model, optimizer, data, and how long and how to train. */
export interface TrainerOptions<B = Batch> {
  model: TrainableModel;
  optimizer: Optimizer;
  /**
   * A learning-rate scheduler: optim.Scheduler or optim.OneCycle, stepped once per optimizer step; or
   * optim.ReduceLROnPlateau, stepped with the validation loss after each evaluation (needs validation data).
   */
  schedule?: StepSchedule | ReduceLROnPlateau | null;
  /**
   * 'crossEntropy' (default) or 'mse' between model.forward(input) and target of an [input, target] or
   * { input, target } batch; or a function (model, batch) => loss | { loss, output, target }.
   */
  loss?: 'crossEntropy' | 'mse' | LossFn<B>;
  /**
   * Training batches: a DataLoader or any BatchSource. Under `mpirun -np N` it yields the global batch on every
   * rank, and each rank trains on its 1/N of the rows (kiln.distributed.shardBatch).
   */
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
  /**
   * Precision of the matrix products in the loss and its backward (kiln.autocast): 'float32' (default) or 'bf16'
   * (bfloat16 inputs, float32 accumulation; weights, gradients and optimizer state stay float32).
   */
  precision?: 'float32' | 'bf16';
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
  /** Called after each optimizer step. */
  onStep?: (info: StepInfo) => void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  /** Called at the end of each epoch. */
  onEpoch?: (info: { epoch: number; step: number; trainer: Trainer<any> }) => void;
  /** Every metrics line (step, loss, lr, tokens_per_s, val_loss, ...), as metrics.jsonl gets it. */
  onLog?: (record: Record<string, unknown>) => void;
  /** After each evaluation; returned fields are added to the metrics line (e.g. generated samples). */
  onEval?: (info: EvalInfo) => Record<string, JSONValue> | void;
}

/** Options of Trainer.fit(). */
export interface FitOptions {
  /**
   * Continue from the newest complete checkpoint of this run directory (or from this checkpoint folder); true:
   * runDir (Node). Or from a checkpoint in memory (trainer.checkpoint()), in Node and in browsers.
   */
  resume?: string | boolean | MemoryCheckpoint;
  /**
   * Resume a checkpoint written by a different number of processes (mpirun -np): the global batch then changes
   * with the world size. Without it such a resume is refused.
   */
  reshard?: boolean;
}

/** Why fit() returned: it ran its epochs/steps, early stopping, Ctrl-C, or stop() from a callback. */
export type StopReason = 'completed' | 'early-stopping' | 'interrupted' | 'stopped';

/** What fit() returns. */
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

/** What Trainer.evaluate() returns: the mean loss, the accuracy when asked for, and the samples seen. */
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

/** Checks the options of new Trainer(), failing with one sentence that names the bad option. */
export function checkOptions<B>(o: TrainerOptions<B>): void {
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
  if (o.precision !== undefined && o.precision !== 'float32' && o.precision !== 'bf16') {
    throw new Error(`Trainer: precision must be 'float32' or 'bf16', got '${String(o.precision)}'`);
  }
  if (o.clipGradNorm !== undefined && !(o.clipGradNorm > 0)) throw new Error(`Trainer: clipGradNorm must be positive, got ${o.clipGradNorm}`);
  if (o.earlyStopping) {
    posInt(o.earlyStopping.patience, 'earlyStopping.patience');
    if (!o.validation) throw new Error('Trainer: earlyStopping needs validation data');
  }
  if (o.schedule instanceof ReduceLROnPlateau && !o.validation) {
    throw new Error('Trainer: schedule is a ReduceLROnPlateau, which steps on the validation loss, but no validation data was given');
  }
  if (o.schedule instanceof ReduceLROnPlateau && o.schedule.mode !== 'min') {
    throw new Error(`Trainer: schedule is a ReduceLROnPlateau in mode '${o.schedule.mode}', but the Trainer steps it on the validation loss, where lower is better; use mode 'min'`);
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
}

/** Whether checkpoints are written: a runDir is given and checkpoints are not turned off. */
export function checkpointsOn<B>(o: TrainerOptions<B>): boolean { return !!o.runDir && o.checkpoints !== false; }

/** Optimizer steps the run will take, when the options fix it (epochs over a DataLoader, or maxSteps). */
export function totalSteps<B>(o: TrainerOptions<B>): number | undefined {
  let fromEpochs: number | undefined;
  if (o.epochs !== undefined && o.train instanceof DataLoader) {
    fromEpochs = o.epochs * Math.ceil(o.train.length / (o.gradAccumulation ?? 1));
  }
  if (o.maxSteps !== undefined && fromEpochs !== undefined) return Math.min(o.maxSteps, fromEpochs);
  return o.maxSteps ?? fromEpochs;
}

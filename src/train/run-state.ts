// The state of one training run: step and epoch, the best validation loss, early-stopping patience, time and
// samples so far, and what was last evaluated and saved. Reset by a fresh fit(), saved in and restored from a checkpoint.

import type { Tensor } from '../tensor/index.js';
import type { TrainerState } from './checkpoint.js';
import type { StopReason } from './options.js';

export class RunState {
  /** Optimizer steps taken. */
  step = 0;
  /** Completed passes over the training data. */
  epoch = 0;
  bestValLoss: number | null = null;
  bestStep: number | null = null;
  /** The step of the checkpoint kept as the best one (it survives pruning). */
  bestCheckpointStep: number | null = null;
  /** A copy of the best weights, for earlyStopping.restoreBest. */
  bestWeights: Record<string, Tensor> | null = null;
  /** Evaluations without improvement (early stopping). */
  wait = 0;
  /** Seconds trained before this fit() (from the checkpoint resumed). */
  elapsedBefore = 0;
  /** performance.now() when this fit() started its loop (0 before any fit). */
  startTime = 0;
  samplesSeen = 0;
  tokensSeen = 0;
  lastCheckpoint: string | null = null;
  lastCheckpointStep = -1;
  lastEvalStep = -1;
  lastValLoss: number | null = null;
  /** The step this fit() resumed from (for the remaining-time estimate). */
  resumedStep: number | null = null;
  // Per fit(): a stop asked for (stop(), early stopping), Ctrl-C seen, a checkpoint due after this step.
  stopRequested: StopReason | null = null;
  interrupted = false;
  saveDue = false;

  /** Seconds trained, across resumes. */
  elapsed(): number { return this.elapsedBefore + (performance.now() - this.startTime) / 1000; }

  /** Back to step 0, for a fresh fit(). */
  reset(): void {
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

  /** Takes the run state recorded in the checkpoint `dir` (best weights are the resume's business). */
  restore(s: TrainerState, dir: string): void {
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
  }
}

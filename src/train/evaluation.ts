// Evaluation: the mean validation loss (and accuracy) in eval mode without gradients, and what the loop makes of
// it: the best loss so far, early-stopping patience, a best checkpoint due, and the metrics fields; and the
// held-out loss of a language model over every token of a split (not a sample of batches).

import { noGrad, Tensor } from '../tensor/index.js';
import { DataLoader } from '../data/dataloader.js';
import { ReduceLROnPlateau } from '../optim/index.js';
import { countCorrect, type MetricsRecord } from './metrics-record.js';
import { checkpointsOn, type EvalResult, type TrainerOptions } from './options.js';
import { samplesIn } from './loss.js';
import type { RunState } from './run-state.js';
import type { BaseTrainer as Trainer } from './base-trainer.js';

function validationBatches<B>(data: TrainerOptions<B>['validation']): Iterable<B> {
  if (!data) throw new Error('Trainer.evaluate: no validation data was given');
  if (data instanceof DataLoader) return data.iterEpoch(0);
  if (typeof data === 'function') return data();
  if (Array.isArray(data)) return data;
  throw new Error('Trainer: validation must be a DataLoader, an array of batches or a function returning batches');
}

/**
 * Trainer.evaluate: weighted mean loss and, when asked, accuracy; the model's mode is restored after. Under several
 * ranks each takes every world-th batch and the sums are added over all ranks, so every rank gets the figures of
 * the whole validation data (every rank must call it).
 */
export function evaluateModel<B>(trainer: Trainer<B>, data = trainer.options.validation): EvalResult {
  const { model, options } = trainer;
  const wasTraining = model.training;
  model.eval();
  let sum = 0;
  let n = 0;
  let correct = 0;
  let total = 0;
  const wantAcc = options.metrics?.includes('accuracy') ?? false;
  const dp = trainer.dataParallel();
  try {
    noGrad(() => {
      let i = 0;
      for (const batch of validationBatches(data)) {
        if (i++ % dp.world !== dp.rank) continue;
        const { loss, output, target } = trainer.computeLoss(batch);
        const k = samplesIn(options, batch);
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
    model.train(wasTraining);
  }
  [sum, n, correct, total] = dp.sum([sum, n, correct, total]);
  if (n === 0) throw new Error('Trainer.evaluate: the validation data gave no batches');
  const out: EvalResult = { loss: sum / n, samples: n };
  if (wantAcc && total > 0) out.accuracy = correct / total;
  return out;
}

/** A language model as heldOutLoss needs it: `loss(x, y)` is the mean next-token loss of (B, T) int32 ids. */
export interface LanguageModel {
  /** The mean next-token loss of inputs x predicting targets y. */
  loss(x: Tensor, y: Tensor): Tensor;
  /** Switches to evaluation mode. */
  eval(): unknown;
  /** Switches to training mode (or evaluation with false). */
  train(mode?: boolean): unknown;
  readonly training: boolean;
}

/** Options for {@link heldOutLoss}. */
export interface HeldOutOptions {
  /** T: the longest window the model takes (its context). */
  context: number;
  /** Windows per forward pass (default 8). */
  batchSize?: number;
}

/** Result of {@link heldOutLoss}: the mean loss in nats per predicted token, and how many tokens were predicted. */
export interface HeldOutLoss { loss: number; tokens: number }

/**
 * The mean next-token loss over a whole held-out token stream: every token after the first is predicted exactly
 * once, from non-overlapping windows of up to `context` tokens (the last window is the shorter rest), so the
 * figure is comparable with an n-gram baseline scored on the same stream. Eval mode, no gradients; the model's
 * mode is restored after.
 *
 * @example
 * ```ts
 * const { loss, tokens } = kiln.train.heldOutLoss(gpt, valTokens, { context: gpt.config.context, batchSize: 16 });
 * ```
 */
export function heldOutLoss(model: LanguageModel, tokens: ArrayLike<number>, options: HeldOutOptions): HeldOutLoss {
  const T = options.context;
  const B = options.batchSize ?? 8;
  if (!Number.isInteger(T) || T < 1) throw new Error(`heldOutLoss context: expected a positive integer, found ${String(T)}`);
  if (!Number.isInteger(B) || B < 1) throw new Error(`heldOutLoss batchSize: expected a positive integer, found ${String(B)}`);
  const n = tokens.length;
  if (n < 2) throw new Error(`heldOutLoss tokens: expected at least 2 tokens (one to predict), found ${n}`);
  const full = Math.floor((n - 1) / T); // windows of T predicted tokens
  const rest = n - 1 - full * T; // predicted tokens in the last, shorter window
  const wasTraining = model.training;
  model.eval();
  let sum = 0; // float64: the sum over many windows must not lose the small ones
  try {
    noGrad(() => {
      for (let w0 = 0; w0 < full; w0 += B) {
        const rows = Math.min(B, full - w0);
        sum += windowLoss(model, tokens, w0 * T, rows, T) * rows * T;
      }
      if (rest > 0) sum += windowLoss(model, tokens, full * T, 1, rest) * rest;
    });
  } finally {
    model.train(wasTraining);
  }
  return { loss: sum / (n - 1), tokens: n - 1 };
}

/** The model's mean loss on `rows` consecutive windows of `len` predicted tokens starting at token `start`. */
function windowLoss(model: LanguageModel, tokens: ArrayLike<number>, start: number, rows: number, len: number): number {
  const x = new Int32Array(rows * len); // (rows, len)
  const y = new Int32Array(rows * len); // (rows, len)
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < len; t++) {
      const i = start + r * len + t;
      x[r * len + t] = tokens[i]!;
      y[r * len + t] = tokens[i + 1]!;
    }
  }
  return model.loss(new Tensor(x, [rows, len]), new Tensor(y, [rows, len])).item();
}

function cloneState(sd: Record<string, Tensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(sd)) out[k] = new Tensor(t.storage.slice(), t.shape);
  return out;
}

/** Runs an evaluation, updates the best loss and early stopping in `run`, and returns the metrics fields. */
export function recordEvaluation<B>(trainer: Trainer<B>, run: RunState): MetricsRecord {
  const o = trainer.options;
  const r = trainer.evaluate();
  run.lastEvalStep = run.step;
  run.lastValLoss = r.loss;
  if (o.schedule instanceof ReduceLROnPlateau) o.schedule.step(r.loss);
  const minDelta = o.earlyStopping?.minDelta ?? 0;
  const improved = run.bestValLoss === null || r.loss < run.bestValLoss - minDelta;
  if (improved) {
    run.bestValLoss = r.loss;
    run.bestStep = run.step;
    run.wait = 0;
    if (o.earlyStopping && (o.earlyStopping.restoreBest ?? true)) run.bestWeights = cloneState(trainer.model.stateDict());
  } else {
    run.wait++;
  }
  const rec: MetricsRecord = { val_loss: r.loss };
  if (r.accuracy !== undefined) rec.val_accuracy = r.accuracy;
  rec.best_val_loss = run.bestValLoss;
  rec.best_step = run.bestStep;
  const extra = o.onEval?.({ step: run.step, epoch: run.epoch, valLoss: r.loss, accuracy: r.accuracy, improved, trainer });
  if (extra) Object.assign(rec, extra);
  if (improved && checkpointsOn(o) && !(o.checkpoints && o.checkpoints.keepBest === false)) {
    // Saved by the caller once this evaluation's metrics line is written, so the checkpoint's log length includes it.
    run.bestCheckpointStep = run.step;
    run.saveDue = true;
  }
  if (o.earlyStopping && run.wait >= o.earlyStopping.patience) {
    run.stopRequested = 'early-stopping';
    rec.early_stop = true;
  }
  return rec;
}

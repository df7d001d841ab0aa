// The training loop of fit(): each optimizer step over gradAccumulation micro-batches (forward, loss, backward,
// clip, step, schedule), non-finite guards, metrics lines, evaluations and checkpoints when due, epoch ends.

import { clipGradNorm, gradNorm, ReduceLROnPlateau } from '../optim/index.js';
import { DataLoader } from '../data/dataloader.js';
import { recordEvaluation } from './evaluation.js';
import { samplesIn, tokensIn } from './loss.js';
import { countCorrect, type MetricsRecord } from './metrics-record.js';
import { checkpointsOn, NonFiniteError, totalSteps, type StopReason } from './options.js';
import type { ProgressSink } from './progress-sink.js';
import type { RunState } from './run-state.js';
import type { BaseTrainer as Trainer } from './base-trainer.js';

/** Where metrics lines are kept (metrics.jsonl in Node): appended to, and its length recorded in checkpoints. */
export interface MetricsSink { append(record: MetricsRecord): void; bytes(): number }

/** What one fit() runs with, besides the trainer itself. */
export interface FitContext { run: RunState; metricsLog: MetricsSink | null; progress: ProgressSink }

/** Lets other work run between steps (signal handlers in Node, a worker's messages in a browser). */
const yieldToHost: () => Promise<void> = typeof setImmediate === 'function'
  ? () => new Promise<void>((r) => setImmediate(r))
  : () => new Promise<void>((r) => {
    // A message round trip is a macrotask without setTimeout's 4 ms clamp.
    const ch = new MessageChannel();
    ch.port1.onmessage = () => { ch.port1.close(); r(); };
    ch.port2.postMessage(0);
  });

function done<B>(trainer: Trainer<B>, run: RunState): boolean {
  const o = trainer.options;
  return (o.maxSteps !== undefined && run.step >= o.maxSteps) || (o.epochs !== undefined && run.epoch >= o.epochs);
}

/** Appends a metrics line (with elapsed and remaining time) and shows it. */
function emit<B>(trainer: Trainer<B>, ctx: FitContext, rec: MetricsRecord): void {
  const { run } = ctx;
  rec.elapsed_s = run.elapsed();
  const total = totalSteps(trainer.options);
  if (total !== undefined && run.step > 0) {
    const stepsDone = run.step - (run.resumedStep ?? 0);
    const rate = stepsDone > 0 ? (performance.now() - run.startTime) / 1000 / stepsDone : NaN;
    rec.remaining_s = Number.isFinite(rate) ? Math.max(0, (total - run.step) * rate) : null;
  }
  ctx.metricsLog?.append(rec);
  ctx.progress.log(rec);
  trainer.options.onLog?.(rec);
}

function evalRecord<B>(trainer: Trainer<B>, run: RunState): MetricsRecord {
  return { step: run.step, epoch: run.epoch, ...recordEvaluation(trainer, run) };
}

function saveIfDue<B>(trainer: Trainer<B>, run: RunState): void {
  if (run.saveDue && checkpointsOn(trainer.options) && run.lastCheckpointStep !== run.step) trainer.saveCheckpoint();
  run.saveDue = false;
}

/** A non-finite loss or gradient: skipped with a message (skipNonFinite), else a NonFiniteError naming the step. */
function nonFinite<B>(trainer: Trainer<B>, ctx: FitContext, what: string): void {
  const o = trainer.options;
  const step = ctx.run.step + 1;
  if (o.skipNonFinite) {
    ctx.progress.message(`step ${step}: ${what}; skipping the batch (skipNonFinite)`);
    return;
  }
  const ckpt = ctx.run.lastCheckpoint ?? trainer.newestCheckpoint();
  throw new NonFiniteError(`Trainer: ${what} at step ${step}; training stopped. ` +
    (ckpt ? `The last good checkpoint is '${ckpt}' (resume with fit({ resume })).` : 'There is no checkpoint to go back to.') +
    ' Lower the learning rate, clip gradients (clipGradNorm), or set skipNonFinite to skip such batches.', step, ckpt);
}

/** Under several ranks, an interrupt or stop() seen by any rank stops them all after the same step. */
function agreeOnStopping<B>(trainer: Trainer<B>, run: RunState): void {
  const [interrupted, stopped] = trainer.dataParallel().sum([run.interrupted ? 1 : 0, run.stopRequested ? 1 : 0]);
  if (interrupted > 0) run.interrupted = true;
  if (stopped > 0 && !run.stopRequested) run.stopRequested = 'stopped';
}

/** Trains until done, stopped or interrupted, then evaluates and checkpoints a last time; returns why it stopped. */
export async function runLoop<B>(trainer: Trainer<B>, ctx: FitContext): Promise<StopReason> {
  const { options: o, optimizer, source } = trainer;
  const { run, progress } = ctx;
  const dp = trainer.dataParallel();
  const accum = o.gradAccumulation ?? 1;
  const logEvery = o.logEvery ?? 10;
  const params = optimizer.params();
  const wantAcc = o.metrics?.includes('accuracy') ?? false;
  let interval = { loss: 0, count: 0, samples: 0, tokens: 0, t0: performance.now(), correct: 0, total: 0 };
  let stopReason: StopReason = 'completed';
  while (!done(trainer, run)) {
    if (run.stopRequested) break;
    // ---- one optimizer step over `accum` micro-batches ----
    optimizer.zeroGrad();
    let micro = 0;
    let lossSum = 0;
    let samples = 0;
    let tokens = 0;
    let epochEnded = false;
    let skipped = false;
    let badLoss: number | null = null;
    let correct = 0;
    let total = 0;
    while (micro < accum) {
      const global = source.next();
      if (global === undefined) { epochEnded = true; break; }
      // Counted on the global batch, so samples and tokens are the whole world's.
      samples += samplesIn(o, global);
      tokens += tokensIn(o, global);
      micro++;
      // Under several ranks a rank with a bad loss still reads the step's batches, so the data order stays shared.
      if (badLoss !== null) continue;
      const batch = dp.shard(global);
      const lv = dp.microStep(micro === accum, () => {
        const { loss, output, target } = trainer.computeLoss(batch);
        const v = loss.item();
        if (!Number.isFinite(v)) return v;
        (accum > 1 ? loss.div(accum) : loss).backward();
        if (wantAcc && output && target) {
          const c = countCorrect(output, target);
          correct += c.correct;
          total += c.total;
        }
        return v;
      });
      if (!Number.isFinite(lv)) {
        badLoss = lv;
        if (!dp.active) break;
        continue;
      }
      lossSum += lv;
    }
    if (dp.active) {
      // One agreement per step: the averaged gradients, then the losses and whether any rank saw a bad one.
      if (micro > 0) dp.finishGradientSync();
      const [l, bad, c, n] = dp.sum([badLoss === null ? lossSum : 0, badLoss === null ? 0 : 1, correct, total]);
      lossSum = l / dp.world;
      correct = c;
      total = n;
      if (bad > 0) {
        nonFinite(trainer, ctx, `the loss is not finite on ${bad} of ${dp.world} ranks${badLoss === null ? '' : ` (${badLoss} on this one)`}`);
        skipped = true;
      }
    } else if (badLoss !== null) {
      nonFinite(trainer, ctx, `the loss is ${badLoss}`);
      skipped = true;
    }
    if (!skipped) {
      interval.correct += correct;
      interval.total += total;
    }
    if (!skipped && micro > 0) {
      if (micro < accum) {
        // A short final accumulation (epoch end): rescale so the gradient is the mean over the micro-batches taken.
        const f = accum / micro;
        for (const p of params) if (p.grad) { const s = p.grad.storage; for (let i = 0; i < s.length; i++) s[i] *= f; }
      }
      const norm = o.clipGradNorm !== undefined ? clipGradNorm(params, o.clipGradNorm) : gradNorm(params.map((p) => p.grad));
      if (!Number.isFinite(norm)) {
        nonFinite(trainer, ctx, `the gradient norm is ${norm}`);
        skipped = true;
      } else {
        const lr = trainer.lr;
        optimizer.step();
        // A plateau schedule steps on the validation loss, in recordEvaluation.
        if (o.schedule && !(o.schedule instanceof ReduceLROnPlateau)) o.schedule.step();
        run.step++;
        run.samplesSeen += samples;
        run.tokensSeen += tokens;
        const loss = lossSum / micro;
        interval.loss += loss;
        interval.count++;
        interval.samples += samples;
        interval.tokens += tokens;
        const evalNow = !!o.validation && o.evalEvery !== undefined && run.step % o.evalEvery === 0;
        if (run.step % logEvery === 0 || evalNow || done(trainer, run)) {
          const secs = (performance.now() - interval.t0) / 1000;
          const rec: MetricsRecord = { step: run.step, epoch: run.epoch, loss: interval.loss / interval.count, lr, grad_norm: norm };
          if (interval.total > 0) rec.accuracy = interval.correct / interval.total;
          if (o.tokensPerBatch !== undefined) rec.tokens_per_s = secs > 0 ? interval.tokens / secs : null;
          else rec.samples_per_s = secs > 0 ? interval.samples / secs : null;
          if (evalNow) Object.assign(rec, recordEvaluation(trainer, run));
          emit(trainer, ctx, rec);
          interval = { loss: 0, count: 0, samples: 0, tokens: 0, t0: performance.now(), correct: 0, total: 0 };
        }
        o.onStep?.({ step: run.step, epoch: run.epoch, loss, lr, gradNorm: norm, trainer });
        const every = o.checkpoints ? o.checkpoints.every : undefined;
        if (every !== undefined && run.step % every === 0) run.saveDue = true;
        saveIfDue(trainer, run);
      }
    }
    if (skipped) optimizer.zeroGrad();
    if (epochEnded) {
      run.epoch++;
      if (o.validation && o.evalEvery === undefined && run.lastEvalStep !== run.step) emit(trainer, ctx, evalRecord(trainer, run));
      o.onEpoch?.({ epoch: run.epoch, step: run.step, trainer });
      const every = o.checkpoints ? o.checkpoints.every : undefined;
      if (every === undefined) run.saveDue = true;
      saveIfDue(trainer, run);
      if (micro === 0 && source instanceof DataLoader && source.length === 0) {
        throw new Error('Trainer: the training DataLoader has no batches (dataset smaller than batchSize with dropLast?)');
      }
    }
    // Let signal handlers (or a worker's stop message) run between steps.
    await yieldToHost();
    if (dp.active) agreeOnStopping(trainer, run);
    if (run.interrupted) { stopReason = 'interrupted'; break; }
  }
  if (run.stopRequested && stopReason === 'completed') stopReason = run.stopRequested;
  // ---- the end: a last evaluation and checkpoint ----
  if (o.validation && run.lastEvalStep !== run.step && stopReason !== 'interrupted') emit(trainer, ctx, evalRecord(trainer, run));
  if (checkpointsOn(o) && run.lastCheckpointStep !== run.step) trainer.saveCheckpoint();
  if (stopReason === 'interrupted') progress.message(`interrupted: checkpoint written at step ${run.step} (${run.lastCheckpoint})`);
  if (o.earlyStopping && (o.earlyStopping.restoreBest ?? true) && run.bestWeights && run.bestStep !== run.step) {
    trainer.model.loadStateDict(run.bestWeights);
  }
  return stopReason;
}

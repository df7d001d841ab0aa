// The Trainer in Node: the file-free trainer (base-trainer.ts) plus the run folder (config.json, metrics.jsonl,
// checkpoints/step-N with exact resume), Ctrl-C handling (signals.ts), the terminal bar and mpirun (data-parallel.ts).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDirs, writeFileAtomic } from '../io/atomic.js';
import { BaseTrainer } from './base-trainer.js';
import { checkpointsDir, listCheckpoints, pruneCheckpoints, writeCheckpoint, type JSONValue } from './checkpoint.js';
import { DataParallel } from './data-parallel.js';
import type { MetricsSink } from './loop.js';
import { MetricsLog } from './metrics.js';
import { checkpointsOn, type Batch, type FitOptions } from './options.js';
import { Progress } from './progress.js';
import type { ProgressMode, ProgressSink } from './progress-sink.js';
import { resumeRun } from './resume.js';
import { catchInterrupts } from './signals.js';

export type { JSONValue };
export type { MemoryCheckpoint } from './memory-checkpoint.js';
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
export class Trainer<B = Batch> extends BaseTrainer<B> {
  private parallel: DataParallel | null = null;

  protected override hasRunFolder(): boolean { return true; }

  /**
   * The process group this trainer runs in (joined on first use). Under `mpirun -np N` the model is wrapped for
   * data-parallel training and each rank trains on its slice of every batch the training source yields.
   * @internal the loop and evaluation use it
   */
  override dataParallel(): DataParallel {
    this.parallel ??= new DataParallel();
    return this.parallel;
  }

  /**
   * Writes checkpoints/step-N now (after a finite-check of every parameter) and prunes old ones. Under several
   * ranks every rank calls it: rank 0 writes, and all wait for it, so no rank runs ahead of a checkpoint.
   */
  override saveCheckpoint(): string {
    if (!this.options.runDir) return super.saveCheckpoint();
    const run = this.run;
    const sd = this.model.stateDict();
    this.checkFinite(sd);
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
    const dir = writeCheckpoint(checkpointsDir(o), this.trainerState(sd), sd, this.optimizer.stateDict());
    run.lastCheckpoint = dir;
    run.lastCheckpointStep = run.step;
    const keep = new Set<number>();
    if (run.bestCheckpointStep !== null) keep.add(run.bestCheckpointStep);
    pruneCheckpoints(checkpointsDir(o), (o.checkpoints && o.checkpoints.keepLast) || 3, keep);
    dp.barrier();
    return dir;
  }

  /** @internal */
  override newestCheckpoint(): string | null {
    const o = this.options;
    return this.run.lastCheckpoint ?? (checkpointsOn(o) ? listCheckpoints(checkpointsDir(o))[0]?.dir ?? null : null);
  }

  /** Only rank 0 writes the run folder (metrics, config, checkpoints) and shows progress; the others are quiet. @internal */
  protected override openMetrics(): MetricsSink | null {
    const o = this.options;
    const main = this.dataParallel().isMain;
    if (o.runDir && main) makeDirs(o.runDir, 'run folder');
    return o.runDir && main ? new MetricsLog(join(o.runDir, 'metrics.jsonl')) : null;
  }

  /** @internal */
  protected override resumeFrom(resume: string | true, fitOptions: FitOptions): number {
    const target = resume === true ? this.options.runDir : resume;
    if (!target) throw new Error('Trainer.fit: resume: true needs a runDir');
    return resumeRun(this, this.run, this.metricsLog as MetricsLog | null, target,
      { worldSize: this.dataParallel().world, reshard: fitOptions.reshard });
  }

  /** A fresh fit: refuses a run directory that already holds checkpoints, writes config.json, resets the run state. @internal */
  protected override startFresh(): void {
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
      (this.metricsLog as MetricsLog | null)?.truncateTo(0);
    }
    super.startFresh();
  }

  /** @internal */
  protected override makeProgress(mode: ProgressMode, total: number | undefined): ProgressSink { return new Progress(mode, total); }

  /** @internal */
  protected override catchInterrupts(first: () => void, sigterm: boolean): () => void { return catchInterrupts(first, { sigterm }); }

  /** The config.json of a run directory. */
  static readConfig(runDir: string): unknown {
    return JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
  }
}

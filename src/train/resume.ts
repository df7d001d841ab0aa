// Exact resume: find the checkpoint to continue from, check that it fits this model and config, then restore
// all it holds (weights, optimizer, schedule, data position, every RNG, the run state, the metrics log length).

import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { checkpointsDir, cleanStaleCheckpointTemps, listCheckpoints, readCheckpoint, readTrainerState, STATE_FILE } from './checkpoint.js';
import type { MetricsLog } from './metrics.js';
import { restoreCheckpoint } from './restore.js';
import type { RunState } from './run-state.js';
import type { BaseTrainer } from './base-trainer.js';
import { checkWorldSize } from './data-parallel.js';

/** The checkpoint folder to resume from: `target` itself, or the newest complete one under target/checkpoints. */
export function findCheckpoint(target: string): string {
  if (existsSync(join(target, STATE_FILE))) return target;
  const ckDir = join(target, 'checkpoints');
  if (!existsSync(target)) throw new Error(`Trainer.fit: cannot resume: '${target}' does not exist`);
  cleanStaleCheckpointTemps(ckDir);
  const list = listCheckpoints(ckDir);
  checkNewestIntact(ckDir, list[0]?.step ?? -1);
  if (list.length === 0) throw new Error(`Trainer.fit: cannot resume: '${resolve(ckDir)}' holds no complete checkpoint`);
  return list[0].dir;
}

/**
 * A newer step-N folder whose trainer_state.json is there but does not parse (or is not a trainer state) was
 * damaged after it was written. Resuming from an older step without a word would silently throw training away:
 * refuse, naming the damage and the older step the user may choose. (A folder without trainer_state.json never
 * finished, say an interrupted copy, and is skipped as before.)
 */
function checkNewestIntact(ckDir: string, intactStep: number): void {
  const newer = existsSync(ckDir) ? readdirSync(ckDir).map((n) => /^step-(\d+)$/.exec(n)).filter((m): m is RegExpExecArray => m !== null)
    .filter((m) => existsSync(join(ckDir, m[0], STATE_FILE)))
    .map((m) => Number(m[1])).filter((step) => step > intactStep).sort((a, b) => b - a) : [];
  if (newer.length === 0) return;
  const dir = join(resolve(ckDir), `step-${newer[0]}`);
  let reason = 'a weights file is missing beside its trainer_state.json';
  try {
    readTrainerState(dir);
  } catch (err) {
    reason = (err as Error).message;
  }
  throw new Error(`Trainer.fit: cannot resume: the newest checkpoint '${dir}' is damaged (${reason}). ` +
    (intactStep >= 0 ? `The newest intact checkpoint is step ${intactStep}; move '${dir}' out of the checkpoints folder to resume from step ${intactStep}.`
      : 'No intact checkpoint remains.'));
}

/** Loads the newest complete checkpoint of a run directory (or a given checkpoint folder); returns its step. */
export function resumeRun<B>(trainer: BaseTrainer<B>, run: RunState, metricsLog: MetricsLog | null, target: string,
  world: { worldSize?: number; reshard?: boolean } = {}): number {
  const o = trainer.options;
  const dir = findCheckpoint(target);
  const ck = readCheckpoint(dir);
  const s = ck.state;
  checkWorldSize(join(dir, STATE_FILE), s.world_size ?? 1, world.worldSize ?? 1, world.reshard ?? false);
  restoreCheckpoint(trainer, run, ck, {
    state: join(dir, STATE_FILE), model: join(dir, 'model.safetensors'), optimizer: join(dir, 'optimizer.safetensors'), label: dir,
  });
  if (o.earlyStopping && (o.earlyStopping.restoreBest ?? true) && s.best_checkpoint_step !== null) {
    const bestDir = join(checkpointsDir(o), `step-${s.best_checkpoint_step}`);
    if (existsSync(join(bestDir, STATE_FILE))) run.bestWeights = readCheckpoint(bestDir).model;
  }
  if (metricsLog) metricsLog.truncateTo(s.metrics_bytes);
  if (o.runDir && !existsSync(join(o.runDir, 'config.json'))) {
    writeFileAtomic(join(o.runDir, 'config.json'), `${JSON.stringify(o.config ?? {}, null, 2)}\n`);
  }
  return s.step;
}

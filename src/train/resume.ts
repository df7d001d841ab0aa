// Exact resume: find the checkpoint to continue from, check that it fits this model and config, then restore
// all it holds (weights, optimizer, schedule, data position, every RNG, the run state, the metrics log length).

import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { defaultGenerator } from '../tensor/index.js';
import type { Optimizer } from '../optim/index.js';
import { writeFileAtomic } from '../io/atomic.js';
import { checkModelMatches, cleanStaleCheckpointTemps, listCheckpoints, readCheckpoint, readTrainerState, STATE_FILE } from './checkpoint.js';
import type { MetricsLog } from './metrics.js';
import { checkpointsDir } from './options.js';
import type { RunState } from './run-state.js';
import type { Trainer } from './trainer.js';
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
export function resumeRun<B>(trainer: Trainer<B>, run: RunState, metricsLog: MetricsLog | null, target: string,
  world: { worldSize?: number; reshard?: boolean } = {}): number {
  const { options: o, model, optimizer, source } = trainer;
  const dir = findCheckpoint(target);
  const ck = readCheckpoint(dir);
  const s = ck.state;
  checkWorldSize(join(dir, STATE_FILE), s.world_size ?? 1, world.worldSize ?? 1, world.reshard ?? false);
  checkModelMatches(join(dir, 'model.safetensors'), ck.model, model.stateDict());
  const savedModel = (s.config as Record<string, unknown> | null)?.model;
  const ownModel = o.config?.model;
  if (savedModel !== undefined && ownModel !== undefined && JSON.stringify(savedModel) !== JSON.stringify(ownModel)) {
    throw new Error(`checkpoint '${join(dir, STATE_FILE)}' was written for a different model configuration: ` +
      `config.model there is ${JSON.stringify(savedModel)}, here ${JSON.stringify(ownModel)}`);
  }
  // Everything checked; now restore.
  model.loadStateDict(ck.model);
  // The optimizer as built now keeps its hyperparameters (lr, weight decay, betas): a resumed run may change
  // them, and the schedule re-derives each step's lr from initialLr below. Only the moments come from the file.
  const chosen = optimizer.paramGroups.map(({ params: _params, ...hyper }) => hyper);
  try {
    optimizer.loadStateDict(ck.optimizer as Parameters<Optimizer['loadStateDict']>[0]);
  } catch (err) {
    throw new Error(`checkpoint file '${join(dir, 'optimizer.safetensors')}' does not fit this optimizer: ${(err as Error).message}`);
  }
  optimizer.paramGroups.forEach((g, i) => Object.assign(g, chosen[i]));
  if (o.schedule && s.schedule !== null) (o.schedule.loadStateDict as (sd: unknown) => void)(s.schedule);
  try {
    source.restore(s.data);
  } catch (err) {
    throw new Error(`checkpoint '${join(dir, STATE_FILE)}' does not fit the training data: ${(err as Error).message}`);
  }
  defaultGenerator.setState(s.rng.default);
  for (const [k, g] of Object.entries(o.generators ?? {})) {
    if (!s.rng[k]) throw new Error(`checkpoint '${join(dir, STATE_FILE)}' has no state for the generator '${k}'`);
    g.setState(s.rng[k]);
  }
  run.restore(s, dir);
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

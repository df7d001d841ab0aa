// Putting a checkpoint back: check that it fits this model, config and data, then restore everything it holds
// (weights, optimizer moments, schedule, data position, every RNG, the run state). Shared by the Node resume from
// checkpoints/step-N (resume.ts) and the in-memory checkpoints of the browser build (memory-checkpoint.ts).

import { defaultGenerator, type Tensor } from '../tensor/index.js';
import type { Optimizer } from '../optim/index.js';
import { checkModelMatches, type TrainerState } from './checkpoint-state.js';
import type { RunState } from './run-state.js';
import type { BaseTrainer } from './base-trainer.js';

/** A checkpoint's contents, decoded. */
export interface CheckpointContents { state: TrainerState; model: Record<string, Tensor>; optimizer: unknown }

/** What the error messages call the checkpoint's parts (file paths in Node), and its label in the run state. */
export interface CheckpointNames { state: string; model: string; optimizer: string; label: string }

/** Checks the checkpoint against the trainer, then restores it; returns its step. */
export function restoreCheckpoint<B>(trainer: BaseTrainer<B>, run: RunState, ck: CheckpointContents, names: CheckpointNames): number {
  const { options: o, model, optimizer, source } = trainer;
  const s = ck.state;
  checkModelMatches(names.model, ck.model, model.stateDict());
  const savedModel = (s.config as Record<string, unknown> | null)?.model;
  const ownModel = o.config?.model;
  if (savedModel !== undefined && ownModel !== undefined && JSON.stringify(savedModel) !== JSON.stringify(ownModel)) {
    throw new Error(`checkpoint '${names.state}' was written for a different model configuration: ` +
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
    throw new Error(`checkpoint file '${names.optimizer}' does not fit this optimizer: ${(err as Error).message}`);
  }
  optimizer.paramGroups.forEach((g, i) => Object.assign(g, chosen[i]));
  if (o.schedule && s.schedule !== null) (o.schedule.loadStateDict as (sd: unknown) => void)(s.schedule);
  try {
    source.restore(s.data);
  } catch (err) {
    throw new Error(`checkpoint '${names.state}' does not fit the training data: ${(err as Error).message}`);
  }
  defaultGenerator.setState(s.rng.default);
  for (const [k, g] of Object.entries(o.generators ?? {})) {
    if (!s.rng[k]) throw new Error(`checkpoint '${names.state}' has no state for the generator '${k}'`);
    g.setState(s.rng[k]);
  }
  run.restore(s, names.label);
  return s.step;
}

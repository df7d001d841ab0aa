// Divergence in the recipes: a loss that grows far past where it started stops the run (before that step's
// checkpoint is written, so the newest checkpoint on disk is still a good one), and a diverged or non-finite run
// ends in one message that names the last good checkpoint and the command-line flags that continue from it.

import { join } from 'node:path';
import { listCheckpoints, NonFiniteError, type StepInfo } from '../train/index.js';

/** Thrown from onStep when the training loss has run away (finite, but far above where it started). */
export class DivergenceError extends Error {
  constructor(message: string, readonly step: number, readonly loss: number) {
    super(message);
    this.name = 'DivergenceError';
  }
}

/**
 * The loss above which a run counts as diverged: four times the first step's loss, and never below twice the
 * loss of a uniform guess over the vocabulary (ln V), which no training run that learns anything comes back from.
 */
export function divergenceLimit(firstLoss: number, vocabSize: number): number {
  return Math.max(4 * firstLoss, 2 * Math.log(Math.max(2, vocabSize)));
}

/** An onStep hook that throws DivergenceError when a step's loss passes divergenceLimit. */
export function divergenceGuard(vocabSize: number): (info: StepInfo) => void {
  let limit: number | null = null;
  return (info) => {
    if (!Number.isFinite(info.loss)) return; // the Trainer stops non-finite losses itself
    if (limit === null) limit = divergenceLimit(info.loss, vocabSize);
    else if (info.loss > limit) {
      throw new DivergenceError(`the loss reached ${info.loss.toPrecision(3)} at step ${info.step}, past ${limit.toPrecision(3)}`, info.step, info.loss);
    }
  };
}

/**
 * Turns a divergence or non-finite loss into a message for the command line: what happened, the newest
 * checkpoint (written before it, so good), and the flags to continue at a lower rate. Other errors pass through.
 * `resumeCommand(lr)` gives the command to suggest.
 */
export function explainDivergence(err: unknown, runDir: string, lr: number, resumeCommand: (lr: number) => string): unknown {
  if (!(err instanceof DivergenceError) && !(err instanceof NonFiniteError)) return err;
  const what = err instanceof DivergenceError ? err.message : err.message.split(';')[0].replace(/^Trainer: /, '');
  const good = listCheckpoints(join(runDir, 'checkpoints'))[0] ?? null;
  const lower = Number((lr / 10).toPrecision(2));
  const next = good
    ? `The last good checkpoint is '${good.dir}' (step ${good.step}). Continue from it at a lower learning rate: ${resumeCommand(lower)}`
    : `No checkpoint was written before it; start again with a lower --lr (e.g. ${lower}).`;
  return new Error(`training diverged: ${what}; training stopped and nothing was overwritten. ${next}`);
}

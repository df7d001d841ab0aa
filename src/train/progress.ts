// Terminal progress: a live bar (cli-progress) with the current figures when stdout is a terminal, one
// plain line per log interval when it is not (logs, CI, pipes).

import cliProgress from 'cli-progress';
import { formatLine, type ProgressMode, type ProgressSink } from './progress-sink.js';

export { formatLine, type ProgressMode, type ProgressSink };

/** The terminal progress of a Node fit(): a live bar, or one line per log interval. */
export class Progress implements ProgressSink {
  private bar: cliProgress.SingleBar | null = null;
  private readonly mode: 'bar' | 'lines' | 'off';
  private lastStep = 0;
  private latest: Record<string, unknown> = {};

  constructor(mode: ProgressMode, private totalSteps?: number) {
    const resolved = mode === 'auto' ? (process.stdout.isTTY ? 'bar' : 'lines') : mode === false ? 'off' : mode;
    this.mode = resolved;
  }

  /** Starts the display at a step. */
  start(step: number): void {
    if (this.mode !== 'bar') return;
    this.bar = new cliProgress.SingleBar({
      format: '{bar} {value}/{total} | {figures}',
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
    }, cliProgress.Presets.shades_classic);
    this.lastStep = step;
    this.bar.start(this.totalSteps ?? 0, step, { figures: '' });
  }

  /** A logged interval: a bar update on a terminal, a printed line otherwise. */
  log(record: Record<string, unknown>): void {
    if (this.mode === 'lines') process.stdout.write(`${formatLine(record, this.totalSteps)}\n`);
    else if (this.bar) {
      // Keep the last training figures on screen when an evaluation-only record arrives.
      this.latest = { ...this.latest, ...record };
      this.lastStep = Number(record.step);
      this.bar.update(this.lastStep, { figures: formatLine(this.latest).replace(/^step \S+\s+/, '') });
    }
  }

  /** A message that should not be overwritten by the bar. */
  message(text: string): void {
    if (this.mode === 'off') return;
    if (this.bar) {
      this.bar.stop();
      process.stdout.write(`${text}\n`);
      this.bar = null;
      this.start(this.lastStep);
    } else process.stdout.write(`${text}\n`);
  }

  /** Ends the display. */
  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}

// Terminal progress: a live bar (cli-progress) with the current figures when stdout is a terminal, one
// plain line per log interval when it is not (logs, CI, pipes).

import cliProgress from 'cli-progress';

/** 'auto': a bar on a terminal, lines otherwise; 'bar'; 'lines': one line per log interval; false: silent. */
export type ProgressMode = 'auto' | 'bar' | 'lines' | false;

function fmtNum(v: unknown): string {
  if (typeof v !== 'number') return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 0.01 ? v.toPrecision(4) : v.toExponential(2);
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** One human line from a metrics record. */
export function formatLine(r: Record<string, unknown>, totalSteps?: number): string {
  const parts = [`step ${r.step}${totalSteps ? `/${totalSteps}` : ''}`, `epoch ${r.epoch}`];
  for (const key of ['loss', 'accuracy', 'val_loss', 'val_accuracy', 'lr', 'grad_norm', 'samples_per_s', 'tokens_per_s']) {
    if (r[key] !== undefined && r[key] !== null) parts.push(`${key} ${fmtNum(r[key])}`);
  }
  if (typeof r.elapsed_s === 'number') parts.push(`elapsed ${fmtTime(r.elapsed_s)}`);
  if (typeof r.remaining_s === 'number') parts.push(`eta ${fmtTime(r.remaining_s)}`);
  return parts.join('  ');
}

/** The Trainer's terminal progress display (a live bar or plain lines). */
export class Progress {
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

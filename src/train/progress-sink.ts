// What fit() tells about its progress, and the one-line format of a metrics record. The Node Trainer draws a
// terminal bar (progress.ts); the browser Trainer is silent and reports through callbacks (onStep, onLog, onEval).

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

/** Where fit() sends its progress: a terminal bar in Node, nothing in a browser. */
export interface ProgressSink {
  /** Called when fit() starts, with the step it starts from. */
  start(step: number): void;
  /** A logged interval's metrics record. */
  log(record: Record<string, unknown>): void;
  /** A message that should reach the user (a skipped batch, an interrupt). */
  message(text: string): void;
  /** Called when fit() ends. */
  stop(): void;
}

/** A progress sink that shows nothing (messages go to the console's warning channel). */
export const silentProgress: ProgressSink = {
  start: () => {},
  log: () => {},
  message: (text) => console.warn(text),
  stop: () => {},
};

// The metrics log: metrics.jsonl in the run directory, one JSON object per log interval (step, epoch, loss,
// val_loss, lr, grad_norm, samples_per_s or tokens_per_s, elapsed_s, ...). Lines are appended and fsynced; a
// resume cuts the file back to the length recorded in the checkpoint, dropping lines from after it.

import { makeDirs } from '../io/atomic.js';
import { appendFileSync, closeSync, existsSync, fsyncSync, openSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MetricsRecord } from './metrics-record.js';

export { countCorrect, type MetricsRecord } from './metrics-record.js';

/** The run's metrics.jsonl: one JSON object per line, appended as each record comes. */
export class MetricsLog {
  constructor(readonly path: string) {
    makeDirs(dirname(path), 'run folder');
  }

  /** Appends one line. */
  append(record: MetricsRecord): void {
    appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }

  /** Current size in bytes (0 when the file does not exist yet). */
  bytes(): number {
    return existsSync(this.path) ? statSync(this.path).size : 0;
  }

  /** Cuts the log back to `bytes` (the length when a checkpoint was written). */
  truncateTo(bytes: number): void {
    if (!existsSync(this.path)) return;
    if (statSync(this.path).size > bytes) {
      truncateSync(this.path, bytes);
      const fd = openSync(this.path, 'r+');
      try { fsyncSync(fd); } finally { closeSync(fd); }
    }
  }

  /** Every complete line, parsed (a torn last line is skipped). */
  read(): MetricsRecord[] {
    return readMetrics(this.path);
  }
}

/** The records of a metrics.jsonl file; a torn last line (from a kill mid-write) is skipped. */
export function readMetrics(path: string): MetricsRecord[] {
  if (!existsSync(path)) return [];
  const out: MetricsRecord[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as MetricsRecord);
    } catch {
      // torn line
    }
  }
  return out;
}

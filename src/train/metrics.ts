// The metrics log: metrics.jsonl in the run directory, one JSON object per log interval (step, epoch, loss,
// val_loss, lr, grad_norm, samples_per_s or tokens_per_s, elapsed_s, ...). Lines are appended and fsynced; a
// resume cuts the file back to the length recorded in the checkpoint, dropping lines from after it.

import { makeDirs } from '../io/atomic.js';
import { appendFileSync, closeSync, existsSync, fsyncSync, openSync, readFileSync, statSync, truncateSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Tensor } from '../tensor/index.js';

/** One line of metrics.jsonl: step, epoch, loss, lr, val_loss, ... as JSON values. */
export type MetricsRecord = Record<string, unknown>;

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

/** Correct predictions and total: the argmax over the last dimension of `output` against integer `target`. */
export function countCorrect(output: Tensor, target: Tensor): { correct: number; total: number } {
  const C = output.shape[output.ndim - 1];
  const N = output.size / C;
  if (target.size !== N) {
    throw new Error(`accuracy: the output has ${N} rows of ${C} classes but the target has ${target.size} labels`);
  }
  const o = output.storage;
  const t = target.storage;
  let correct = 0;
  for (let i = 0; i < N; i++) {
    let best = 0;
    let bv = o[i * C];
    for (let c = 1; c < C; c++) {
      const v = o[i * C + c];
      if (v > bv) { bv = v; best = c; }
    }
    if (best === t[i]) correct++;
  }
  return { correct, total: N };
}

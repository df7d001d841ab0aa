// Follows a growing `metrics.jsonl`: remembers the byte offset it has read up to and, on each change of the file's
// size, reads only the appended bytes. A partial last line waits in a buffer until its newline arrives.

import { open, stat } from 'node:fs/promises';

/** One parsed line of `metrics.jsonl`; the trainer's fields (step, loss, val_loss, lr, ...) plus anything else. */
export type MetricRecord = Record<string, unknown>;

export interface TailOptions {
  /** How often to look at the file's size, in milliseconds (a `stat`, never a read of the whole file). */
  intervalMs?: number;
  /** Largest read in one go; the backlog of a long run is sent in pieces of this size. */
  chunkBytes?: number;
  /** Called with the complete lines appended since the last call, parsed; malformed lines are skipped. */
  onRecords(records: MetricRecord[]): void;
  /** Called when the file shrank (cut back on resume) or was replaced: everything sent so far is void, reading restarts at 0. */
  onReset?(): void;
  /** Called with the number of lines that were not JSON objects. */
  onMalformed?(count: number): void;
}

const NEWLINE = 0x0a;

/**
 * Tails one JSONL file. `start()` reads what is there, then keeps reading what is appended until `stop()`.
 *
 * ```ts
 * const t = new JsonlTail('runs/a/metrics.jsonl', { onRecords: (rs) => console.log(rs.length) });
 * t.start(); // ... later: t.stop();
 * ```
 */
export class JsonlTail {
  private offset = 0;
  private ino = -1;
  private pending: Buffer = Buffer.alloc(0);
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private again = false;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly chunkBytes: number;

  constructor(readonly file: string, private readonly opts: TailOptions) {
    this.intervalMs = opts.intervalMs ?? 250;
    this.chunkBytes = opts.chunkBytes ?? 1 << 20;
  }

  /** Bytes consumed so far (complete lines only, plus the buffered partial line). */
  get position(): number { return this.offset; }

  start(): void {
    if (this.timer || this.stopped) return;
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Reads whatever was appended since the last read. Safe to call at any time; calls never overlap. */
  async poll(): Promise<void> {
    if (this.busy) { this.again = true; return; }
    this.busy = true;
    try {
      do {
        this.again = false;
        await this.readAppended();
      } while (this.again && !this.stopped);
    } finally {
      this.busy = false;
    }
  }

  private async readAppended(): Promise<void> {
    let size: number;
    let ino: number;
    try {
      ({ size, ino } = await stat(this.file));
    } catch {
      return; // not there yet: a run that has not logged its first step
    }
    // Shrunk (cut back on resume) or replaced by another file (a rename over it): start again from the top.
    const replaced = this.ino !== -1 && ino !== this.ino;
    this.ino = ino;
    if (size < this.offset || replaced) {
      this.offset = 0;
      this.pending = Buffer.alloc(0);
      this.opts.onReset?.();
    }
    if (size === this.offset) return;
    const fh = await open(this.file, 'r');
    try {
      while (this.offset < size && !this.stopped) {
        const want = Math.min(this.chunkBytes, size - this.offset);
        const buf = Buffer.allocUnsafe(want);
        const { bytesRead } = await fh.read(buf, 0, want, this.offset);
        if (bytesRead === 0) break;
        this.offset += bytesRead;
        this.consume(buf.subarray(0, bytesRead));
      }
    } finally {
      await fh.close();
    }
  }

  private consume(chunk: Buffer): void {
    const data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const lastNl = data.lastIndexOf(NEWLINE);
    if (lastNl < 0) { this.pending = Buffer.from(data); return; }
    // Copy the tail: `data` may be a view on a reused buffer.
    this.pending = Buffer.from(data.subarray(lastNl + 1));
    const text = data.subarray(0, lastNl).toString('utf8');
    const records: MetricRecord[] = [];
    let bad = 0;
    for (const line of text.split('\n')) {
      const s = line.trim();
      if (!s) continue;
      try {
        const v: unknown = JSON.parse(s);
        if (v && typeof v === 'object' && !Array.isArray(v)) records.push(v as MetricRecord);
        else bad++;
      } catch {
        bad++;
      }
    }
    if (bad) this.opts.onMalformed?.(bad);
    if (records.length) this.opts.onRecords(records);
  }
}

// RSS growth over a stretch of code, the same way on both sides (bench/torch_bench.py has the Python twin): reset
// the kernel's high-water mark (Linux: write 5 to /proc/self/clear_refs), note VmRSS, and afterwards read VmHWM.
// Where the mark cannot be reset, the peak is the largest VmRSS sampled between steps (less exact: says so).

import { readFileSync, writeFileSync } from 'node:fs';

function statusMB(key: string): number {
  const m = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) / 1024 : process.memoryUsage.rss() / 2 ** 20;
}

export class RssGrowth {
  readonly exact: boolean;
  readonly baseMB: number;
  private peakMB: number;
  /** Starts measuring now (call it after warm-up). */
  constructor() {
    let exact = false;
    try { writeFileSync('/proc/self/clear_refs', '5'); exact = true; } catch { /* not Linux, or not allowed */ }
    this.exact = exact;
    this.baseMB = statusMB('VmRSS');
    this.peakMB = this.baseMB;
  }
  /** Samples the current RSS (what counts where the high-water mark cannot be reset). */
  sample(): void { this.peakMB = Math.max(this.peakMB, statusMB('VmRSS')); }
  /** Peak RSS since the start minus RSS at the start, MB. */
  growthMB(): number { return (this.exact ? statusMB('VmHWM') : Math.max(this.peakMB, statusMB('VmRSS'))) - this.baseMB; }
}

// Timing helpers shared by the bench scripts.

/** Samples of fn's rate (work per second) after warm-up, each sample about sampleMs long. */
export function rateSamples(fn: () => void, work: number, { warmMs = 300, sampleMs = 100, samples = 5 } = {}): number[] {
  let calls = 0;
  const t0 = performance.now();
  while (calls < 2 || performance.now() - t0 < warmMs) { fn(); calls++; }
  const perCall = (performance.now() - t0) / calls;
  const reps = Math.max(1, Math.floor(sampleMs / Math.max(perCall, 1e-6)));
  const rates: number[] = [];
  for (let s = 0; s < samples; s++) {
    const t = performance.now();
    for (let i = 0; i < reps; i++) fn();
    rates.push((work * reps) / ((performance.now() - t) / 1000));
  }
  return rates;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

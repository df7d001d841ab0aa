// Kiln's reference workloads (BENCHMARKS.md), side by side with PyTorch on the same machine in the same run.
// `npm run bench` prints one table; `npm run bench -- T1 T3` runs only those workloads (ids: T1 T2 T3 T3b T4).
// Each workload is a function returning rows; T2-T4 are added here as the layers above the backend land.

import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo, jsBackend, setBackend } from '../src/backend/index.js';
import { dumpMnist, runT2 } from './t2-mnist.js';
import { runGPTSteps, stepFlops, T3, T3B, type GPTShape } from './t3-gpt.js';
import { runT4 } from './t4-generate.js';
import { loadNativeBackend, nativeControls } from '../src/backend/native/index.js';
import type { Backend } from '../src/backend/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const PYTHON = '/usr/bin/python3';

/** One line of the table. Figures are numbers, or a string saying why there is none. */
export interface Row {
  id: string;
  workload: string;
  unit: string;
  kiln: number | string;
  js: number | string;
  torch: number | string;
  /** numpy/OpenBLAS, the practical peak, where it applies */
  peak?: number | string;
  /** lower is better (ms/step) instead of higher (rates) */
  lowerIsBetter?: boolean;
  /** a figure that is not a speed (accuracy): no ratio */
  noRatio?: boolean;
}

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

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** Median rate of fn after warm-up. */
export function medianRate(fn: () => void, work: number, opts: { warmMs?: number; sampleMs?: number; samples?: number } = {}): number {
  return median(rateSamples(fn, work, opts));
}

/** The environment for Python: numpy's OpenBLAS is benchmarked without the safety settings that slow it. */
function pythonEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (benchThreads) env.OMP_NUM_THREADS = String(benchThreads);
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

/** A long-lived `torch_bench.py serve`: one JSON request per line, one JSON answer per line. */
class PyServer {
  private proc: ChildProcessWithoutNullStreams;
  private waiting: ((line: string | null) => void)[] = [];
  private closed = false;
  constructor() {
    this.proc = spawn(PYTHON, [join(here, 'torch_bench.py'), 'serve'], { env: pythonEnv() });
    this.proc.on('error', () => this.close());
    this.proc.on('close', () => this.close());
    this.proc.stderr.resume();
    createInterface({ input: this.proc.stdout }).on('line', (line) => this.waiting.shift()?.(line));
  }
  private close(): void {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w(null);
  }
  /** The next answer line, parsed; an { error } when the process is gone or printed something else. */
  next(): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.resolve({ error: `${PYTHON} bench/torch_bench.py is not running` });
    return new Promise((resolve) => this.waiting.push((line) => {
      if (line === null) { resolve({ error: `${PYTHON} bench/torch_bench.py exited` }); return; }
      try { resolve(JSON.parse(line)); } catch { resolve({ error: line.slice(0, 80) }); }
    }));
  }
  request(req: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.closed) return this.next();
    const answer = this.next();
    this.proc.stdin.write(`${JSON.stringify(req)}\n`);
    return answer;
  }
  end(): void { if (!this.closed) this.proc.stdin.end(); }
}

/** Runs bench/torch_bench.py; numpy's OpenBLAS is benchmarked without the safety settings that slow it. */
function python(args: string[]): { out?: Record<string, unknown>; error?: string } {
  const res = spawnSync(PYTHON, [join(here, 'torch_bench.py'), ...args], { env: pythonEnv(), encoding: 'utf8',
    timeout: 30 * 60 * 1000 });
  if (res.error) return { error: `${PYTHON} not runnable` };
  try {
    return { out: JSON.parse(res.stdout.trim().split('\n').pop() ?? '') };
  } catch {
    return { error: (res.stderr.trim().split('\n').pop() ?? 'python failed').slice(0, 80) };
  }
}

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = s / 4294967296 - 0.5; }
  return a;
}

const notes: string[] = [];

/** KILN_BENCH_THREADS=N runs every side on N threads (e.g. 1 on a machine where another job holds a core). */
const benchThreads = Number(process.env.KILN_BENCH_THREADS ?? 0) || 0;

/**
 * T1: GEMM C = A @ B, GFLOP/s. Kiln, numpy and PyTorch are measured in turn, shape by shape, for several rounds,
 * and each figure is the median of all its samples: load from elsewhere on the machine then hits all sides alike.
 */
async function t1(native: Backend | undefined): Promise<Row[]> {
  const shapes: [number, number, number, string][] = [
    [256, 256, 256, 'square 256'], [512, 512, 512, 'square 512'], [1024, 1024, 1024, 'square 1024'],
    [2048, 2048, 2048, 'square 2048'], [4096, 1024, 256, '(4096x256)@(256x1024)'],
    [4096, 256, 1024, '(4096x1024)@(1024x256)'],
  ];
  const rounds = 3;
  const py = new PyServer();
  const head = await py.next() as { numpy?: string; torch?: string | null; torch_error?: string; threads?: number; error?: string };
  if (head.torch) notes.push(`PyTorch ${head.torch} (${head.threads} threads), numpy ${head.numpy}, T1 in ${rounds} interleaved rounds`);
  const torchMissing = head.error ?? head.torch_error ?? (head.torch ? undefined : 'not installed');
  const rows: Row[] = [];
  for (const [M, N, K, name] of shapes) {
    const flops = 2 * M * N * K;
    const A = rand(M * K, 1);
    const B = rand(K * N, 2);
    const C = new Float32Array(M * N);
    const gemm = (be: Backend) => () => be.gemm(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, C, 0);
    const kilnS: number[] = [];
    const numpyS: number[] = [];
    const torchS: number[] = [];
    let numpyErr: string | undefined;
    for (let r = 0; r < rounds; r++) {
      if (native) kilnS.push(...rateSamples(gemm(native), flops).map((v) => v / 1e9));
      const np = await py.request({ op: 'gemm', lib: 'numpy', m: M, n: N, k: K });
      if (Array.isArray(np.rates)) numpyS.push(...(np.rates as number[])); else numpyErr = String(np.error);
      if (!torchMissing) {
        const tr = await py.request({ op: 'gemm', lib: 'torch', m: M, n: N, k: K });
        if (Array.isArray(tr.rates)) torchS.push(...(tr.rates as number[]));
      }
    }
    const js = flops <= 3e8 ? medianRate(gemm(jsBackend), flops, { warmMs: 200, sampleMs: 200, samples: 3 }) / 1e9
      : 'skipped (slow)';
    rows.push({
      id: 'T1', workload: `GEMM ${name}`, unit: 'GFLOP/s', kiln: native ? median(kilnS) : 'unavailable', js,
      torch: torchS.length ? median(torchS) : torchMissing ?? 'failed',
      peak: numpyS.length ? median(numpyS) : numpyErr ?? 'failed',
    });
  }
  py.end();
  if (typeof rows[3].peak === 'number') peakGflops = rows[3].peak;
  // PyTorch's sanity check: over 50 GFLOP/s at 2048. Below that, numpy tells a reference BLAS from a busy machine.
  const largest = rows[3];
  if (typeof largest.torch === 'number' && largest.torch < 50) {
    const peak = typeof largest.peak === 'number' ? largest.peak : NaN;
    notes.push(peak >= 50 && largest.torch < 0.3 * peak
      ? `WARNING: PyTorch's GEMM runs at ${largest.torch.toFixed(1)} GFLOP/s at 2048 (numpy ${peak.toFixed(0)}): it is ` +
        'using the reference BLAS, not OpenBLAS (apt-get install libopenblas0-openmp); its column is not meaningful.'
      : `WARNING: PyTorch's GEMM runs at ${largest.torch.toFixed(1)} GFLOP/s at 2048 and numpy at ${peak.toFixed(1)}: ` +
        'the machine looks busy (check uptime); all figures of this run are suspect.');
  } else if (typeof largest.torch === 'number') {
    notes.push(`PyTorch's GEMM is sane (${largest.torch.toFixed(0)} GFLOP/s at 2048 > 50).`);
  }
  return rows;
}

/** T2: the MNIST MLP, training samples/s over epochs 2-3 and test accuracy after epoch 3. */
async function t2(native: Backend | undefined): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-t2-'));
  let py: ReturnType<typeof python>;
  try {
    dumpMnist(dir, (path, data) => writeFileSync(path, data));
    py = python(['t2', dir]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const res = py.out as { samples_per_s?: number; accuracy?: number; error?: string } | undefined;
  const torchFig = (key: 'samples_per_s' | 'accuracy') => res?.[key] ?? res?.error ?? py.error ?? 'not run';
  const before = backendInfo().name as 'js' | 'native';
  let kiln: { samplesPerSecond: number | string; accuracy: number | string } = { samplesPerSecond: 'unavailable', accuracy: 'unavailable' };
  if (native) {
    setBackend('native');
    const r = runT2();
    kiln = { samplesPerSecond: r.samplesPerSecond, accuracy: r.accuracy * 100 };
  }
  setBackend('js');
  const js = runT2({ maxBatches: 6 });
  setBackend(before);
  notes.push(`T2 Kiln js: ${js.batches} batches of epochs 2-3 only (the full run takes minutes on the reference backend)`);
  return [
    { id: 'T2', workload: 'MNIST MLP training', unit: 'samples/s', kiln: kiln.samplesPerSecond, js: js.samplesPerSecond,
      torch: torchFig('samples_per_s') },
    { id: 'T2', workload: 'MNIST MLP test accuracy', unit: '%', kiln: kiln.accuracy, js: '-', noRatio: true,
      torch: typeof res?.accuracy === 'number' ? res.accuracy * 100 : torchFig('accuracy') },
  ];
}

/** T4: greedy generation with the T3 model, new tokens/s with a KV cache (and without, for comparison). */
async function t4(native: Backend | undefined): Promise<Row[]> {
  const res = spawnSync(PYTHON, [join(here, 't4_generate.py'), '5'], { encoding: 'utf8', timeout: 30 * 60 * 1000 });
  let py: { cached_tokens_per_s?: number; uncached_tokens_per_s?: number } | undefined;
  let pyError = res.error ? `${PYTHON} not runnable` : undefined;
  try {
    py = JSON.parse(res.stdout.trim().split('\n').pop() ?? '');
  } catch {
    pyError ??= /No module named 'torch'/.test(res.stderr) ? 'not installed' : (res.stderr.trim().split('\n').pop() ?? 'python failed').slice(0, 80);
  }
  const before = backendInfo().name as 'js' | 'native';
  let kiln: ReturnType<typeof runT4> | undefined;
  if (native) {
    setBackend('native');
    kiln = runT4();
  }
  setBackend('js');
  const js = runT4({ repeats: 3, skipUncached: true }); // recomputing on the reference GEMM takes minutes
  setBackend(before);
  if (kiln) notes.push(`T4 Kiln: greedy output with the cache ${kiln.cacheMatchesRecompute ? 'equals' : 'DIFFERS FROM'} the output without it; ` +
    `single-token steps on the ${kiln.simdMatVec ? 'WebAssembly SIMD mat-vec' : 'backend GEMM'}; the model's own cached forward: ${kiln.moduleCachedTokensPerSecond.toFixed(0)} tokens/s`);
  return [
    { id: 'T4', workload: 'GPT generation, KV cache', unit: 'new tokens/s', kiln: kiln?.cachedTokensPerSecond ?? 'unavailable',
      js: js.cachedTokensPerSecond, torch: py?.cached_tokens_per_s ?? pyError ?? 'not run' },
    { id: 'T4', workload: 'GPT generation, no cache', unit: 'new tokens/s', kiln: kiln?.uncachedTokensPerSecond ?? 'unavailable',
      js: 'skipped (slow)', torch: py?.uncached_tokens_per_s ?? pyError ?? 'not run' },
  ];
}

/** numpy's GEMM rate at 2048, the practical peak for model FLOPs utilisation (from T1 when it ran). */
let peakGflops: number | undefined;

async function measuredPeak(): Promise<number | undefined> {
  if (peakGflops !== undefined) return peakGflops;
  const py = new PyServer();
  await py.next();
  const np = await py.request({ op: 'gemm', lib: 'numpy', m: 2048, n: 2048, k: 2048 });
  py.end();
  if (Array.isArray(np.rates)) peakGflops = median(np.rates as number[]);
  return peakGflops;
}

/**
 * T3 / T3b: GPT training step, ms/step, tokens/s, peak memory and model FLOPs utilisation, vs PyTorch. Kiln and
 * PyTorch take turns for a few rounds (each a fresh model, warm-up, then timed steps), so that load from elsewhere
 * on the machine hits both alike; each side's figure is the median of its round medians.
 */
function gptWorkload(id: string, s: GPTShape, rounds = 3) {
  return async (native: Backend | undefined): Promise<Row[]> => {
    const label = `GPT step V=${s.V} T=${s.T} L=${s.L} H=${s.H} C=${s.C} B=${s.B}`;
    const py = new PyServer();
    const head = await py.next();
    const before = backendInfo().name as 'js' | 'native';
    const torchRounds: Record<string, unknown>[] = [];
    const kilnRounds: ReturnType<typeof runGPTSteps>[] = [];
    for (let r = 0; r < rounds; r++) {
      torchRounds.push(head.torch ? await py.request({ op: 'gpt', ...s }) : { error: head.torch_error ?? 'not installed' });
      if (native) {
        setBackend('native');
        kilnRounds.push(runGPTSteps(s));
        setBackend(before);
      }
    }
    py.end();
    const tr = { ...torchRounds[torchRounds.length - 1] };
    const torchMs = torchRounds.map((t) => t.ms_per_step).filter((v): v is number => typeof v === 'number');
    if (torchMs.length > 0) tr.ms_per_step = median(torchMs);
    const torchErr = typeof tr.error === 'string' ? tr.error : undefined;
    const k = kilnRounds.length > 0
      ? { ...kilnRounds[kilnRounds.length - 1], msPerStep: median(kilnRounds.map((r) => r.msPerStep)) }
      : undefined;
    const flops = stepFlops(s);
    const tokens = s.B * s.T;
    const peak = await measuredPeak();
    const tMs = typeof tr.ms_per_step === 'number' ? tr.ms_per_step : undefined;
    const fig = (v: number | undefined) => v ?? torchErr ?? 'failed';
    const mfu = (ms: number | undefined) => (ms && peak ? (flops / (ms / 1000) / 1e9 / peak) * 100 : undefined);
    notes.push(`${id}: ${k ? `${k.params} parameters, Kiln loss ${k.firstLoss.toFixed(3)} -> ${k.lastLoss.toFixed(3)}` : ''}` +
      `${typeof tr.params === 'number' ? `; PyTorch ${tr.params} parameters, loss ${Number(tr.first_loss).toFixed(3)} -> ` +
      `${Number(tr.last_loss).toFixed(3)}` : ''}; ${(flops / 1e9).toFixed(2)} GFLOP/step; MFU over numpy's ` +
      `${peak ? peak.toFixed(0) : '?'} GFLOP/s at 2048; ms/step per round: Kiln ` +
      `${kilnRounds.map((r) => r.msPerStep.toFixed(0)).join(', ')}, PyTorch ${torchMs.map((v) => v.toFixed(0)).join(', ')}`);
    const kf = (f: (r: StepResultLike) => number) => (k ? f(k) : 'unavailable');
    return [
      { id, workload: label, unit: 'ms/step', kiln: kf((r) => r.msPerStep), js: 'skipped (slow)', torch: fig(tMs), lowerIsBetter: true },
      { id, workload: 'tokens/s', unit: 'tokens/s', kiln: kf((r) => tokens / (r.msPerStep / 1000)), js: '-',
        torch: fig(tMs ? tokens / (tMs / 1000) : undefined) },
      { id, workload: 'peak memory (process max RSS)', unit: 'MB', kiln: kf((r) => r.peakMB), js: '-',
        torch: fig(typeof tr.peak_mb === 'number' ? tr.peak_mb : undefined), lowerIsBetter: true },
      { id, workload: 'model FLOPs utilisation', unit: '%', kiln: k ? mfu(k.msPerStep) ?? 'no peak' : 'unavailable', js: '-',
        torch: fig(mfu(tMs)) },
    ];
  };
}

type StepResultLike = ReturnType<typeof runGPTSteps>;

const WORKLOADS: { id: string; run: (native: Backend | undefined) => Promise<Row[]> }[] = [
  { id: 'T1', run: t1 },
  { id: 'T2', run: t2 },
  { id: 'T3', run: gptWorkload('T3', T3) },
  { id: 'T3b', run: gptWorkload('T3b', T3B) },
  { id: 'T4', run: t4 },
];

function fmt(v: number | string | undefined): string {
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function ratio(a: number | string | undefined, b: number | string | undefined, lowerIsBetter?: boolean): string {
  if (typeof a !== 'number' || typeof b !== 'number' || b === 0) return '-';
  return `${(lowerIsBetter ? b / a : a / b).toFixed(2)}x`;
}

async function main(): Promise<void> {
  const filters = process.argv.slice(2).map((s) => s.toUpperCase());
  const load = loadNativeBackend();
  const native = load.backend;
  if (benchThreads && native) {
    nativeControls()?.setThreads(benchThreads);
    if (load.info) load.info.threads = nativeControls()?.info().threads ?? benchThreads;
  }
  const info = backendInfo();
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`Kiln benchmarks: ${cpu}, ${cpus().length} cores; native: ${native
    ? `${load.info?.isa}, ${load.info?.threads} threads` : `unavailable (${load.error})`}; default backend ${info.name}`);
  const load0 = loadavg()[0];
  if (load0 > cpus().length * 0.5) {
    console.log(`WARNING: the machine is busy (load average ${load0.toFixed(1)} on ${cpus().length} cores): absolute ` +
      'figures will be low and ratios noisy; rerun when it is idle.');
  }
  const rows: Row[] = [];
  for (const w of WORKLOADS) {
    if (filters.length > 0 && !filters.includes(w.id.toUpperCase())) continue;
    rows.push(...(await w.run(native)));
  }
  const header = ['id', 'workload', 'unit', 'Kiln native', 'Kiln js', 'PyTorch', 'numpy peak', 'native/PyTorch', 'native/peak'];
  const table = rows.map((r) => [r.id, r.workload, r.unit, fmt(r.kiln), fmt(r.js), fmt(r.torch), fmt(r.peak),
    r.noRatio ? '-' : ratio(r.kiln, r.torch, r.lowerIsBetter), r.noRatio ? '-' : ratio(r.kiln, r.peak, r.lowerIsBetter)]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i < 3 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const t of table) console.log(line(t));
  for (const n of notes) console.log(n);
  console.log(`Load average before/after: ${load0.toFixed(1)} / ${loadavg()[0].toFixed(1)}.`);
  console.log(`Figures are medians after warm-up, float32, ${benchThreads ? `${benchThreads} thread(s) on every side (KILN_BENCH_THREADS)` : 'all threads of the machine'}; ratios > 1x mean Kiln is faster.`);
}

await main();

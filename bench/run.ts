// Kiln's reference workloads (BENCHMARKS.md), side by side with PyTorch on the same machine in the same run.
//
//   npm run bench                         every workload, 5 rounds
//   npm run bench -- T1 T3                only those (ids: T1 T1api MLP T2 T5 T3 T3b GEMMbf16 T3bf16 T3bbf16 T3bckpt T4 T6 S1 S1soak D1 W1 W1c)
//   KILN_SOAK_S=N                         S1soak's duration in seconds (default 600; 20 with --quick)
//   npm run bench -- --quick              (or KILN_BENCH_QUICK=1) a smoke run: 2 rounds, small sizes, not publishable
//   npm run bench -- ttq                  time to quality (minutes to an hour; runs only when named): the default
//                                         pre-training recipe in Kiln and PyTorch, time to the same whole-split loss;
//                                         KILN_TTQ_PRESET, KILN_TTQ_STEPS, KILN_TTQ_ROUNDS (default 1) change it
//   npm run bench -- --allow-busy         exit 0 even when the run is flagged busy (the table still says INVALID)
//   KILN_BENCH_ROUNDS=N (at least 5), KILN_BENCH_THREADS=N (threads of every side; default: Kiln's pool size)
//
// Honesty rules: every figure comes from alternating rounds (Kiln, PyTorch, Kiln, PyTorch, ...), each round a
// fresh process per side (bench/kiln-worker.ts, bench/torch_bench.py, bench/t4_generate.py); the table gives the
// median and the best round of each side and the ratio of the medians. PyTorch, numpy and OpenBLAS run on the same
// thread count as Kiln. Memory is RSS growth during the timed steps (bench/rss.ts). A run during which other
// processes load the machine is printed as INVALID and exits non-zero.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNativeBackend } from '../src/backend/native/index.js';
import { median } from './stats.js';
import { dumpMnist } from './t2-mnist.js';
import { stepFlops, T3, T3B, type GPTShape } from './t3-gpt.js';
import { brownChars } from './t6-lstm.js';
import { timeTo, type TTQEval } from './ttq.js';

const here = dirname(fileURLToPath(import.meta.url));
const PYTHON = '/usr/bin/python3';
const args = process.argv.slice(2);
const quick = args.includes('--quick') || process.env.KILN_BENCH_QUICK === '1';
const allowBusy = args.includes('--allow-busy');
const filters = args.filter((a) => !a.startsWith('--')).map((s) => s.toLowerCase());
const ROUNDS = quick ? 2 : Math.max(5, Number(process.env.KILN_BENCH_ROUNDS ?? 5) || 5);
const NCPU = cpus().length;

/** Sizes and repetitions: the full run, or the quick smoke run (checks that everything runs, measures nothing). */
const S = quick ? {
  t1Shapes: [[256, 256, 256, 'square 256'], [512, 512, 512, 'square 512'], [1024, 1024, 256, '(1024x256)@(256x1024) (quick)'],
    [1024, 256, 1024, '(1024x1024)@(1024x256) (quick)']] as [number, number, number, string][],
  t1Timing: { warm_s: 0.2, sample_s: 0.05, samples: 3 },
  t1api: { follow_s: 0.2, min_calls: 3, max_calls: 10 },
  mlp: { warmup: 3, steps: 20 },
  t2: { max_batches: 5 } as { max_batches?: number },
  t5: { max_batches: 5 } as { max_batches?: number },
  gpt: { warmup: 1, steps: 2 },
  t4: { repeats: 1 },
  t6: { warmup: 2, steps: 3 },
  peakShape: [1024, 1024, 1024] as [number, number, number],
} : {
  t1Shapes: [[256, 256, 256, 'square 256'], [512, 512, 512, 'square 512'], [1024, 1024, 1024, 'square 1024'],
    [2048, 2048, 2048, 'square 2048'], [4096, 1024, 256, '(4096x256)@(256x1024)'],
    [4096, 256, 1024, '(4096x1024)@(1024x256)']] as [number, number, number, string][],
  t1Timing: { warm_s: 0.3, sample_s: 0.1, samples: 5 },
  t1api: { follow_s: 1, min_calls: 5, max_calls: 50 },
  mlp: { warmup: 20, steps: 200 },
  t2: {} as { max_batches?: number },
  t5: {} as { max_batches?: number },
  gpt: { warmup: 3, steps: 10 },
  t4: { repeats: 5 },
  t6: { warmup: 10, steps: 20 },
  peakShape: [2048, 2048, 2048] as [number, number, number],
};

// ---------------------------------------------------------------------------------------------------------------
// Processes: one fresh process per side per round.

type Result = Record<string, unknown> & { error?: string };

function runChild(cmd: string, argv: string[], env: NodeJS.ProcessEnv, timeoutMs = 30 * 60 * 1000): Result {
  const res = spawnSync(cmd, argv, { env, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  if (res.error) return { error: `${cmd} not runnable (${res.error.message})` };
  try {
    return JSON.parse(res.stdout.trim().split('\n').pop() ?? '') as Result;
  } catch {
    if (/No module named 'torch'/.test(res.stderr)) return { error: 'not installed' };
    return { error: (res.stderr.trim().split('\n').pop() ?? `exit ${res.status}`).slice(0, 100) };
  }
}

let threads = 1;

function kilnEnv(): NodeJS.ProcessEnv {
  return { ...process.env, KILN_BACKEND: 'native', KILN_THREADS: String(threads) };
}

/** Python's environment: the same thread count everywhere, and without the machine's OpenBLAS overrides. */
function pythonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, BENCH_THREADS: String(threads), OMP_NUM_THREADS: String(threads),
    OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  // This machine sets these two for its other users; they pin numpy's OpenBLAS to an older, slower kernel.
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

let kilnUnavailable: string | undefined;
let torchUnavailable: string | undefined;

const kilnJob = (job: string, params: object): Result => (kilnUnavailable ? { error: kilnUnavailable }
  : runChild(process.execPath, ['--import', 'tsx', join(here, 'kiln-worker.ts'), job, JSON.stringify(params)], kilnEnv()));
const pyJob = (job: string, params: object): Result =>
  runChild(PYTHON, [join(here, 'torch_bench.py'), job, JSON.stringify(params)], pythonEnv());

/** ROUNDS alternating rounds, Kiln first: each call of kiln() and of each other side is one fresh process. */
function alternate(label: string, kiln: () => Result, py: () => Result, py2?: () => Result): { kiln: Result[]; py: Result[]; py2: Result[] } {
  const out = { kiln: [] as Result[], py: [] as Result[], py2: [] as Result[] };
  for (let r = 0; r < ROUNDS; r++) {
    process.stderr.write(`  ${label}: round ${r + 1}/${ROUNDS}\r`);
    out.kiln.push(kiln());
    out.py.push(py());
    if (py2) out.py2.push(py2());
  }
  process.stderr.write(`${' '.repeat(label.length + 20)}\r`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Figures: per-round values, summarised as median and best round.

/** One figure per round, or a sentence saying why there is none. */
type Fig = number[] | string;

function fig(results: Result[], get: (r: Result) => unknown): Fig {
  const values = results.map(get).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (values.length > 0) return values;
  return results.find((r) => r.error)?.error ?? 'failed';
}

/** A line of the table. */
interface Row {
  id: string;
  workload: string;
  unit: string;
  kiln: Fig;
  torch?: Fig;
  numpy?: Fig;
  /** lower is better (ms/step, MB) instead of higher (rates) */
  lowerIsBetter?: boolean;
  /** a figure that is not a speed (accuracy, memory): no ratio */
  noRatio?: boolean;
}

const notes: string[] = [];

// ---------------------------------------------------------------------------------------------------------------
// Busy detection: the load average before the run, and the CPU time other processes took during it (the machine's
// busy time from /proc/stat minus this process's and its children's from /proc/self/stat).

interface CpuSnap { busy: number; total: number; own: number; procs: Map<number, { comm: string; ticks: number }> }

/** CPU ticks of processes a workload started that /proc/self/stat cannot count (Chromium's), as it reported them. */
let claimedTicks = 0;

function cpuSnap(): CpuSnap {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const ticksOf = (stat: string) => {
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // field 3 onwards
    return { comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), utime: Number(rest[11]), stime: Number(rest[12]),
      cutime: Number(rest[13]), cstime: Number(rest[14]) };
  };
  const self = ticksOf(readFileSync('/proc/self/stat', 'utf8'));
  const procs = new Map<number, { comm: string; ticks: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const p = ticksOf(readFileSync(`/proc/${name}/stat`, 'utf8'));
      procs.set(Number(name), { comm: p.comm, ticks: p.utime + p.stime });
    } catch { /* gone */ }
  }
  return { busy: user + nice + system + irq + softirq + steal, total: user + nice + system + idle + iowait + irq + softirq + steal,
    own: self.utime + self.stime + self.cutime + self.cstime + claimedTicks, procs };
}

/** Cores' worth of CPU that processes other than this bench used between two snapshots. */
function othersCores(a: CpuSnap, b: CpuSnap): number {
  const total = b.total - a.total;
  return total > 0 ? Math.max(0, (b.busy - a.busy - (b.own - a.own)) / total) * NCPU : 0;
}

/** The busiest other processes alive at both snapshots, as "name (pid) 45%". */
function busiestOthers(a: CpuSnap, b: CpuSnap, seconds: number): string[] {
  const hz = 100; // USER_HZ on Linux
  const out: { label: string; share: number }[] = [];
  for (const [pid, p] of b.procs) {
    const before = a.procs.get(pid);
    if (!before) continue;
    const share = (p.ticks - before.ticks) / hz / seconds;
    if (share >= 0.02) out.push({ label: `${p.comm} (${pid}) ${(share * 100).toFixed(0)}%`, share });
  }
  return out.sort((x, y) => y.share - x.share).slice(0, 6).map((o) => o.label);
}

// ---------------------------------------------------------------------------------------------------------------
// Workloads.

/** numpy's GEMM rate at the peak shape (square 2048; 1024 in quick mode), for model FLOPs utilisation. */
let peakGflops: number | undefined;

function t1(): Row[] {
  const shapes = S.t1Shapes.map(([m, n, k]) => [m, n, k]);
  const p = { shapes, ...S.t1Timing };
  const r = alternate('T1 kernel', () => kilnJob('t1kernel', p), () => (torchUnavailable ? { error: torchUnavailable }
    : pyJob('t1kernel', { ...p, lib: 'torch' })), () => pyJob('t1kernel', { ...p, lib: 'numpy' }));
  const rows = S.t1Shapes.map(([M, N, K, name], i): Row => ({
    id: 'T1', workload: `GEMM ${name}, into a preallocated output`, unit: 'GFLOP/s',
    kiln: fig(r.kiln, (x) => (x.gflops as number[] | undefined)?.[i]),
    torch: torchUnavailable ?? fig(r.py, (x) => (x.gflops as number[] | undefined)?.[i]),
    numpy: fig(r.py2, (x) => (x.gflops as number[] | undefined)?.[i]),
  }));
  notes.push('T1: Kiln through the backend\'s gemm, numpy np.matmul(a, b, out=c), PyTorch torch.matmul(a, b, out=c): ' +
    'each into a preallocated output, one library per process (rounds: Kiln, PyTorch, numpy); per round the median of ' +
    'samples after warm-up.');
  const peakIdx = S.t1Shapes.findIndex(([m, n, k]) => m === S.peakShape[0] && n === S.peakShape[1] && k === S.peakShape[2]);
  const peakRow = rows[peakIdx];
  if (peakRow && Array.isArray(peakRow.numpy)) peakGflops = median(peakRow.numpy);
  // PyTorch's sanity check: without libopenblas0-openmp Debian's torch runs the reference BLAS, ~40x slower.
  if (peakRow && Array.isArray(peakRow.torch) && Array.isArray(peakRow.numpy)) {
    const tq = median(peakRow.torch);
    const nq = median(peakRow.numpy);
    notes.push(tq < 0.3 * nq
      ? `WARNING: PyTorch's GEMM runs at ${tq.toFixed(1)} GFLOP/s at ${S.peakShape[0]} against numpy's ${nq.toFixed(0)}: ` +
        'it is using the reference BLAS, not OpenBLAS (apt-get install libopenblas0-openmp); its column is not meaningful.'
      : `PyTorch's GEMM is sane: ${tq.toFixed(0)} GFLOP/s at ${S.peakShape[0]} (numpy ${nq.toFixed(0)}).`);
  }
  return rows;
}

function t1api(): Row[] {
  const rows: Row[] = [];
  for (const [M, N, K, name] of S.t1Shapes) {
    const p = { shape: [M, N, K], ...S.t1api };
    const r = alternate(`T1 API ${name}`, () => kilnJob('t1api', p), () => pyJob('t1api', p));
    rows.push(
      { id: 'T1api', workload: `${name}: first call in a fresh process`, unit: 'GFLOP/s',
        kiln: fig(r.kiln, (x) => x.first_gflops), numpy: fig(r.py, (x) => x.first_gflops) },
      { id: 'T1api', workload: `${name}: median of the following calls`, unit: 'GFLOP/s',
        kiln: fig(r.kiln, (x) => x.follow_gflops), numpy: fig(r.py, (x) => x.follow_gflops) },
    );
  }
  notes.push('T1api: Kiln kiln.noGrad(() => a.matmul(b)) through the public API against numpy a @ b, both allocating ' +
    'their result; one fresh process per shape per round.');
  return rows;
}

function mlp(): Row[] {
  const r = alternate('MLP', () => kilnJob('mlp', S.mlp), () => pyJob('mlp', S.mlp));
  notes.push(`MLP: 784-256-256-10 Linear/ReLU, cross-entropy, Adam lr 1e-3, batch 128, one random batch; ${S.mlp.warmup} ` +
    `warm-up steps, then ${S.mlp.steps} timed; Kiln through the public API without activationScope.`);
  return [
    { id: 'MLP', workload: 'MLP training via the tensor API', unit: 'steps/s', kiln: fig(r.kiln, (x) => x.steps_per_s),
      torch: fig(r.py, (x) => x.steps_per_s) },
    { id: 'MLP', workload: 'RSS growth during the timed steps', unit: 'MB', kiln: fig(r.kiln, (x) => x.rss_growth_mb),
      torch: fig(r.py, (x) => x.rss_growth_mb), lowerIsBetter: true, noRatio: true },
  ];
}

function t2(): Row[] {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-t2-'));
  try {
    dumpMnist(dir, (path, data) => writeFileSync(path, data));
    const r = alternate('T2', () => kilnJob('t2', S.t2), () => pyJob('t2', { dir, ...S.t2 }));
    const accuracy = S.t2.max_batches === undefined;
    if (!accuracy) notes.push(`T2 (quick): ${S.t2.max_batches} batches per epoch, no test accuracy.`);
    return [
      { id: 'T2', workload: 'MNIST MLP training', unit: 'samples/s', kiln: fig(r.kiln, (x) => x.samples_per_s),
        torch: fig(r.py, (x) => x.samples_per_s) },
      ...(accuracy ? [{ id: 'T2', workload: 'MNIST MLP test accuracy', unit: '%', noRatio: true,
        kiln: fig(r.kiln, (x) => (typeof x.accuracy === 'number' ? x.accuracy * 100 : undefined)),
        torch: fig(r.py, (x) => (typeof x.accuracy === 'number' ? x.accuracy * 100 : undefined)) }] : []),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function t6(): Row[] {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-t6-'));
  try {
    const { ids, vocab } = brownChars();
    const path = join(dir, 'brown_ids.bin');
    writeFileSync(path, new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
    const r = alternate('T6', () => kilnJob('t6', S.t6), () => pyJob('t6', { ids: path, vocab, ...S.t6 }));
    const k = r.kiln.find((x) => typeof x.params === 'number');
    const t = r.py.find((x) => typeof x.params === 'number');
    notes.push(`T6: char-level LSTM LM (embedding 128, LSTM 2x256 batch-first, linear head, vocabulary ${vocab}), ` +
      `Adam lr 2e-3, batch 32 x 128 random windows of the Brown text; median of ${S.t6.steps} steps after ` +
      `${S.t6.warmup} warm-up steps per round` +
      `${k ? `; Kiln ${k.params} parameters, loss ${Number(k.first_loss).toFixed(3)} -> ${Number(k.last_loss).toFixed(3)}` : ''}` +
      `${t ? `; PyTorch ${t.params} parameters, loss ${Number(t.first_loss).toFixed(3)} -> ${Number(t.last_loss).toFixed(3)}` : ''}.`);
    return [
      { id: 'T6', workload: 'char-level LSTM LM training', unit: 'tokens/s', kiln: fig(r.kiln, (x) => x.tokens_per_s),
        torch: fig(r.py, (x) => x.tokens_per_s) },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function t5(): Row[] {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-t5-'));
  try {
    dumpMnist(dir, (path, data) => writeFileSync(path, data));
    const r = alternate('T5', () => kilnJob('t5', S.t5), () => pyJob('t5', { dir, ...S.t5 }));
    const accuracy = S.t5.max_batches === undefined;
    notes.push(accuracy ? 'T5: the MNIST CNN of BENCHMARKS.md, Adam lr 1e-3, batch 64, 3 epochs; samples/s over epochs 2-3, ' +
      'test accuracy after epoch 3 (PyTorch convolutions run on its oneDNN kernels).'
      : `T5 (quick): ${S.t5.max_batches} batches per epoch, no test accuracy.`);
    return [
      { id: 'T5', workload: 'MNIST CNN training', unit: 'samples/s', kiln: fig(r.kiln, (x) => x.samples_per_s),
        torch: fig(r.py, (x) => x.samples_per_s) },
      ...(accuracy ? [{ id: 'T5', workload: 'MNIST CNN test accuracy after 3 epochs', unit: '%', noRatio: true,
        kiln: fig(r.kiln, (x) => (typeof x.accuracy === 'number' ? x.accuracy * 100 : undefined)),
        torch: fig(r.py, (x) => (typeof x.accuracy === 'number' ? x.accuracy * 100 : undefined)) }] : []),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function gptWorkload(id: string, s: GPTShape) {
  return (): Row[] => {
    const p = { ...s, ...S.gpt };
    const r = alternate(id, () => kilnJob('gpt', p), () => pyJob('gpt', p));
    if (peakGflops === undefined) {
      const np = pyJob('t1kernel', { shapes: [S.peakShape], ...S.t1Timing, lib: 'numpy' });
      if (Array.isArray(np.gflops)) peakGflops = np.gflops[0] as number;
    }
    const flops = stepFlops(s);
    const tokens = s.B * s.T;
    const ms = (x: Result) => x.ms_per_step;
    const per = (xs: Result[], f: (v: number) => number) => fig(xs, (x) => (typeof x.ms_per_step === 'number' ? f(x.ms_per_step) : undefined));
    const mfu = (v: number) => (peakGflops ? (flops / (v / 1000) / 1e9 / peakGflops) * 100 : NaN);
    const k = r.kiln.find((x) => typeof x.params === 'number');
    const t = r.py.find((x) => typeof x.params === 'number');
    notes.push(`${id}: ${s.B}x${s.T} tokens, ${(flops / 1e9).toFixed(2)} GFLOP/step, ${S.gpt.warmup} warm-up + ${S.gpt.steps} ` +
      `timed steps per round; ${k ? `Kiln ${k.params} parameters, loss ${Number(k.first_loss).toFixed(3)} -> ${Number(k.last_loss).toFixed(3)}` : ''}` +
      `${t ? `; PyTorch ${t.params} parameters, loss ${Number(t.first_loss).toFixed(3)} -> ${Number(t.last_loss).toFixed(3)}` : ''}` +
      `; MFU over numpy's ${peakGflops ? peakGflops.toFixed(0) : '?'} GFLOP/s at ${S.peakShape.join('x')}.`);
    return [
      { id, workload: `GPT step V=${s.V} T=${s.T} L=${s.L} H=${s.H} C=${s.C} B=${s.B}`, unit: 'ms/step',
        kiln: fig(r.kiln, ms), torch: fig(r.py, ms), lowerIsBetter: true },
      { id, workload: 'tokens/s', unit: 'tokens/s', kiln: per(r.kiln, (v) => tokens / (v / 1000)), torch: per(r.py, (v) => tokens / (v / 1000)) },
      { id, workload: 'RSS growth during the timed steps', unit: 'MB', kiln: fig(r.kiln, (x) => x.rss_growth_mb),
        torch: fig(r.py, (x) => x.rss_growth_mb), lowerIsBetter: true, noRatio: true },
      { id, workload: 'model FLOPs utilisation', unit: '%', kiln: per(r.kiln, mfu), torch: per(r.py, mfu) },
    ];
  };
}

/**
 * T3bf16 / T3bbf16: the T3/T3b step in Kiln float32 and under kiln.autocast('bf16'), fresh processes alternating;
 * T3bckpt: T3b float32 without and with gradient checkpointing (peak RSS of the process and ms/step).
 */
function gptVariant(id: string, s: GPTShape, a: { label: string; mode: Record<string, unknown> },
  b: { label: string; mode: Record<string, unknown> }) {
  return (): Row[] => {
    const p = { ...s, ...S.gpt };
    const r = alternate(id, () => kilnJob('gpt', { ...p, ...a.mode }), () => kilnJob('gpt', { ...p, ...b.mode }));
    const ms = (x: Result) => x.ms_per_step;
    const ratio: number[] = [];
    r.kiln.forEach((x, i) => {
      const y = r.py[i];
      if (typeof x.ms_per_step === 'number' && typeof y?.ms_per_step === 'number') ratio.push(x.ms_per_step / y.ms_per_step);
    });
    const loss = (xs: Result[]) => xs.find((x) => typeof x.last_loss === 'number')?.last_loss;
    notes.push(`${id}: GPT V=${s.V} T=${s.T} L=${s.L} C=${s.C} B=${s.B}, Kiln against itself in fresh processes taking ` +
      `turns; ${a.label} vs ${b.label}; loss after ${S.gpt.warmup + S.gpt.steps} steps ${Number(loss(r.kiln)).toFixed(4)} vs ` +
      `${Number(loss(r.py)).toFixed(4)}.`);
    return [
      { id, workload: `GPT step, ${a.label}`, unit: 'ms/step', kiln: fig(r.kiln, ms), lowerIsBetter: true },
      { id, workload: `GPT step, ${b.label}`, unit: 'ms/step', kiln: fig(r.py, ms), lowerIsBetter: true },
      { id, workload: `speed of ${b.label} over ${a.label} (per round)`, unit: 'x', kiln: ratio.length ? ratio : 'failed', noRatio: true },
      { id, workload: `peak RSS, ${a.label}`, unit: 'MB', kiln: fig(r.kiln, (x) => x.peak_rss_mb), lowerIsBetter: true, noRatio: true },
      { id, workload: `peak RSS, ${b.label}`, unit: 'MB', kiln: fig(r.py, (x) => x.peak_rss_mb), lowerIsBetter: true, noRatio: true },
    ];
  };
}

/** GEMMbf16: the GEMMs of a T3b step (GPT Conv1D layout: x @ W, dx = g @ W^T, dW = x^T @ g; the tied head) in float32 and bf16. */
function gemmBf16Rows(): Row[] {
  const { C, B, T, V } = T3B;
  const R = B * T;
  const shapes: [string, boolean, boolean, number, number, number][] = [
    ['qkv forward', false, false, R, 3 * C, C], ['mlp up forward', false, false, R, 4 * C, C], ['mlp down forward', false, false, R, C, 4 * C],
    ['mlp up dx', false, true, R, C, 4 * C], ['mlp down dx', false, true, R, 4 * C, C],
    ['mlp up dW (long K)', true, false, C, 4 * C, R], ['mlp down dW (long K)', true, false, 4 * C, C, R],
    ['head forward', false, true, R, V, C], ['head dx', false, false, R, C, V], ['head dW (long K)', true, false, V, C, R],
  ];
  const rounds: Result[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    process.stderr.write(`  GEMMbf16: round ${r + 1}/${ROUNDS}\r`);
    rounds.push(kilnJob('gemmbf16', { shapes, ...S.t1Timing }));
  }
  notes.push(`GEMMbf16: the GEMMs of one T3b step (${R} rows, C=${C}, V=${V}), GFLOP/s in float32 and bf16 (gemmBf16: bf16 inputs, float32 accumulation), alternating in one process per round.`);
  return shapes.flatMap(([name]) => [
    { id: 'GEMMbf16', workload: `${name} (M, N, K as in the step), float32`, unit: 'GFLOP/s', kiln: fig(rounds, (x) => x[`${name} float32`]) },
    { id: 'GEMMbf16', workload: `${name}, bf16`, unit: 'GFLOP/s', kiln: fig(rounds, (x) => x[`${name} bf16`]) },
  ]);
}

const F32 = { label: 'float32', mode: { precision: 'float32' } };
const BF16 = { label: 'bf16 (kiln.autocast)', mode: { precision: 'bf16' } };

function t4(): Row[] {
  const r = alternate('T4', () => kilnJob('t4', S.t4),
    () => runChild(PYTHON, [join(here, 't4_generate.py'), JSON.stringify(S.t4)], pythonEnv()));
  const torchGreedy = fig(r.py, (x) => x.cached_tokens_per_s);
  const cost = (xs: Result[]) => fig(xs, (x) => (typeof x.sampling_cost_over_greedy === 'number' ? x.sampling_cost_over_greedy : undefined));
  const mismatch = r.kiln.filter((x) => x.greedy_outputs_match === false).length;
  notes.push(`T4: greedy, batch 1, prompt 16, 112 new tokens, KV cache, prefill included; per round the median of ` +
    `${S.t4.repeats} generations after at least 1.5 s of warm-up (every path in turn, on both sides). Headline: gpt.generate(idx, 112, { temperature: 0 }) against a Hugging ` +
    `Face GPT-2 style loop (bench/t4_generate.py); the CLI path is kiln.infer.generate(gpt, promptIds, { maxNewTokens: 112 }). ` +
    `Sampling cost: per round the median over pairs of (sampled / greedy time) timed back to back on each side. Greedy outputs of the two Kiln paths ${mismatch ? `DIFFER in ${mismatch} round(s)` : 'are identical'}.`);
  return [
    { id: 'T4', workload: 'generation: gpt.generate, greedy (headline)', unit: 'new tokens/s',
      kiln: fig(r.kiln, (x) => x.model_generate_tokens_per_s), torch: torchGreedy },
    { id: 'T4', workload: 'generation: kiln.infer.generate, greedy (CLI path)', unit: 'new tokens/s',
      kiln: fig(r.kiln, (x) => x.infer_greedy_tokens_per_s), torch: torchGreedy },
    { id: 'T4', workload: 'sampling t=0.8 top-p 0.95 (CLI defaults): time over greedy', unit: 'x greedy', lowerIsBetter: true,
      noRatio: true, kiln: cost(r.kiln), torch: cost(r.py) },
  ];
}

/** S1: `kiln serve` under a 50-request burst at its defaults, and tokens/s at 16 streams against 1 (bench/s1-serve.ts). */
function s1(): Row[] {
  const r: Result[] = [];
  for (let k = 0; k < ROUNDS; k++) {
    process.stderr.write(`  S1: round ${k + 1}/${ROUNDS}\r`);
    r.push(kilnJob('s1', {}));
  }
  const ok = r.find((x) => typeof x.max_batch === 'number');
  notes.push(`S1: kiln serve on the T3-sized model (random weights, character tokenizer), server and clients in one process over ` +
    `127.0.0.1, default settings (batch ${ok?.max_batch ?? '?'}, queue 256). Burst: 50 concurrent chat requests, a third ` +
    'streaming, max_tokens 64; latency from sending to the last byte. Throughput: greedy completions, prompt 16, 112 new ' +
    'tokens, 1 client x 8 requests against 16 clients x 3 requests, each side warmed first, tokens from usage; "long-lived": the median of 8 ' +
    'more such pairs in the same process (the lone stream keeps getting faster for hundreds of requests). Target: no 503, 16 streams >= 4x one.');
  return [
    { id: 'S1', workload: 'burst of 50 at defaults: answered', unit: 'requests', kiln: fig(r, (x) => x.burst_answered), noRatio: true },
    { id: 'S1', workload: 'burst of 50 at defaults: 503 answers', unit: 'requests', kiln: fig(r, (x) => x.burst_503), noRatio: true, lowerIsBetter: true },
    { id: 'S1', workload: 'burst of 50: p50 latency', unit: 'ms', kiln: fig(r, (x) => x.burst_p50_ms), noRatio: true, lowerIsBetter: true },
    { id: 'S1', workload: 'burst of 50: p95 latency', unit: 'ms', kiln: fig(r, (x) => x.burst_p95_ms), noRatio: true, lowerIsBetter: true },
    { id: 'S1', workload: 'generated tokens/s, 1 stream', unit: 'tokens/s', kiln: fig(r, (x) => x.tokens_per_s_1), noRatio: true },
    { id: 'S1', workload: 'generated tokens/s, 16 concurrent streams', unit: 'tokens/s', kiln: fig(r, (x) => x.tokens_per_s_16), noRatio: true },
    { id: 'S1', workload: '16 streams over 1 stream (target >= 4x)', unit: 'x', kiln: fig(r, (x) => x.ratio_16_over_1), noRatio: true },
    { id: 'S1', workload: 'long-lived: tokens/s, 1 stream', unit: 'tokens/s', kiln: fig(r, (x) => x.long_tokens_per_s_1), noRatio: true },
    { id: 'S1', workload: 'long-lived: tokens/s, 16 streams', unit: 'tokens/s', kiln: fig(r, (x) => x.long_tokens_per_s_16), noRatio: true },
    { id: 'S1', workload: 'long-lived: 16 streams over 1 (target >= 4x)', unit: 'x', kiln: fig(r, (x) => x.long_ratio_16_over_1), noRatio: true },
  ];
}

/** S1soak: mixed streaming and non-streaming traffic for KILN_SOAK_S seconds: failures and RSS growth after warm-up. */
function s1soak(): Row[] {
  const seconds = Number(process.env.KILN_SOAK_S ?? (quick ? 20 : 600));
  if (!(seconds >= 5)) throw new Error(`KILN_SOAK_S must be a number of seconds >= 5, got ${process.env.KILN_SOAK_S}`);
  process.stderr.write(`  S1soak: ${seconds} s\r`);
  const r = [kilnJob('s1soak', { seconds })];
  const x = r[0];
  notes.push(`S1soak: ${seconds} s of mixed chat and completions (half streaming, 1 in 14 abandoned mid-stream) from 8 clients on ` +
    `the S1 server; ${x.requests ?? '?'} requests, ${x.abandoned ?? '?'} abandoned, ${x.tokens ?? '?'} tokens; RSS ` +
    `${typeof x.rss_warm_mb === 'number' ? x.rss_warm_mb.toFixed(0) : '?'} MB after warm-up (the first fifth, at least 2 s), ` +
    `${typeof x.rss_end_mb === 'number' ? x.rss_end_mb.toFixed(0) : '?'} MB at the end. Target: 0 failures, growth < 5%.`);
  return [
    { id: 'S1soak', workload: `soak ${seconds} s: failed requests`, unit: 'requests', kiln: fig(r, (y) => y.failures), noRatio: true, lowerIsBetter: true },
    { id: 'S1soak', workload: `soak ${seconds} s: RSS growth after warm-up`, unit: '%', kiln: fig(r, (y) => y.rss_growth_pct), noRatio: true, lowerIsBetter: true },
  ];
}

/** D1: T3 data-parallel at 1 and 2 ranks (bench/d1-ddp.ts), one thread each, rounds alternating 1 and 2 ranks. */
function d1(): Row[] {
  const env = { ...kilnEnv(), KILN_THREADS: '1' };
  if (process.getuid?.() === 0) Object.assign(env, { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' });
  const script = join(here, 'd1-ddp.ts');
  const params = (bucketMB: number) => JSON.stringify({ ...S.gpt, bucket_mb: bucketMB });
  const one = () => runChild(process.execPath, ['--import', 'tsx', script, params(25)], env);
  const two = (bucketMB: number) => () => runChild('mpirun', ['--oversubscribe', '-np', '2', process.execPath, '--import', 'tsx', script,
    params(bucketMB)], env);
  const r = alternate('D1', one, two(25), two(4));
  const tps = (x: Result) => (typeof x.ms_per_step === 'number' ? Number(x.tokens_per_step) / (x.ms_per_step / 1000) : undefined);
  // Scaling efficiency per round: 2-rank tokens/s over twice the 1-rank tokens/s of the same round.
  const eff = r.py.map((x, i): Result => ({ e: ((tps(x) ?? NaN) / (2 * (tps(r.kiln[i]) ?? NaN))) * 100, error: x.error ?? r.kiln[i].error }));
  // Overlap share: the part of the all-reduce time hidden behind backward, 1 - (wait after backward) / (all-reduce alone).
  const overlap = (x: Result) => (typeof x.wait_ms === 'number' && typeof x.allreduce_ms === 'number' && x.allreduce_ms > 0
    ? Math.max(0, Math.min(1, 1 - x.wait_ms / x.allreduce_ms)) * 100 : undefined);
  const b = r.py.find((x) => typeof x.buckets === 'number');
  const b4 = r.py2.find((x) => typeof x.buckets === 'number');
  notes.push(`D1: T3 (${T3.B}x${T3.T} tokens per rank) with DistributedDataParallel, KILN_THREADS=1 per rank, ` +
    `mpirun --oversubscribe -np 2 on this machine (loopback, shared memory); ${S.gpt.warmup} warm-up + ${S.gpt.steps} timed steps ` +
    `with communication and ${S.gpt.steps} with backward alone (noSync) per round. 25 MB buckets (the Trainer's default): ` +
    `${b ? b.buckets : '?'} bucket(s), the first 1 MB as in PyTorch; 4 MB buckets: ${b4 ? b4.buckets : '?'}. ` +
    'Overlap share = 1 - (wait after backward) / (the same all-reduces alone). Bandwidth: bytes / time of one 25 MB all-reduce.');
  return [
    { id: 'D1', workload: 'T3 step, 1 rank x 1 thread', unit: 'tokens/s', kiln: fig(r.kiln, tps) },
    { id: 'D1', workload: 'T3 step, 2 ranks x 1 thread (global batch 2x)', unit: 'tokens/s', kiln: fig(r.py, tps) },
    { id: 'D1', workload: 'scaling efficiency, 2 ranks', unit: '%', kiln: fig(eff, (x) => x.e) },
    { id: 'D1', workload: 'all-reduce bandwidth, 25 MB, loopback', unit: 'GB/s', kiln: fig(r.py, (x) => x.allreduce_gbps) },
    { id: 'D1', workload: 'backward, 1 rank (no communication)', unit: 'ms', kiln: fig(r.kiln, (x) => x.backward_ms), lowerIsBetter: true },
    { id: 'D1', workload: 'backward, 2 ranks, without communication (noSync)', unit: 'ms', kiln: fig(r.py, (x) => x.backward_alone_ms), lowerIsBetter: true },
    { id: 'D1', workload: 'backward, 2 ranks, with communication, 25 MB buckets', unit: 'ms', kiln: fig(r.py, (x) => x.backward_ms), lowerIsBetter: true },
    { id: 'D1', workload: 'overlap share, 25 MB buckets', unit: '%', kiln: fig(r.py, overlap) },
    { id: 'D1', workload: 'backward, 2 ranks, with communication, 4 MB buckets', unit: 'ms', kiln: fig(r.py2, (x) => x.backward_ms), lowerIsBetter: true },
    { id: 'D1', workload: 'overlap share, 4 MB buckets', unit: '%', kiln: fig(r.py2, overlap) },
  ];
}

/** TensorFlow.js's wasm backend on T3 in Node (issue 16): 344 tokens/s with hand fixes, 54 as shipped. */
const TFJS_WASM_T3 = 344;

/**
 * W1c: T1 (GEMM 1024) on the WebAssembly backend inside headless Chromium, as a page loads it (kiln-single.wasm, one
 * thread: the browser loader has no thread pool), against the native backend at one thread, rounds alternating
 * (bench/w1-chromium.ts and bench/w1-wasm.ts, a fresh process each).
 */
function w1c(): Row[] {
  const params = JSON.stringify({ t1: 1024, ...S.t1Timing });
  const chromiumSide = () => {
    const r = runChild(process.execPath, ['--import', 'tsx', join(here, 'w1-chromium.ts'), params], process.env);
    if (typeof r.chromium_cpu_ticks === 'number') claimedTicks += r.chromium_cpu_ticks;
    return r;
  };
  const nativeSide = () => runChild(process.execPath, ['--import', 'tsx', join(here, 'w1-wasm.ts'), JSON.stringify({ t1: 1024, t3: false, ...S.t1Timing })],
    { ...process.env, KILN_BACKEND: 'native', KILN_THREADS: '1' });
  const r = alternate('W1c', chromiumSide, nativeSide);
  const ua = r.kiln.map((x) => x.userAgent).find((x) => typeof x === 'string');
  const version = typeof ua === 'string' ? /Chrome\/([\d.]+)/.exec(ua)?.[1] ?? '?' : '?';
  notes.push(`W1c: Kiln's wasm backend in headless Chromium ${version} (Debian's, through playwright-core), loaded as a page loads it ` +
    '(useWasmBackend, kiln-single.wasm, one thread) against native at KILN_THREADS=1 in Node; GEMM into a preallocated output, ' +
    'as W1 times it in Node. Target: wasm in Chromium >= 0.2x native.');
  return [{ id: 'W1c', workload: 'T1 GEMM 1024, wasm in Chromium vs native, 1 thread each', unit: 'GFLOP/s',
    kiln: fig(r.kiln, (x) => x.t1_gflops), torch: fig(r.py, (x) => x.t1_gflops) }];
}

/**
 * W1: T1 (GEMM 1024) and T3 on the WebAssembly backend against the native one, same threads, rounds alternating
 * native and wasm (bench/w1-wasm.ts, a fresh process each). The Kiln column is wasm, the other column native (or
 * TF.js's anchor). Rates per CPU-second of the process are printed too: on a loaded machine they still compare.
 */
function w1(): Row[] {
  const script = join(here, 'w1-wasm.ts');
  const params = JSON.stringify({ ...S.gpt, t1: 1024, ...S.t1Timing });
  const side = (name: string) => () => runChild(process.execPath, ['--import', 'tsx', script, params], { ...kilnEnv(), KILN_BACKEND: name });
  const r = alternate('W1', side('wasm'), side('native'));
  const w = r.kiln.find((x) => typeof x.isa === 'string');
  notes.push(`W1: wasm = the native/ kernels compiled to WebAssembly (${w ? `${String(w.isa)}, ${String(w.threads)} threads` : '?'}), ` +
    `tensor storage in wasm memory; native with the same KILN_THREADS. "per CPU-s" rows divide by the process's CPU time ` +
    `(all threads), which holds up under load. TF.js's wasm backend anchor on T3 in Node: ${TFJS_WASM_T3} tokens/s ` +
    '(with hand fixes; 54 as shipped); targets: T3 wasm >= 0.25x native and >= 10x TF.js.');
  return [
    { id: 'W1', workload: 'T1 GEMM 1024, wasm vs native', unit: 'GFLOP/s', kiln: fig(r.kiln, (x) => x.t1_gflops), torch: fig(r.py, (x) => x.t1_gflops) },
    { id: 'W1', workload: 'T1 GEMM 1024, wasm vs native, per CPU-s', unit: 'GFLOP/cpu-s', kiln: fig(r.kiln, (x) => x.t1_cpu_gflops), torch: fig(r.py, (x) => x.t1_cpu_gflops) },
    { id: 'W1', workload: 'T3 step, wasm vs native', unit: 'tokens/s', kiln: fig(r.kiln, (x) => x.t3_tokens_per_s), torch: fig(r.py, (x) => x.t3_tokens_per_s) },
    { id: 'W1', workload: 'T3 step, wasm vs native, per CPU-s', unit: 'tokens/cpu-s', kiln: fig(r.kiln, (x) => x.t3_cpu_tokens_per_s), torch: fig(r.py, (x) => x.t3_cpu_tokens_per_s) },
    { id: 'W1', workload: `T3 step, wasm vs TF.js wasm (${TFJS_WASM_T3}, its anchor)`, unit: 'tokens/s', kiln: fig(r.kiln, (x) => x.t3_tokens_per_s), torch: [TFJS_WASM_T3] },
  ];
}

/**
 * Time to quality: the default pre-training recipe (settings, data, windows in the same order: bench/ttq.ts writes
 * them once) trained by Kiln (bench/ttq.ts) and PyTorch (bench/ttq.py), each evaluating the whole held-out split
 * every evalEvery steps with its clock stopped; the figure is the training time to the first evaluation at or below
 * the worse of the two final losses, the loss both reach. One round per side by default: a round is minutes.
 */
function ttq(): Row[] {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-ttq-'));
  const hours = 3 * 60 * 60 * 1000;
  try {
    const env = process.env;
    const settings = quick ? { preset: 'tiny', maxSteps: 60, evalEvery: 20 }
      : { preset: env.KILN_TTQ_PRESET ?? 'small', ...(env.KILN_TTQ_STEPS ? { maxSteps: Number(env.KILN_TTQ_STEPS) } : {}) };
    const meta = kilnUnavailable ? { error: kilnUnavailable }
      : runChild(process.execPath, ['--import', 'tsx', join(here, 'ttq.ts'), 'data', JSON.stringify({ dir, ...settings })], kilnEnv());
    if (meta.error) return [{ id: 'ttq', workload: 'time to quality: preparing the data', unit: 's', kiln: meta.error }];
    const rounds = Math.max(1, Number(env.KILN_TTQ_ROUNDS ?? 1) || 1);
    const k: Result[] = [];
    const t: Result[] = [];
    for (let r = 0; r < rounds; r++) {
      process.stderr.write(`  ttq: round ${r + 1}/${rounds} (Kiln, then PyTorch)\r`);
      k.push(runChild(process.execPath, ['--import', 'tsx', join(here, 'ttq.ts'), 'train', JSON.stringify({ dir })], kilnEnv(), hours));
      t.push(torchUnavailable ? { error: torchUnavailable } : runChild(PYTHON, [join(here, 'ttq.py'), JSON.stringify({ dir })], pythonEnv(), hours));
    }
    const finals = (xs: Result[]) => xs.map((x) => x.final_loss).filter((v): v is number => typeof v === 'number');
    const fk = finals(k);
    const ft = finals(t);
    const target = Math.max(...(fk.length ? [median(fk)] : []), ...(ft.length ? [median(ft)] : []));
    const to = (xs: Result[]) => fig(xs, (x) => (Array.isArray(x.evals) ? timeTo(x.evals as TTQEval[], target) ?? undefined : undefined));
    const evals = (x: Result | undefined) => (Array.isArray(x?.evals) ? (x!.evals as TTQEval[]).map((e) => `${e.step}:${e.loss.toFixed(3)}@${e.train_s.toFixed(0)}s`).join(' ') : 'none');
    notes.push(`ttq: preset ${String(meta.preset)} (V=${String(meta.V)} T=${String(meta.T)} L=${String(meta.L)} H=${String(meta.H)} C=${String(meta.C)} ` +
      `B=${String(meta.B)}), ${String(meta.steps)} steps, lr ${String(meta.lr)} warmup ${String(meta.warmup)} cosine to ${String(meta.min_lr)}x, ` +
      `the same ${String(meta.val_tokens)} held-out tokens and training windows on both sides; bigram ${Number(meta.bigram_loss).toFixed(4)} nats. ` +
      `Target: ${Number.isFinite(target) ? target.toFixed(4) : '-'} (the worse final loss); ${rounds} round(s) per side, not the rounds below. Evaluations (step:loss@training s): ` +
      `Kiln ${evals(k[0])}; PyTorch ${evals(t[0])}.`);
    const label = `${String(meta.preset)}, ${String(meta.steps)} steps`;
    return [
      { id: 'ttq', workload: `time to whole-split val loss ${Number.isFinite(target) ? target.toFixed(3) : '-'} (${label})`, unit: 's',
        kiln: to(k), torch: to(t), lowerIsBetter: true },
      { id: 'ttq', workload: `whole-split val loss at the end (bigram ${Number(meta.bigram_loss).toFixed(3)})`, unit: 'nats',
        kiln: fig(k, (x) => x.final_loss), torch: fig(t, (x) => x.final_loss), lowerIsBetter: true, noRatio: true },
      { id: 'ttq', workload: 'training time of the whole schedule (evaluations excluded)', unit: 's',
        kiln: fig(k, (x) => x.train_s), torch: fig(t, (x) => x.train_s), lowerIsBetter: true },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const WORKLOADS: { id: string; needsTorch: boolean; run: () => Row[]; onlyWhenNamed?: boolean }[] = [
  { id: 'T1', needsTorch: false, run: t1 },
  { id: 'T1api', needsTorch: false, run: t1api },
  { id: 'MLP', needsTorch: true, run: mlp },
  { id: 'T2', needsTorch: true, run: t2 },
  { id: 'T5', needsTorch: true, run: t5 },
  { id: 'T3', needsTorch: true, run: gptWorkload('T3', T3) },
  { id: 'T3b', needsTorch: true, run: gptWorkload('T3b', T3B) },
  { id: 'GEMMbf16', needsTorch: false, run: gemmBf16Rows },
  { id: 'T3bf16', needsTorch: false, run: gptVariant('T3bf16', T3, F32, BF16) },
  { id: 'T3bbf16', needsTorch: false, run: gptVariant('T3bbf16', T3B, F32, BF16) },
  { id: 'T3bckpt', needsTorch: false, run: gptVariant('T3bckpt', T3B, F32, { label: 'float32, checkpointed blocks', mode: { checkpoint: true } }) },
  { id: 'T4', needsTorch: true, run: t4 },
  { id: 'T6', needsTorch: true, run: t6 },
  { id: 'S1', needsTorch: false, run: s1 },
  { id: 'S1soak', needsTorch: false, run: s1soak },
  { id: 'D1', needsTorch: false, run: d1 },
  { id: 'W1', needsTorch: false, run: w1 },
  { id: 'W1c', needsTorch: false, run: w1c },
  { id: 'ttq', needsTorch: true, run: ttq, onlyWhenNamed: true },
];

// ---------------------------------------------------------------------------------------------------------------
// The table.

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function summary(f: Fig | undefined, lowerIsBetter?: boolean): [string, string] {
  if (f === undefined) return ['', ''];
  if (typeof f === 'string') return [f, ''];
  return [fmt(median(f)), fmt(lowerIsBetter ? Math.min(...f) : Math.max(...f))];
}

function ratio(a: Fig | undefined, b: Fig | undefined, row: Row): string {
  if (row.noRatio || !Array.isArray(a) || !Array.isArray(b)) return '-';
  const ma = median(a);
  const mb = median(b);
  if (!(ma > 0) || !(mb > 0)) return '-';
  return `${(row.lowerIsBetter ? mb / ma : ma / mb).toFixed(2)}x`;
}

function printTable(rows: Row[], torchLabel: string, title: string): void {
  const header = ['id', 'workload', 'unit', 'Kiln median', 'Kiln best', `${torchLabel} median`, 'best', 'Kiln/PyTorch',
    'numpy median', 'best', 'Kiln/numpy'];
  const table = rows.map((r) => [r.id, r.workload, r.unit, ...summary(r.kiln, r.lowerIsBetter), ...summary(r.torch, r.lowerIsBetter),
    ratio(r.kiln, r.torch, r), ...summary(r.numpy, r.lowerIsBetter), ratio(r.kiln, r.numpy, r)]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  console.log(title);
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i < 3 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const t of table) console.log(line(t));
}

function main(): number {
  const load0 = loadavg()[0];
  const snap0 = cpuSnap();
  const t0 = performance.now();
  const load = loadNativeBackend();
  const benchThreads = Number(process.env.KILN_BENCH_THREADS ?? 0) || 0;
  if (load.backend) threads = benchThreads || load.info?.threads || NCPU;
  else { kilnUnavailable = `unavailable (${load.error})`; threads = benchThreads || NCPU; }
  console.log(`Kiln benchmarks: ${cpus()[0]?.model ?? 'unknown CPU'}, ${NCPU} cores; Kiln native: ${load.backend
    ? `${load.info?.isa}, ${threads} threads` : kilnUnavailable}; ${ROUNDS} alternating rounds, a fresh process per side per round` +
    `${quick ? '; QUICK mode (small sizes, few rounds)' : ''}.`);

  // PyTorch's and numpy's versions, threads, and the OpenBLAS kernel they run, in the benchmark's environment.
  const env = pyJob('env', {});
  let torchLabel = 'PyTorch';
  if (typeof env.torch === 'string') {
    const debian = String(env.torch_path ?? '').startsWith('/usr/lib/python3/dist-packages/');
    const ob = env.openblas as { method: string; libs: { lib: string; corename: string; config: string; threads: number }[]; show_config?: string };
    const kernels = [...new Set(ob.libs.map((l) => `${l.config} (kernel ${l.corename}, ${l.threads} threads)`))];
    const tags = [debian ? 'Debian' : '', ob.libs.length ? 'OpenBLAS' : ''].filter(Boolean);
    torchLabel = `PyTorch ${env.torch}${tags.length ? ` (${tags.join(', ')})` : ''}`;
    console.log(`PyTorch column: torch.__version__ ${env.torch} from ${env.torch_path}, ${env.threads} threads ` +
      `(torch.set_num_threads); numpy ${env.numpy}; OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=${threads}; OPENBLAS_CORETYPE and ` +
      'OPENBLAS_L2_SIZE unset for the Python side only.');
    console.log(`OpenBLAS in the Python processes (${ob.method}): ${kernels.length ? kernels.join('; ') : 'none found'}` +
      `${ob.show_config ? `\n${ob.show_config.trim()}` : ''}`);
  } else {
    torchUnavailable = env.error ?? String(env.torch_error ?? 'not installed');
    console.log(`PyTorch: ${torchUnavailable} (${PYTHON}); the PyTorch column is empty.`);
    if (typeof env.numpy !== 'string') console.log(`numpy: ${env.error ?? 'unavailable'}`);
  }

  const rows: Row[] = [];
  const perWorkload: string[] = [];
  for (const w of WORKLOADS) {
    if (filters.length > 0 && !filters.includes(w.id.toLowerCase())) continue;
    if (w.onlyWhenNamed && !filters.includes(w.id.toLowerCase())) continue;
    const a = cpuSnap();
    const wt = performance.now();
    const out = w.run();
    if (torchUnavailable) for (const r of out) if (r.torch !== undefined && typeof r.torch === 'string') r.torch = torchUnavailable;
    rows.push(...out);
    perWorkload.push(`${w.id} ${othersCores(a, cpuSnap()).toFixed(2)} (${((performance.now() - wt) / 1000).toFixed(0)} s)`);
  }
  const snap1 = cpuSnap();
  const seconds = (performance.now() - t0) / 1000;
  const others = othersCores(snap0, snap1);

  // Busy: the machine was loaded before the run, or other processes took CPU during it.
  const reasons: string[] = [];
  if (load0 > NCPU * 0.5) reasons.push(`load average ${load0.toFixed(2)} on ${NCPU} cores before the run (limit ${(NCPU * 0.5).toFixed(1)})`);
  if (others > NCPU * 0.1) {
    const top = busiestOthers(snap0, snap1, seconds);
    // Short-lived processes (compilers, test runs) come and go between snapshots: look at who is busy right now too.
    const a = cpuSnap();
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
    const now = busiestOthers(a, cpuSnap(), 1);
    reasons.push(`other processes used ${others.toFixed(2)} cores on average during the run (limit ${(NCPU * 0.1).toFixed(2)})` +
      `${top.length ? `; busiest throughout: ${top.join(', ')}` : ''}${now.length ? `; busiest in the last second: ${now.join(', ')}` : ''}` +
      `${top.length + now.length === 0 ? ' from short-lived processes (none alive long enough to name)' : ''}`);
  }
  const busy = reasons.length > 0;
  const title = busy
    ? `RESULTS INVALID: busy. ${reasons.join('; ')}. Do not publish these figures; rerun on an idle machine.`
    : quick ? 'Results (QUICK smoke run: small sizes and 2 rounds; checks that the bench runs, not for publication):'
      : 'Results:';
  console.log('');
  printTable(rows, torchLabel, busy ? `${title}${quick ? ' (QUICK smoke run, not for publication either way.)' : ''}` : title);
  for (const n of notes) console.log(n);
  console.log(`Other processes' CPU during each workload (cores): ${perWorkload.join(', ')}; load average before/after ` +
    `${load0.toFixed(2)} / ${loadavg()[0].toFixed(2)}.`);
  console.log(`Median and best of ${ROUNDS} rounds per side (best: the fastest round, or the smallest for ms and MB); ` +
    `ratios are of the medians, > 1x means Kiln is faster; float32, ${threads} thread(s) on every side. Memory: RSS ` +
    'growth during the timed steps (peak minus RSS after warm-up), each side in a fresh process.');
  if (busy) {
    console.log(`INVALID (busy): ${allowBusy ? '--allow-busy given, exiting 0' : 'exiting with status 3; pass --allow-busy to exit 0'}.`);
    return allowBusy ? 0 : 3;
  }
  return 0;
}

process.exitCode = main();

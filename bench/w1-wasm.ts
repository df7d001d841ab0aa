// W1 of BENCHMARKS.md, one side of one round in a fresh process: T1 (GEMM 1024, through the backend into a
// preallocated output) and T3 (GPT training steps, bench/t3-gpt.ts) on the backend KILN_BACKEND names (native or
// wasm), with KILN_THREADS threads. bench/run.ts alternates native and wasm rounds and prints wasm against native.
// Besides wall-clock rates it reports rates per CPU-second of this process (all its threads), which stay meaningful
// on a loaded machine: `node --import tsx bench/w1-wasm.ts '{"warmup":3,"steps":10}'` prints one JSON line
// (`"t3": false`: T1 only).

import { backend, backendInfo } from '../src/backend/index.js';
import { median, rateSamples } from './stats.js';
import { runGPTSteps, T3 } from './t3-gpt.js';

const p = JSON.parse(process.argv[2] ?? '{}') as { warmup?: number; steps?: number; t1?: number; warm_s?: number; sample_s?: number; samples?: number;
  t3?: boolean };
const info = backendInfo();
const be = backend();
const n = p.t1 ?? 1024;

/** A float32 buffer of n, in the backend's own memory where it has one (tensor storage lives there too). */
function buffer(len: number, seed: number): Float32Array {
  const a = (be.allocate?.('float32', len) as Float32Array | undefined) ?? new Float32Array(len);
  let s = seed >>> 0;
  for (let i = 0; i < len; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = s / 4294967296 - 0.5; }
  return a;
}

function cpuSeconds(from: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(from);
  return (u.user + u.system) / 1e6;
}

const A = buffer(n * n, 1);
const B = buffer(n * n, 2);
const C = buffer(n * n, 3);
const gemm = () => be.gemm(false, false, 1, n, n, n, 1, A, 0, B, 0, 0, C, 0);
const flops = 2 * n * n * n;
const t1 = median(rateSamples(gemm, flops, { warmMs: (p.warm_s ?? 0.3) * 1000, sampleMs: (p.sample_s ?? 0.2) * 1000, samples: p.samples ?? 5 })) / 1e9;
let c0 = process.cpuUsage();
let calls = 0;
const end = performance.now() + 1000;
while (performance.now() < end || calls < 3) { gemm(); calls++; }
const t1Cpu = (flops * calls) / cpuSeconds(c0) / 1e9;

if (p.t3 === false) { // T1 only (the native side of W1 in Chromium)
  console.log(JSON.stringify({ backend: info.name, isa: info.isa, threads: info.threads, t1_gflops: t1, t1_cpu_gflops: t1Cpu }));
  process.exit(0);
}
const warmup = p.warmup ?? 3;
const steps = p.steps ?? 10;
let c3 = process.cpuUsage();
const r = runGPTSteps(T3, { warmup, steps, onStep: (i) => { if (i === warmup) c3 = process.cpuUsage(); } });
const tokens = T3.B * T3.T;
const t3Cpu = (tokens * steps) / cpuSeconds(c3);
console.log(JSON.stringify({
  backend: info.name, isa: info.isa, threads: info.threads,
  t1_gflops: t1, t1_cpu_gflops: t1Cpu,
  t3_tokens_per_s: tokens / (r.msPerStep / 1000), t3_cpu_tokens_per_s: t3Cpu, t3_ms_per_step: r.msPerStep, t3_loss: r.lastLoss,
}));
process.exit(0); // the pool's workers never end on their own

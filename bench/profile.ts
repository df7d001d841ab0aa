// Where a T3 step's time goes: wraps every backend kernel with a timer and prints a table per kernel (GEMMs by
// shape), plus the time spent outside kernels. Usage: node --import tsx bench/profile.ts [T3|T3b] [steps]
// (KILN_PROFILE_PRECISION=bf16: the step under kiln.autocast, its GEMMs listed as gemmBf16 by shape)
import { backend } from '../src/backend/node.js';
import { runGPTSteps, T3, T3B } from './t3-gpt.js';

const shape = process.argv[2] === 'T3b' ? T3B : T3;
const steps = Number(process.argv[3] ?? 10);
const be = backend() as unknown as Record<string, unknown>;
const totals = new Map<string, { ms: number; calls: number }>();
let kernelMs = 0;
let on = false;

function label(name: string, args: unknown[]): string {
  if (name === 'gemm' || name === 'gemmBf16') {
    const [ta, tb, batch, M, N, K] = args as [boolean, boolean, number, number, number, number];
    return `${name} ${ta ? 'T' : 'N'}${tb ? 'T' : 'N'} b${batch} ${M}x${N}x${K}`;
  }
  if (name === 'unary' || name === 'unaryBackward' || name === 'binary' || name === 'reduce') return `${name} ${String(args[0])}`;
  return name;
}

for (const name of Object.keys(be)) {
  const fn = be[name];
  if (typeof fn !== 'function') continue;
  be[name] = (...args: unknown[]) => {
    if (!on) return (fn as (...a: unknown[]) => unknown).apply(be, args);
    const t0 = performance.now();
    const r = (fn as (...a: unknown[]) => unknown).apply(be, args);
    const dt = performance.now() - t0;
    kernelMs += dt;
    const key = label(name, args);
    const e = totals.get(key) ?? { ms: 0, calls: 0 };
    e.ms += dt;
    e.calls++;
    totals.set(key, e);
    return r;
  };
}

let t0 = 0;
const precision = (process.env.KILN_PROFILE_PRECISION ?? 'float32') as 'float32' | 'bf16';
const r = runGPTSteps(shape, { warmup: 3, steps, precision, onStep: (i) => { if (i === 3) { on = true; t0 = performance.now(); } } });
const wall = performance.now() - t0;
on = false;
const per = (ms: number) => (ms / steps).toFixed(2).padStart(8);
const rows = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms);
for (const [k, v] of rows) console.log(`${per(v.ms)} ms  ${String(v.calls / steps).padStart(5)}x  ${k}`);
console.log(`${per(kernelMs)} ms in kernels, ${per(wall - kernelMs)} ms outside, ${per(wall)} ms per step (median ${r.msPerStep.toFixed(1)})`);

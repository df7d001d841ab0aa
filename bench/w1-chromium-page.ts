// The page side of bench/w1-chromium.ts, bundled for the browser: T1 (GEMM 1024, through the backend into a
// preallocated output, as bench/w1-wasm.ts times it in Node) on Kiln's WebAssembly backend as a browser loads it
// (kiln-single.wasm, one thread). Reports to the page's global `w1Result`.

import { backend, backendInfo } from '../src/backend/index.js';
import { useWasmBackend } from '../src/backend/wasm/browser.js';
import { median, rateSamples } from './stats.js';

interface Params { t1: number; warm_s: number; sample_s: number; samples: number }

async function run(p: Params): Promise<Record<string, unknown>> {
  await useWasmBackend(new URL('kiln-single.wasm', location.href));
  const info = backendInfo();
  const be = backend();
  const n = p.t1;
  const buffer = (len: number, seed: number): Float32Array => {
    const a = (be.allocate?.('float32', len) as Float32Array | undefined) ?? new Float32Array(len);
    let s = seed >>> 0;
    for (let i = 0; i < len; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = s / 4294967296 - 0.5; }
    return a;
  };
  const A = buffer(n * n, 1);
  const B = buffer(n * n, 2);
  const C = buffer(n * n, 3);
  const gemm = () => be.gemm(false, false, 1, n, n, n, 1, A, 0, B, 0, 0, C, 0);
  const rates = rateSamples(gemm, 2 * n * n * n, { warmMs: p.warm_s * 1000, sampleMs: p.sample_s * 1000, samples: p.samples });
  return { backend: info.name, isa: info.isa, threads: info.threads, t1_gflops: median(rates) / 1e9, userAgent: navigator.userAgent };
}

const w = globalThis as unknown as { w1Params: Params; w1Result?: Record<string, unknown> };
run(w.w1Params).then((r) => { w.w1Result = r; }, (e: unknown) => { w.w1Result = { error: e instanceof Error ? e.message : String(e) }; });

// `kiln doctor [--json]`: what Kiln runs on here (Node, CPU, the backend in use with its instruction set and
// threads, or why the native backend is not in use, and whether the WebAssembly backend, the fallback, loads) and a
// quick check that the GEMM of the backend in use (native or wasm) agrees with the reference backend, with its speed; whether the MPI binding for multi-process training is built (or why not) and,
// under mpirun, this process's rank and the world size. Exit status 1 when the native backend is unavailable.

import type { Command } from 'commander';
import { cpus, availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { backendInfo, jsBackend, NATIVE_BUILD_COMMAND, type Backend, type BackendInfo } from '../backend/node.js';
import { loadNativeBackend, nativeControls, nativeSource } from '../backend/native/index.js';
import { loadMpiBinding, MPI_INSTALL_HINT } from '../backend/native/mpi.js';
import { loadWasmBackend, wasmControls } from '../backend/wasm/node.js';
import { init as initDistributed, launchedWorldSize } from '../distributed/index.js';
import { rand } from '../tensor/creation.js';
import { Generator } from '../tensor/random.js';

export interface DoctorReport {
  kiln: string;
  node: string;
  platform: string;
  cpu: { model: string; cores: number };
  /** The backend ops run on, its ISA and threads, or why native is not in use. */
  backend: BackendInfo;
  native: { available: boolean; error?: string; isa?: string; threads?: number; poolSize?: number; file?: string; from?: string };
  /** The WebAssembly backend (the same kernels, no compiler needed): the fallback when native is unavailable. */
  wasm: { available: boolean; error?: string; isa?: string; threads?: number; poolSize?: number };
  /** The MPI binding: built or why not, the MPI library, and under mpirun this process's place in the world. */
  mpi: { available: boolean; error?: string; library?: string; launched: boolean; rank?: number; worldSize?: number };
  env: { KILN_BACKEND?: string; KILN_THREADS?: string; KILN_NATIVE_PATH?: string; KILN_MPI_PATH?: string; KILN_WASM_PATH?: string };
  /** The GEMM of the backend in use (native or wasm) against the reference on random operands, and its rate at 512. */
  check?: { backend: string; maxRelError: number; agrees: boolean; gflops512: number };
  /**
   * bfloat16 (--precision bf16): whether the CPU has AVX512_BF16, which kernels bf16 GEMMs use ('vdpbf16ps', or
   * 'rounded float32' elsewhere), and the native bf16 GEMM against the reference's.
   */
  bf16?: { cpu: boolean; kernels: 'vdpbf16ps' | 'rounded float32'; agrees: boolean };
}

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function register(program: Command): void {
  program
    .command('doctor')
    .description('Report the backend in use (instruction set, threads) or why the native one is not, and check it.')
    .option('--json', 'print the report as one JSON object')
    .action((opts: { json?: boolean }) => {
      const report = diagnose();
      console.log(opts.json ? JSON.stringify(report, null, 2) : formatReport(report));
      if (!report.native.available || report.check?.agrees === false || report.bf16?.agrees === false) process.exitCode = 1;
    });
}

export function diagnose(): DoctorReport {
  const load = loadNativeBackend();
  const controls = nativeControls();
  const info = controls?.info();
  const env: DoctorReport['env'] = {};
  for (const k of ['KILN_BACKEND', 'KILN_THREADS', 'KILN_NATIVE_PATH', 'KILN_MPI_PATH', 'KILN_WASM_PATH'] as const) {
    if (process.env[k]) env[k] = process.env[k];
  }
  const wasm = loadWasmBackend();
  const wasmInfo = wasmControls()?.info();
  const inUse = backendInfo();
  const checked = inUse.name === 'native' ? load.backend : inUse.name === 'wasm' ? wasm.backend : undefined;
  return {
    kiln: pkg.version,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: { model: cpus()[0]?.model.trim() ?? 'unknown', cores: availableParallelism() },
    backend: backendInfo(),
    native: load.backend
      ? { available: true, isa: info?.isa, threads: info?.threads, poolSize: info?.poolSize, file: nativeSource()?.path, from: nativeSource()?.kind }
      : { available: false, error: load.error },
    wasm: wasm.backend
      ? { available: true, isa: wasmInfo?.isa, threads: wasmInfo?.threads, poolSize: wasmInfo?.poolSize }
      : { available: false, error: wasm.error },
    mpi: diagnoseMpi(),
    env,
    check: checked ? checkGemm(inUse.name, checked) : undefined,
    bf16: load.backend && controls ? checkBf16(load.backend, controls.bf16Info()) : undefined,
  };
}

function diagnoseMpi(): DoctorReport['mpi'] {
  const load = loadMpiBinding();
  const launched = launchedWorldSize() > 0;
  if (!load.binding) return { available: false, error: load.error, launched };
  const library = load.binding.libraryVersion().split(/[\n,]/)[0].trim();
  if (!launched) return { available: true, library, launched };
  const w = initDistributed();
  return { available: true, library, launched, rank: w.rank, worldSize: w.worldSize };
}

/** C = A @ B on random 67 x 45 x 129 operands (odd sizes cross every edge path) on both backends, then a rate. */
function checkGemm(name: string, native: Backend): DoctorReport['check'] {
  const [M, N, K] = [67, 45, 129];
  const generator = new Generator(1);
  const random = (n: number) => rand([n], { generator }).storage as Float32Array;
  const A = random(M * K);
  const B = random(K * N);
  const got = new Float32Array(M * N);
  const want = new Float32Array(M * N);
  native.gemm(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, got, 0);
  jsBackend.gemm(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, want, 0);
  let maxRelError = 0;
  for (let i = 0; i < got.length; i++) maxRelError = Math.max(maxRelError, Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i])));
  const S = 512;
  const [X, Y, Z] = [random(S * S), random(S * S), new Float32Array(S * S)];
  const run = () => native.gemm(false, false, 1, S, S, S, 1, X, 0, Y, 0, 0, Z, 0);
  run();
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 200) { run(); calls++; }
  const gflops512 = (2 * S * S * S * calls) / ((performance.now() - t0) / 1000) / 1e9;
  return { backend: name, maxRelError, agrees: maxRelError < 1e-4, gflops512 };
}

/** The native bf16 GEMM against the reference's on the same odd-sized operands as checkGemm. */
function checkBf16(native: Backend, info: { supported: boolean; active: boolean }): DoctorReport['bf16'] {
  const [M, N, K] = [67, 45, 129];
  const generator = new Generator(2);
  const A = rand([M * K], { generator }).storage as Float32Array;
  const B = rand([K * N], { generator }).storage as Float32Array;
  const got = new Float32Array(M * N);
  const want = new Float32Array(M * N);
  native.gemmBf16?.(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, got, 0);
  jsBackend.gemmBf16!(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, want, 0);
  let err = 0;
  for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i])));
  return { cpu: info.supported, kernels: info.active ? 'vdpbf16ps' : 'rounded float32', agrees: err < 1e-4 };
}

export function formatReport(r: DoctorReport): string {
  const lines = [
    `Kiln ${r.kiln} on Node ${r.node}, ${r.platform}`,
    `CPU: ${r.cpu.model}, ${r.cpu.cores} cores`,
  ];
  const b = r.backend;
  lines.push(b.name === 'native'
    ? `backend in use: native (${b.isa}, ${b.threads} threads)`
    : b.name === 'wasm'
      ? `backend in use: wasm, the same kernels in WebAssembly (${b.isa}, ${b.threads} threads; a few times slower than native): ${b.reason ?? 'native unavailable'}`
      : `backend in use: js, the reference TypeScript backend (much slower): ${b.reason ?? 'native unavailable'}`);
  if (r.native.available) {
    lines.push(`native addon: loaded; ${r.native.isa} kernels, ${r.native.threads} of ${r.native.poolSize} pool threads in use`);
    if (r.native.file) lines.push(`  file: ${r.native.file} (${r.native.from})`);
  } else {
    lines.push(`native addon: unavailable: ${r.native.error}`);
    lines.push(`  fix: install a C compiler (build-essential, or Xcode's command line tools) and run ${NATIVE_BUILD_COMMAND}`);
  }
  lines.push(r.wasm.available
    ? `wasm backend: loads; ${r.wasm.isa} kernels, ${r.wasm.threads} of ${r.wasm.poolSize} pool threads`
    : `wasm backend: unavailable: ${r.wasm.error}`);
  const m = r.mpi;
  if (!m.available) {
    lines.push(`MPI: unavailable (single-process training only): ${m.error}`);
    lines.push(`  for multi-process training: ${MPI_INSTALL_HINT}`);
  } else if (m.launched) {
    lines.push(`MPI: rank ${m.rank} of ${m.worldSize} (${m.library})`);
  } else {
    lines.push(`MPI: binding built (${m.library}); not started by mpirun, so a world of 1`);
  }
  if (r.check) {
    lines.push(`check: ${r.check.backend} GEMM ${r.check.agrees ? 'agrees with' : 'DISAGREES with'} the reference ` +
      `(max relative error ${r.check.maxRelError.toExponential(1)}); 512 x 512 x 512 at ${r.check.gflops512.toFixed(0)} GFLOP/s`);
  }
  const env = Object.entries(r.env).map(([k, v]) => `${k}=${v}`);
  if (r.bf16) {
    lines.push(r.bf16.kernels === 'vdpbf16ps'
      ? 'bf16: AVX512_BF16 present; --precision bf16 runs vdpbf16ps GEMM kernels'
      : `bf16: ${r.bf16.cpu ? 'AVX512_BF16 present but turned off (KILN_BF16=0 or another ISA)' : 'no AVX512_BF16 on this CPU'}; ` +
        '--precision bf16 rounds inputs to bf16 and runs the float32 kernels (the same results, no faster)');
    if (!r.bf16.agrees) lines.push('check: native bf16 GEMM DISAGREES with the reference');
  }
  if (env.length > 0) lines.push(`environment: ${env.join(' ')}`);
  return lines.join('\n');
}

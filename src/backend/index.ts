// Chooses the backend at first use, in the order native, wasm, js: the native addon when it loads, else the same
// kernels compiled to WebAssembly (no compiler needed), else the reference backend. KILN_BACKEND=native|wasm|js forces
// a choice; a missing addon is reported once, never fatal.

import type { Backend } from './backend.js';
import { jsBackend } from './js/index.js';
import { loadNativeBackend, type NativeInfo } from './native/index.js';
import { loadWasmBackend } from './wasm/node.js';

export type { Backend, DType, AnyArray, FloatArray, UnaryOp, BinaryOp, ReduceOp, Conv2dShape,
  Pool2dShape } from './backend.js';
export { jsBackend };

/** What backendInfo() reports about the backend in use. */
export interface BackendInfo {
  /** The backend in use: 'native', 'wasm' or 'js'. */
  name: string;
  /** Instruction set the kernels chose ('avx512', 'avx2', 'neon', 'scalar'; 'simd128' on wasm), native or wasm. */
  isa?: string;
  /** Threads of the kernels' pool, when native or wasm is in use. */
  threads?: number;
  /** Why the native backend (and, on js, the wasm one) is not in use, when it is not. */
  reason?: string;
}

/** How to build the native addon by hand; the fallback warning and `kiln doctor` both say it. */
export const NATIVE_BUILD_COMMAND = '`npm rebuild kiln` in your project (where npm did not run Kiln\'s install ' +
  'script: after --ignore-scripts, or with npm 11 when it is not approved, `npm install-scripts approve kiln && npm ' +
  "rebuild kiln`), or `node scripts/build-native.mjs` in a checkout of Kiln";

let active: Backend | null = null;
let info: BackendInfo = { name: 'js' };
let warned = false;

const CHOICES = ['native', 'wasm', 'js'] as const;
type Choice = typeof CHOICES[number];

function notice(message: string): void {
  if (warned) return;
  warned = true;
  process.emitWarning(message, 'KilnWarning');
}

function choose(): Backend {
  const wanted = (process.env.KILN_BACKEND ?? '').trim().toLowerCase();
  if (wanted !== '' && !(CHOICES as readonly string[]).includes(wanted)) {
    throw new Error(`KILN_BACKEND must be 'native', 'wasm' or 'js', got '${wanted}'`);
  }
  if (wanted === 'js') {
    info = { name: 'js', reason: 'KILN_BACKEND=js' };
    return jsBackend;
  }
  // KILN_BACKEND=wasm skips the addon; a forced backend that cannot load falls back like any other (with the notice)
  const native = wanted === 'wasm' ? { error: 'KILN_BACKEND=wasm' } : loadNativeBackend();
  if (native.backend) {
    info = { name: 'native', isa: native.info?.isa, threads: native.info?.threads };
    return native.backend;
  }
  const wasm = loadWasmBackend();
  if (wasm.backend && wanted === 'wasm') {
    info = { name: 'wasm', isa: wasm.info?.isa, threads: wasm.info?.threads, reason: 'KILN_BACKEND=wasm' };
    return wasm.backend;
  }
  if (wasm.backend) {
    info = { name: 'wasm', isa: wasm.info?.isa, threads: wasm.info?.threads, reason: native.error };
    notice(`kiln: the native backend is unavailable (${native.error}); running on the WebAssembly backend (the same ` +
      `kernels, SIMD128, ${wasm.info?.threads} threads), which is a few times slower. Build the native one with a C ` +
      `compiler present: ${NATIVE_BUILD_COMMAND}.`);
    return wasm.backend;
  }
  info = { name: 'js', reason: `${native.error}; wasm: ${wasm.error}` };
  notice(`kiln: the native backend is unavailable (${native.error}) and so is the WebAssembly one (${wasm.error}); ` +
    `running on the reference TypeScript backend, which is much slower. Build the native one with a C compiler ` +
    `present: ${NATIVE_BUILD_COMMAND}.`);
  return jsBackend;
}

/** The backend every tensor op runs on. */
export function backend(): Backend {
  if (!active) active = choose();
  return active;
}

/** Which backend is in use, its instruction set and thread count, or why native is not in use. */
export function backendInfo(): BackendInfo {
  backend();
  return { ...info };
}

/** Switches the backend for the rest of the process ('js', 'wasm' or 'native'); used by tests and benchmarks. */
export function setBackend(name: Choice): BackendInfo {
  if (name === 'js') {
    active = jsBackend;
    info = { name: 'js', reason: 'chosen with setBackend' };
    return backendInfo();
  }
  if (name === 'wasm') {
    const wasm = loadWasmBackend();
    if (!wasm.backend) throw new Error(`setBackend: the wasm backend is unavailable: ${wasm.error}`);
    active = wasm.backend;
    info = { name: 'wasm', isa: wasm.info?.isa, threads: wasm.info?.threads, reason: 'chosen with setBackend' };
    return backendInfo();
  }
  if (name !== 'native') throw new Error(`setBackend: expected 'native', 'wasm' or 'js', got '${String(name)}'`);
  const native = loadNativeBackend();
  if (!native.backend) throw new Error(`setBackend: the native backend is unavailable: ${native.error}`);
  active = native.backend;
  info = { name: 'native', isa: native.info?.isa, threads: native.info?.threads };
  return backendInfo();
}

export type { NativeInfo };

// Chooses the backend at first use: the native addon when it loads, the reference backend otherwise.
// KILN_BACKEND=js|native forces a choice; a missing addon is reported once, never fatal.

import type { Backend } from './backend.js';
import { jsBackend } from './js/index.js';
import { loadNativeBackend, type NativeInfo } from './native/index.js';

export type { Backend, DType, AnyArray, FloatArray, UnaryOp, BinaryOp, ReduceOp } from './backend.js';
export { jsBackend };

export interface BackendInfo {
  /** The backend in use: 'native' or 'js'. */
  name: string;
  /** Instruction set the native kernels chose ('avx512', 'avx2', 'neon', 'scalar'), when native is in use. */
  isa?: string;
  /** Worker threads of the native pool, when native is in use. */
  threads?: number;
  /** Why the native backend is not in use, when it is not. */
  reason?: string;
}

/** How to build the native addon by hand; the fallback warning and `kiln doctor` both say it. */
export const NATIVE_BUILD_COMMAND = '`npm rebuild kiln` in your project (where npm did not run Kiln\'s install ' +
  'script: after --ignore-scripts, or with npm 11 when it is not approved, `npm install-scripts approve kiln && npm ' +
  "rebuild kiln`), or `node scripts/build-native.mjs` in a checkout of Kiln";

let active: Backend | null = null;
let info: BackendInfo = { name: 'js' };
let warned = false;

function choose(): Backend {
  const wanted = (process.env.KILN_BACKEND ?? '').trim().toLowerCase();
  if (wanted !== '' && wanted !== 'js' && wanted !== 'native') {
    throw new Error(`KILN_BACKEND must be 'js' or 'native', got '${wanted}'`);
  }
  if (wanted === 'js') {
    info = { name: 'js', reason: 'KILN_BACKEND=js' };
    return jsBackend;
  }
  const native = loadNativeBackend();
  if (native.backend) {
    info = { name: 'native', isa: native.info?.isa, threads: native.info?.threads };
    return native.backend;
  }
  info = { name: 'js', reason: native.error };
  if (!warned) {
    warned = true;
    process.emitWarning(`kiln: the native backend is unavailable (${native.error}); running on the reference ` +
      `TypeScript backend, which is much slower. Build it with a C compiler present: ${NATIVE_BUILD_COMMAND}.`,
    'KilnWarning');
  }
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

/** Switches the backend for the rest of the process ('js' or 'native'); used by tests and benchmarks. */
export function setBackend(name: 'js' | 'native'): BackendInfo {
  if (name === 'js') {
    active = jsBackend;
    info = { name: 'js', reason: 'chosen with setBackend' };
    return backendInfo();
  }
  const native = loadNativeBackend();
  if (!native.backend) throw new Error(`setBackend: the native backend is unavailable: ${native.error}`);
  active = native.backend;
  info = { name: 'native', isa: native.info?.isa, threads: native.info?.threads };
  return backendInfo();
}

export type { NativeInfo };

// Loads the WebAssembly backend in Node: reads kiln.wasm (shipped next to this file's source), and runs the pool's
// workers on worker_threads over the shared memory. Never throws: returns { error } when wasm cannot run here.

import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Backend } from '../backend.js';
import { packageRoot } from '../native/index.js';
import { createWasmBackend, type WasmControls, type WasmWorkerInit } from './index.js';

/** What `loadWasmBackend` found: the backend and its instruction set and threads, or why it is unavailable. */
export interface WasmLoad { backend?: Backend; info?: { isa: string; threads: number }; error?: string }

// The worker's whole program: join the pool on the shared memory and never return. CommonJS, evaluated as is.
// kiln_worker_main never returns. If it stops anyway (a trap in a kernel), the pool's caller waits for the worker
// with its event loop blocked, so no 'error' event could ever say why: the worker writes the reason to stderr
// itself, synchronously. That is how a trap ("memory access out of bounds" in a bulk-memory instruction, after the
// caller grew the memory) was found behind a CI run that hung; wasm/malloc.c has the fix.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const { module, memory, tid, stackTop } = workerData;
const instance = new WebAssembly.Instance(module, { env: { memory } });
instance.exports.kiln_set_stack_pointer(stackTop);
try {
  instance.exports.kiln_worker_main(tid);
  writeSync(2, 'kiln: wasm pool worker ' + tid + ' returned\\n');
} catch (e) {
  writeSync(2, 'kiln: wasm pool worker ' + tid + ' failed: ' + (e && e.stack || e) + '\\n');
  throw e;
}
`;

// A worker inherits the process's Node options; under --input-type=module (node -e with imports) it would read the
// CommonJS source above as an ES module, where `require` is undefined. Those workers get the options without it.
const workerExecArgv = process.execArgv.some((a) => a.startsWith('--input-type'))
  ? process.execArgv.filter((a, i, all) => !a.startsWith('--input-type') && all[i - 1] !== '--input-type') : undefined;
let workerFailed = false;

function spawnNodeWorker(init: WasmWorkerInit): void {
  const w = new Worker(WORKER_SOURCE, { eval: true, workerData: init, stdout: false, stderr: false, execArgv: workerExecArgv });
  // A worker that fails to start never joins the pool: kernels run on the threads that did, with one warning.
  w.on('error', (e) => {
    if (!workerFailed) process.emitWarning(`kiln: a wasm pool worker failed to start (${e.message}); kernels use the threads that joined`);
    workerFailed = true;
  });
  w.unref(); // a sleeping worker never keeps the process alive
}

/** Threads for the pool: KILN_THREADS, else every core Node reports. */
function threadCount(): number {
  const raw = process.env.KILN_THREADS;
  if (raw !== undefined && raw.trim() !== '') {
    const n = Number(raw);
    if (Number.isInteger(n) && n > 0) return Math.min(n, 255);
  }
  return Math.max(1, Math.min(255, availableParallelism()));
}

/** The wasm file: KILN_WASM_PATH, else src/backend/wasm/kiln.wasm in Kiln's folder. */
export function wasmPath(): string {
  const custom = process.env.KILN_WASM_PATH;
  return custom && custom.trim() !== '' ? custom : join(packageRoot(), 'src', 'backend', 'wasm', 'kiln.wasm');
}

let cached: (WasmLoad & { controls?: WasmControls }) | undefined;

/** Loads the module once (threads on worker_threads) and caches the result; never throws. */
export function loadWasmBackend(): WasmLoad {
  if (cached) return { backend: cached.backend, info: cached.info, error: cached.error };
  try {
    const path = wasmPath();
    if (typeof WebAssembly !== 'object') cached = { error: 'this JavaScript engine has no WebAssembly' };
    else if (!existsSync(path)) cached = { error: `${path} is missing` };
    else {
      const module = new WebAssembly.Module(readFileSync(path));
      const heapBytes = process.env.KILN_WASM_HEAP_BYTES;
      if (heapBytes !== undefined && heapBytes.trim() !== '' && !(Number.isSafeInteger(Number(heapBytes)) && Number(heapBytes) >= 0)) {
        throw new Error(`KILN_WASM_HEAP_BYTES must be a whole number of bytes (0 keeps tensors out of wasm memory), got '${heapBytes}'`);
      }
      const wasm = createWasmBackend({ module, shared: true, threads: threadCount(), spawnWorker: spawnNodeWorker, source: path,
        callerMayBlock: true,
        heapBytes: heapBytes !== undefined && heapBytes.trim() !== '' ? Number(heapBytes) : undefined });
      const isa = process.env.KILN_ISA;
      if (isa && isa.trim() !== '') wasm.controls.setIsa(isa.trim());
      const i = wasm.controls.info();
      cached = { backend: wasm.backend, info: { isa: i.isa, threads: i.threads }, controls: wasm.controls };
    }
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    cached = { error: `the wasm module failed to load: ${msg}` };
  }
  return { backend: cached.backend, info: cached.info, error: cached.error };
}

/** The wasm backend's controls (instruction set, threads, GEMM blocking), or undefined when it is not loaded. */
export function wasmControls(): WasmControls | undefined {
  loadWasmBackend();
  return cached?.controls;
}

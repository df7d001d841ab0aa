// The WebAssembly backend in a browser (or any host with fetch and no Node): compiles kiln-single.wasm, given as a
// URL or bytes, and offers it to the backend chooser, which prefers it to the reference backend. With `threads` and
// the shared-memory build (kiln.wasm) and a pool worker script, it runs the kernels on several threads where the
// page is cross-origin isolated (SharedArrayBuffer available); elsewhere it stays on one thread.

import { backendInfo, registerBackend, setBackend, type BackendInfo, type BackendLoad } from '../index.js';
import { createWasmBackend, type WasmWorkerInit } from './index.js';

/** Where the module comes from: its URL (fetched), its bytes, or a compiled module. */
export type WasmSource = string | URL | ArrayBuffer | Uint8Array | WebAssembly.Module;

async function compile(source: WasmSource): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return source;
  if (source instanceof ArrayBuffer || source instanceof Uint8Array) return WebAssembly.compile(source as BufferSource);
  const res = await fetch(source);
  if (!res.ok) throw new Error(`useWasmBackend: fetching ${String(source)} gave HTTP ${res.status}`);
  return WebAssembly.compile(await res.arrayBuffer());
}

/** How useWasmBackend may run the kernels on several threads. */
export interface WasmThreadOptions {
  /** Threads, the calling one included (e.g. navigator.hardwareConcurrency); 1 or absent: one thread. */
  threads?: number;
  /** The shared-memory build, kiln.wasm (URL, bytes or module), used instead of `source` when threads can run. */
  sharedSource?: WasmSource;
  /**
   * A module worker script that joins the pool: `import { runWasmWorker } from 'kiln';
   * self.onmessage = (e) => runWasmWorker(e.data);` (bundled for the browser).
   */
  workerUrl?: string | URL;
}

/** Whether this context can share wasm memory with workers (cross-origin isolated, with Worker and SharedArrayBuffer). */
function canShareMemory(): boolean {
  const g = globalThis as { crossOriginIsolated?: boolean; Worker?: unknown; SharedArrayBuffer?: unknown };
  return g.crossOriginIsolated === true && typeof g.Worker === 'function' && typeof g.SharedArrayBuffer === 'function';
}

/** Whether the calling thread may block in memory.atomic.wait: in a worker yes, on a page's main thread no. */
function callerMayBlock(): boolean {
  const g = globalThis as { WorkerGlobalScope?: new () => unknown };
  return typeof g.WorkerGlobalScope === 'function' && globalThis instanceof g.WorkerGlobalScope;
}

/** Starts one pool worker from the script at `url` and hands it its part of the pool. */
function spawner(url: string | URL): (init: WasmWorkerInit) => void {
  return (init) => {
    const W = (globalThis as unknown as { Worker: new (u: string | URL, o: { type: 'module'; name: string }) => { postMessage(m: unknown): void } }).Worker;
    new W(url, { type: 'module', name: `kiln-wasm-${init.tid}` }).postMessage(init);
  };
}

/**
 * Loads kiln-single.wasm and makes it the backend (await it before the first tensor op; later ops switch to it).
 * With `options.threads` above 1, `sharedSource` (kiln.wasm) and `workerUrl`, in a cross-origin isolated page or
 * worker, it loads kiln.wasm instead and runs the kernels on that many threads (workers join as they start; kernels
 * use those that have). Resolves with backendInfo(); on failure rejects with the reason, and the reference backend
 * stays in use.
 * `await kiln.useWasmBackend(new URL('kiln-single.wasm', location.href))`
 */
export async function useWasmBackend(source: WasmSource, options: WasmThreadOptions = {}): Promise<BackendInfo> {
  if (typeof WebAssembly !== 'object') throw new Error('useWasmBackend: this JavaScript engine has no WebAssembly');
  const threads = Math.max(1, Math.min(255, Math.floor(options.threads ?? 1)));
  const threaded = threads > 1 && options.sharedSource !== undefined && options.workerUrl !== undefined && canShareMemory();
  const from = threaded ? options.sharedSource! : source;
  const module = await compile(from);
  let loaded: BackendLoad | null = null;
  registerBackend({
    name: 'wasm',
    label: 'WebAssembly',
    load: () => {
      if (loaded) return loaded;
      try {
        const label = String(from instanceof WebAssembly.Module ? 'module' : from);
        const wasm = threaded
          ? createWasmBackend({ module, shared: true, threads, spawnWorker: spawner(options.workerUrl!), callerMayBlock: callerMayBlock(), source: label })
          : createWasmBackend({ module, shared: false, threads: 1, source: label });
        const i = wasm.controls.info();
        loaded = { backend: wasm.backend, isa: i.isa, threads: i.threads };
      } catch (e) {
        loaded = { error: `the wasm module failed to load: ${e instanceof Error ? e.message : String(e)}` };
      }
      return loaded;
    },
  });
  return setBackend('wasm');
}

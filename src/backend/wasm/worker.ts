// The body of one pool worker of the wasm backend, for any host: a Web Worker script (or a worker_threads one)
// receives the WasmWorkerInit its spawner was given and calls runWasmWorker with it. No Node built-ins.
//
//   // worker.js, in a browser:  self.onmessage = (e) => runWasmWorker(e.data);
//   // the page:  createWasmBackend({ module, shared: true, threads, callerMayBlock: false,
//   //   spawnWorker: (init) => new Worker(new URL('./worker.js', import.meta.url), { type: 'module' }).postMessage(init) })
//
// The worker joins the pool on the shared memory and never returns: it sleeps (memory.atomic.wait) between jobs.

import type { WasmWorkerInit } from './index.js';

interface WorkerExports {
  kiln_set_stack_pointer(top: number): void;
  kiln_worker_main(tid: number): void;
}

/** Instantiates the module on the shared memory, takes the stack the caller allocated for it, and serves the pool. */
export function runWasmWorker(init: WasmWorkerInit): void {
  const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory } });
  const ex = instance.exports as unknown as WorkerExports;
  ex.kiln_set_stack_pointer(init.stackTop);
  ex.kiln_worker_main(init.tid);
}

// The Node side of backend choice: registers the native addon (native/) and the WebAssembly build of the same kernels
// on worker_threads (wasm/node.ts) with the chooser in backend/index.ts.
// Only Node entries import this file (src/index.ts, the CLI, benches); the browser entry never reaches it.

import { NATIVE_BUILD_COMMAND, registerBackend } from './index.js';
import { loadNativeBackend, type NativeInfo } from './native/index.js';
import { loadWasmBackend } from './wasm/node.js';

export * from './index.js';
export type { NativeInfo };

/** Offers the native addon and the wasm backend to the chooser (idempotent); called when this module loads. */
export function registerNodeBackends(): void {
  registerBackend({
    name: 'native',
    load: () => {
      const n = loadNativeBackend();
      return n.backend ? { backend: n.backend, isa: n.info?.isa, threads: n.info?.threads } : { error: n.error };
    },
    fallbackHint: `Build the native one with a C compiler present: ${NATIVE_BUILD_COMMAND}.`,
  });
  registerBackend({
    name: 'wasm',
    label: 'WebAssembly',
    load: () => {
      const w = loadWasmBackend();
      return w.backend ? { backend: w.backend, isa: w.info?.isa, threads: w.info?.threads } : { error: w.error };
    },
    fallbackNote: (load) => ` (the same kernels, SIMD128, ${load.threads} threads), which is a few times slower`,
  });
}

// Loading the Node entry is what makes the native backend available: the registration must precede the first op.
registerNodeBackends();

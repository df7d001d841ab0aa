// The Node side of backend choice: registers the native addon (native/) with the chooser in backend/index.ts.
// Only Node entries import this file (src/index.ts, the CLI, benches); the browser entry never reaches it.

import { NATIVE_BUILD_COMMAND, registerBackend } from './index.js';
import { loadNativeBackend, type NativeInfo } from './native/index.js';

export * from './index.js';
export type { NativeInfo };

/** Offers the native addon to the chooser (idempotent); called when this module loads. */
export function registerNodeBackends(): void {
  registerBackend({
    name: 'native',
    load: () => {
      const n = loadNativeBackend();
      return n.backend ? { backend: n.backend, isa: n.info?.isa, threads: n.info?.threads } : { error: n.error };
    },
    fallbackHint: `Build it with a C compiler present: ${NATIVE_BUILD_COMMAND}.`,
  });
}

// Loading the Node entry is what makes the native backend available: the registration must precede the first op.
registerNodeBackends();

// One thread of the WebAssembly backend's pool, started by the training worker when the page is cross-origin
// isolated: it joins the pool on the shared memory it is sent and serves kernels until the page closes.

import { runWasmWorker } from 'kiln';

self.onmessage = (e) => runWasmWorker(e.data);

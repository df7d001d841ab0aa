// Kiln's browser entry (the `browser` export condition): tensors and autograd, nn, optim, tokenizers, datasets over
// in-memory data, models, the training loop with in-memory checkpoints, and generation, on the WebAssembly backend
// (useWasmBackend) or the js one. It reaches no Node built-in: test/bundle/browser-bundle.test.ts bundles it for the browser.

export * from './tensor/index.js';
export {
  backendInfo, setBackend, registerBackend, availableBackends,
  type BackendInfo, type BackendProvider, type BackendLoad, type DType,
} from './backend/index.js';
export { useWasmBackend, type WasmSource, type WasmThreadOptions } from './backend/wasm/browser.js';
export { runWasmWorker } from './backend/wasm/worker.js';
export type { WasmWorkerInit } from './backend/wasm/index.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export * as models from './models/index.js';
export * as data from './data/index.browser.js';
export * as train from './train/index.browser.js';
export { encodeSafetensors, decodeSafetensors, type SafetensorsFile } from './io/safetensors-codec.js';
export { Trainer, lrFind, NonFiniteError, type MemoryCheckpoint } from './train/index.browser.js';
export { DataLoader, TensorDataset, trainValidationSplit } from './data/index.browser.js';
export { Module, Parameter } from './nn/index.js';
export * as infer from './infer/index.browser.js';
export * as hub from './hub/index.browser.js';

// Kiln's public API. Everything users, examples and the CLI touch is exported here.

// The Node additions first (native backend, file access), so they are in place before any op runs.
import './node.js';

export * from './tensor/index.js';
export { backendInfo, setBackend, type BackendInfo, type DType, type AnyArray, type FloatArray } from './backend/node.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export * as models from './models/index.js';
export * as data from './data/index.js';
export * as train from './train/index.js';
export { saveSafetensors, loadSafetensors, encodeSafetensors, decodeSafetensors, type SafetensorsFile, type SafetensorsDType, type EncodeOptions } from './io/safetensors.js';
export { Trainer, lrFind, NonFiniteError } from './train/index.js';
export { DataLoader, TensorDataset, trainValidationSplit } from './data/index.js';
export { Module, Parameter } from './nn/index.js';
export * as recipes from './recipes/index.js';
export * as infer from './infer/index.js';
export * as hub from './hub/index.js';
export * as distributed from './distributed/index.js';

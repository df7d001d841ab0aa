// Kiln's public API. Everything users, examples and the CLI touch is exported here.

export * from './tensor/index.js';
export { backendInfo, setBackend, type BackendInfo, type DType } from './backend/index.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export * as models from './models/index.js';
export * as data from './data/index.js';
export { Module, Parameter } from './nn/index.js';

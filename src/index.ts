// Kiln's public API. Everything users, examples and the CLI touch is exported here.

export * from './tensor/index.js';
export { backendInfo, setBackend, type BackendInfo, type DType } from './backend/index.js';

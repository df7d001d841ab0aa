// What Kiln's Node entry adds to the browser-safe core before anything runs: the native backend and file access.
// src/index.ts imports it; so does the test runner (scripts/test.mjs) for tests that import core modules directly.

export { registerNodeBackends } from './backend/node.js';
export { registerNodeFiles } from './io/files-node.js';

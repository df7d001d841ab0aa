// data in the browser build: datasets over in-memory data, batching, splits, tokenizers, token-window samplers
// and n-gram baselines. Files, shards, MNIST and the bundled corpora are in the Node build only (index.ts).

export { TensorDataset, ArrayDataset, Subset, fromFunction, takeRows, type Dataset } from './dataset.js';
export { DataLoader, defaultCollate, type DataLoaderOptions, type DataLoaderState, type Collated } from './dataloader.js';
export { trainValidationSplit, randomSplit, type SplitOptions } from './split.js';
export * from './tokenizer/index.js';
export { decodeUtf8Strict, firstInvalidUtf8 } from './text/utf8.js';
export {
  TokenWindowSampler, memoryTokens, type TokenReader, sequentialWindows, countSequentialWindows,
  type TokenBatch, type WindowSamplerOptions, type WindowSamplerState, type SequentialWindowOptions,
} from './shards/sampler.js';
export { ngramBaselines, type NgramBaselines, type NgramOptions, type BaselineScore, type TokenSource } from './baselines.js';

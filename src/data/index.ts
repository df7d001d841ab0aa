// data: datasets, batching with seeded shuffles, train/validation splits, MNIST, tokenizers and text sources.
// Exported as kiln.data.

export { TensorDataset, ArrayDataset, Subset, fromFunction, takeRows, type Dataset } from './dataset.js';
export { DataLoader, defaultCollate, type DataLoaderOptions, type DataLoaderState, type Collated } from './dataloader.js';
export { trainValidationSplit, randomSplit, type SplitOptions } from './split.js';
export { loadMnist, type MnistSplit } from './mnist.js';
export * from './tokenizer/index.js';
export * from './text/index.js';
export * from './shards/index.js';
export { ngramBaselines, type NgramBaselines, type NgramOptions, type BaselineScore, type TokenSource } from './baselines.js';

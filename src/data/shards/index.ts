// Token shards: the binary file format, building cached train/validation shards from a corpus, and
// sampling token windows from them.

export { ShardWriter, TokenShard, writeShard, bytesPerToken, SHARD_MAGIC, SHARD_VERSION, SHARD_HEADER_BYTES } from './format.js';
export { buildShards, openShards, type BuildShardsOptions, type ShardSet, type ShardsMeta, type ShardEntry } from './build.js';
export {
  TokenWindowSampler,
  memoryTokens,
  type TokenReader,
  sequentialWindows,
  countSequentialWindows,
  type TokenBatch,
  type WindowSamplerOptions,
  type WindowSamplerState,
  type SequentialWindowOptions,
} from './sampler.js';

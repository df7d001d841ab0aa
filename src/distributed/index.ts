// distributed: data-parallel training over MPI (the process group, collectives, the DistributedDataParallel
// wrapper, per-rank data shards). Exported as kiln.distributed; a plain `node` run is a world of one.

export {
  init, rank, worldSize, isMain, allReduce, broadcast, barrier, launchedWorldSize, type World, type ReduceOp,
} from './process-group.js';
export { DistributedDataParallel, type DistributedDataParallelOptions, type SyncStats } from './ddp.js';
export { shardBatch, shardIndices, shardRange, type ShardIndicesOptions, type Batch } from './shard.js';

// train in the browser build: the Trainer with checkpoints in memory (and in IndexedDB), evaluation, held-out loss
// and the learning-rate finder. The run folder, Ctrl-C, the terminal bar, mpirun and plots are Node only (index.ts).

export {
  BaseTrainer as Trainer, type MemoryCheckpoint,
} from './base-trainer.js';
export { isMemoryCheckpoint } from './memory-checkpoint.js';
export {
  NonFiniteError, type TrainerOptions, type FitOptions, type FitResult, type StopReason, type EvalResult,
  type BatchSource, type Batch, type LossFn, type LossResult, type TrainableModel, type EarlyStoppingOptions,
  type CheckpointOptions, type StepInfo, type EvalInfo,
} from './options.js';
export type { JSONValue, TrainerState } from './checkpoint-state.js';
export { heldOutLoss, type HeldOutLoss, type HeldOutOptions, type LanguageModel } from './evaluation.js';
export { lrFind, type LrFindOptions, type LrFindResult } from './lr-find.js';
export { countCorrect, type MetricsRecord } from './metrics-record.js';
export { formatLine, type ProgressMode } from './progress-sink.js';
export { saveCheckpointToIndexedDB, loadCheckpointFromIndexedDB } from './indexeddb.js';

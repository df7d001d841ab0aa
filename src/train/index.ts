// train: the Trainer loop, evaluation, early stopping, metrics log, progress, checkpoints with exact resume,
// and the learning-rate finder. Exported as kiln.train.

export {
  Trainer, NonFiniteError, type TrainerOptions, type FitOptions, type FitResult, type StopReason, type EvalResult,
  type BatchSource, type Batch, type LossFn, type LossResult, type TrainableModel, type EarlyStoppingOptions,
  type CheckpointOptions, type StepInfo, type EvalInfo, type StepSchedule, type JSONValue,
} from './trainer.js';
export { heldOutLoss, type HeldOutLoss, type HeldOutOptions, type LanguageModel } from './evaluation.js';
export { lrFind, type LrFindOptions, type LrFindResult } from './lr-find.js';
export { MetricsLog, readMetrics, countCorrect, type MetricsRecord } from './metrics.js';
export { Progress, formatLine, type ProgressMode } from './progress.js';
export type { ProgressSink } from './progress-sink.js';
export { BaseTrainer } from './base-trainer.js';
export type { MemoryCheckpoint } from './memory-checkpoint.js';
export {
  listCheckpoints, readCheckpoint, readTrainerState, writeCheckpoint, checkModelMatches, type TrainerState, type CheckpointInfo, type LoadedCheckpoint,
} from './checkpoint.js';
export {
  plotRun, plotLrFind, lineChartSvg, writeChart, type PlotSeries, type LineChartOptions, type LrFindPlotInput, type PlotRunOptions,
} from './plot.js';

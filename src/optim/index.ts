// optim: optimizers, learning-rate schedules and gradient clipping. Exported as kiln.optim.

export { Optimizer, type ParamGroup, type ParamGroupInput, type ParamsInput, type OptimizerStateDict, type ParamState } from './optimizer.js';
export { SGD, type SGDOptions } from './sgd.js';
export { Adam, AdamW, type AdamOptions } from './adam.js';
export { Scheduler, constant, stepDecay, linearWarmup, cosineWithWarmup, oneCycle, type Schedule } from './schedule.js';
export { clipGradNorm, gradNorm } from './clip.js';
export { ReduceLROnPlateau, type ReduceLROnPlateauOptions, type ReduceLROnPlateauState } from './plateau.js';
export { OneCycle, type OneCycleOptions } from './one-cycle.js';

// The MNIST MLP of workload T2 on the Trainer: 784-256-256-10, ReLU, cross-entropy, Adam lr 1e-3, batch 128,
// a new seeded order each epoch, with a stratified validation hold-out, early stopping, checkpoints in a run
// directory (resumable), metrics.jsonl and a progress bar. Also the learning-rate range test.
// Run: npx tsx examples/mnist-trainer.ts                       (3 epochs into runs/mnist-trainer)
//      npx tsx examples/mnist-trainer.ts --resume              (continue the newest checkpoint)
//      npx tsx examples/mnist-trainer.ts --lr-find             (range test, then 1 epoch at too small, suggested, too large)
//
// Measured (native backend, 2 cores): test accuracy after 3 epochs over seeds 0-4 is 91.10 / 91.30 / 91.45 /
// 91.65 / 92.35% (mean 91.57%); the plain loop of examples/mnist.ts gives 92.25 / 91.10 / 91.50 / 91.95 / 91.15%
// (mean 91.59%): the same accuracy, on 7,600 digits instead of 8,000 (400 are held out for early stopping).
// The range test (lr 1e-6 to 1 over 150 steps, smoothed loss): flat at 2.30 up to 1e-4 (crawling), falling
// fastest near 2e-3 (suggested 2.00e-3; lowest loss at 6.2e-2), blowing up past 0.17 (4.61, sweep stopped).
// One epoch from scratch at each: lr 1e-6 (too small) val loss 2.3036, test accuracy 11.45% (stuck);
// lr 2e-3 (suggested) val loss 0.4024, 87.75%; lr 0.3 (too large) val loss 2.3405, 10.10% (overshoots).

import * as kiln from 'kiln';
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { nn, optim } = kiln;

export interface MnistTrainerOptions {
  epochs?: number;
  lr?: number;
  batchSize?: number;
  seed?: number;
  /** Training digits held out for validation (early stopping), stratified by label (default 400). */
  validation?: number;
  patience?: number;
  /** Layer widths (default the T2 MLP 784-256-256-10; tests use a smaller one). */
  sizes?: number[];
  /** Use only this many training digits (quick tests). */
  limit?: number;
  runDir?: string;
  resume?: boolean;
  progress?: kiln.train.ProgressMode;
}

export interface MnistTrainerResult {
  accuracy: number;
  bestValLoss: number | null;
  bestStep: number | null;
  stopReason: kiln.train.StopReason;
  step: number;
  trainer: kiln.Trainer<kiln.Tensor[]>;
}

/** The T2 split as datasets, with a stratified validation hold-out from the training digits. */
export function mnistData(options: { validation?: number; limit?: number; seed?: number } = {}) {
  const { train, test } = kiln.data.loadMnist();
  let trainAll: kiln.data.Dataset<kiln.Tensor[]> = new kiln.TensorDataset(train.x, train.y);
  let labels = (i: number): number => train.y.storage[i];
  if (options.limit !== undefined && options.limit < trainAll.length) {
    const picked = kiln.trainValidationSplit(trainAll, { validation: options.limit, seed: 123, stratify: train.y }).validation;
    trainAll = picked;
    labels = (i) => train.y.storage[picked.indices[i]];
  }
  const split = kiln.trainValidationSplit(trainAll, { validation: options.validation ?? 400, seed: options.seed ?? 0, stratify: labels });
  return { train: split.train, validation: split.validation, test: new kiln.TensorDataset(test.x, test.y) };
}

function makeTrainer(options: MnistTrainerOptions, data = mnistData(options)) {
  const { epochs = 3, lr = 1e-3, batchSize = 128, seed = 0, patience = 2 } = options;
  kiln.manualSeed(seed);
  const sizes = options.sizes ?? [784, 256, 256, 10];
  const model = new nn.MLP(sizes);
  const optimizer = new optim.Adam(model.parameters(), { lr });
  const trainer = new kiln.Trainer<kiln.Tensor[]>({
    model, optimizer,
    train: new kiln.DataLoader(data.train, { batchSize, shuffle: true, seed: seed + 1 }),
    validation: new kiln.DataLoader(data.validation, { batchSize: 1000 }),
    epochs, metrics: ['accuracy'], earlyStopping: { patience, restoreBest: true }, logEvery: 10, seed,
    runDir: options.runDir, checkpoints: options.runDir ? { keepLast: 2 } : false, progress: options.progress ?? 'auto',
    config: { model: { sizes, activation: 'relu' }, optimizer: { name: 'Adam', lr }, batchSize, epochs, seed },
  });
  return { trainer, model, data };
}

/** Test accuracy of a model over a dataset of [x, y] rows. */
export function accuracy(model: kiln.nn.MLP, data: kiln.data.TensorDataset): number {
  model.eval();
  const [x, y] = data.tensors;
  const acc = kiln.noGrad(() => model.forward(x)).argmax(1).eq(y).to('float32').mean().item();
  model.train();
  return acc;
}

export async function trainMnistWithTrainer(options: MnistTrainerOptions = {}): Promise<MnistTrainerResult> {
  const { trainer, model, data } = makeTrainer(options);
  const r = await trainer.fit({ resume: options.resume });
  return {
    accuracy: accuracy(model, data.test), bestValLoss: r.bestValLoss, bestStep: r.bestStep, stopReason: r.stopReason,
    step: r.step, trainer,
  };
}

/**
 * The learning-rate range test on the T2 model, then one epoch at a rate far too small, at the suggestion, and
 * at a rate far too large, to show the crawl, the good rate and the overshoot.
 */
export async function mnistLrFind(options: MnistTrainerOptions & { steps?: number } = {}) {
  const data = mnistData(options);
  const { trainer } = makeTrainer({ ...options, runDir: undefined }, data);
  const found = trainer.lrFind({ minLr: 1e-6, maxLr: 1, steps: options.steps ?? 150 });
  const runs: { lr: number; label: string; valLoss: number; accuracy: number }[] = [];
  for (const [label, lr] of [['too small', 1e-6], ['suggested', found.suggestedLr], ['too large', 0.3]] as const) {
    const t = makeTrainer({ ...options, lr, epochs: 1, runDir: undefined, progress: false }, data);
    await t.trainer.fit();
    runs.push({ label, lr, valLoss: t.trainer.evaluate().loss, accuracy: accuracy(t.model, data.test) });
  }
  return { found, runs };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      'run-dir': { type: 'string', default: 'runs/mnist-trainer' }, resume: { type: 'boolean', default: false },
      fresh: { type: 'boolean', default: false }, epochs: { type: 'string' }, lr: { type: 'string' },
      'lr-find': { type: 'boolean', default: false },
    },
  });
  if (values['lr-find']) {
    const { found, runs } = await mnistLrFind();
    console.log('lr range test (smoothed loss):');
    for (let i = 0; i < found.lrs.length; i += 10) console.log(`  lr ${found.lrs[i].toExponential(2)}  loss ${found.smoothed[i].toFixed(4)}`);
    console.log(`suggested lr ${found.suggestedLr.toExponential(2)} (lowest loss at ${found.minLossLr.toExponential(2)}; sweep ${found.stoppedBy})`);
    for (const r of runs) {
      console.log(`1 epoch at lr ${r.lr.toExponential(2)} (${r.label}): val loss ${r.valLoss.toFixed(4)}, test accuracy ${(r.accuracy * 100).toFixed(2)}%`);
    }
  } else {
    if (values.fresh) rmSync(values['run-dir'], { recursive: true, force: true });
    const r = await trainMnistWithTrainer({
      runDir: values['run-dir'], resume: values.resume,
      epochs: values.epochs ? Number(values.epochs) : undefined, lr: values.lr ? Number(values.lr) : undefined,
    });
    console.log(`stopped: ${r.stopReason} at step ${r.step}; best val loss ${r.bestValLoss?.toFixed(4)} at step ${r.bestStep}; ` +
      `test accuracy ${(r.accuracy * 100).toFixed(2)}% (run directory ${values['run-dir']})`);
  }
}

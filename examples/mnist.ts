// The MNIST MLP of workload T2 (BENCHMARKS.md) as a plain loop over epochs and batches: 784-256-256-10 with
// ReLU, softmax cross-entropy, Adam, batch 128, a new random order each epoch, PyTorch's default init.
// Run: npx tsx examples/mnist.ts                    (the T2 recipe: 3 epochs, lr 1e-3)
//      npx tsx examples/mnist.ts --recipe best      (20 epochs, one-cycle schedule: reaches over 94%)

import * as kiln from 'kiln';
import { parseArgs } from 'node:util';

const { nn, optim } = kiln;

export interface MnistOptions {
  epochs?: number;
  lr?: number;
  batchSize?: number;
  /** 'constant' (T2) or 'oneCycle'. */
  schedule?: 'constant' | 'oneCycle';
  /** Use only this many training samples (for quick tests); default all 8000. */
  limit?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface MnistResult { accuracy: number; losses: number[]; samplesPerSecond: number }

export function trainMnist(options: MnistOptions = {}): MnistResult {
  const { epochs = 3, lr = 1e-3, batchSize = 128, schedule = 'constant', seed = 0, log = console.log } = options;
  kiln.manualSeed(seed);
  const { train, test } = kiln.data.loadMnist();
  const n = Math.min(options.limit ?? train.x.shape[0], train.x.shape[0]);
  const model = new nn.MLP([784, 256, 256, 10]);
  const opt = new optim.Adam(model.parameters(), { lr });
  const stepsPerEpoch = Math.ceil(n / batchSize);
  const sched = schedule === 'oneCycle'
    ? new optim.Scheduler(opt, optim.oneCycle({ total: epochs * stepsPerEpoch, pctStart: 0.25 })) : null;
  const shuffle = new kiln.Generator(seed + 1);
  const losses: number[] = [];
  let samples = 0;
  let seconds = 0;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    model.train();
    const order = kiln.randperm(train.x.shape[0], { generator: shuffle }).narrow(0, 0, n);
    const t0 = performance.now();
    let sum = 0;
    for (let b = 0; b < n; b += batchSize) {
      const idx = order.narrow(0, b, Math.min(batchSize, n - b));
      const x = train.x.indexSelect(0, idx);
      const y = train.y.indexSelect(0, idx);
      opt.zeroGrad();
      const loss = nn.functional.crossEntropy(model.forward(x), y);
      loss.backward();
      opt.step();
      sched?.step();
      sum += loss.item() * idx.size;
    }
    const dt = (performance.now() - t0) / 1000;
    if (epoch > 1 || epochs === 1) { samples += n; seconds += dt; } // epoch 1 warms up
    losses.push(sum / n);
    log(`epoch ${epoch}  loss ${(sum / n).toFixed(4)}  ${(n / dt).toFixed(0)} samples/s`);
  }
  model.eval();
  const predicted = kiln.noGrad(() => model.forward(test.x)).argmax(1);
  const accuracy = predicted.eq(test.y).to('float32').mean().item();
  log(`test accuracy ${(accuracy * 100).toFixed(2)}% on ${test.x.shape[0]} digits`);
  return { accuracy, losses, samplesPerSecond: samples / seconds };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { recipe: { type: 'string', default: 't2' }, epochs: { type: 'string' }, lr: { type: 'string' } },
  });
  const best = values.recipe === 'best';
  if (values.recipe !== 't2' && !best) throw new Error(`--recipe must be 't2' or 'best', got '${values.recipe}'`);
  trainMnist({
    epochs: Number(values.epochs ?? (best ? 20 : 3)),
    lr: Number(values.lr ?? (best ? 3e-3 : 1e-3)),
    schedule: best ? 'oneCycle' : 'constant',
  });
}

// T5 of BENCHMARKS.md: the MNIST CNN (conv 5x5 1->32 pad 2, ReLU, max-pool 2; conv 5x5 32->64 pad 2, ReLU, max-pool 2;
// flatten; linear 3136->128, ReLU, dropout 0.5; linear 128->10), Adam lr 1e-3, batch 64, on the T2 split; training
// samples/s over epochs 2-3 of 3 and test accuracy after epoch 3. Written against the public API only.

import * as kiln from '../src/index.js';

const { nn, optim } = kiln;

export interface T5Result { samplesPerSecond: number; accuracy: number; batches: number; epochSeconds: number[] }

/** The T5 model with PyTorch's default initialisation. */
export function t5Model(): kiln.nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(1, 32, 5, { padding: 2 }), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(32, 64, 5, { padding: 2 }), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Flatten(),
    new nn.Linear(3136, 128), new nn.ReLU(), new nn.Dropout(0.5), new nn.Linear(128, 10));
}

/** Test accuracy of a model on (N, 784) images, evaluated in batches of 500. */
export function accuracyOf(model: kiln.nn.Sequential, x: kiln.Tensor, y: kiln.Tensor): number {
  model.eval();
  let correct = 0;
  for (let b = 0; b < x.shape[0]; b += 500) {
    const n = Math.min(500, x.shape[0] - b);
    const logits = kiln.noGrad(() => model.forward(x.narrow(0, b, n).reshape([n, 1, 28, 28])));
    correct += logits.argmax(1).eq(y.narrow(0, b, n)).to('float32').sum().item();
  }
  return correct / x.shape[0];
}

/**
 * Trains the T5 model on the current backend. With maxBatches, epochs 2-3 stop after that many batches each (for
 * the slow reference backend) and accuracy is NaN.
 */
export function runT5(options: { maxBatches?: number; seed?: number; epochs?: number } = {}): T5Result {
  const { maxBatches = Infinity, seed = 0, epochs = 3 } = options;
  kiln.manualSeed(seed);
  const { train, test } = kiln.data.loadMnist();
  const n = train.x.shape[0];
  const model = t5Model();
  const opt = new optim.Adam(model.parameters(), { lr: 1e-3 });
  const shuffle = new kiln.Generator(seed + 1);
  const batchSize = 64;
  let samples = 0;
  let seconds = 0;
  let batches = 0;
  const epochSeconds: number[] = [];
  for (let epoch = 1; epoch <= epochs; epoch++) {
    model.train();
    const order = kiln.randperm(n, { generator: shuffle });
    const t0 = performance.now();
    let seen = 0;
    for (let b = 0, k = 0; b < n && k < maxBatches; b += batchSize, k++) {
      const idx = order.narrow(0, b, Math.min(batchSize, n - b));
      const x = train.x.indexSelect(0, idx).reshape([idx.shape[0], 1, 28, 28]);
      const y = train.y.indexSelect(0, idx);
      opt.zeroGrad();
      const loss = nn.functional.crossEntropy(model.forward(x), y);
      loss.backward();
      opt.step();
      loss.item();
      seen += idx.shape[0];
      if (epoch > 1) batches++;
    }
    const dt = (performance.now() - t0) / 1000;
    epochSeconds.push(dt);
    if (epoch > 1) { samples += seen; seconds += dt; } // epoch 1 warms up
  }
  const accuracy = maxBatches === Infinity ? accuracyOf(model, test.x, test.y) : NaN;
  return { samplesPerSecond: samples / seconds, accuracy, batches, epochSeconds };
}

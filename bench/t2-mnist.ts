// T2 of BENCHMARKS.md: the MNIST MLP 784-256-256-10, ReLU, softmax cross-entropy, Adam lr 1e-3, batch 128,
// PyTorch's default Linear init, a new random order each epoch; training samples/s over epochs 2-3 of 3 and test
// accuracy after epoch 3. Written against the public API only.

import * as kiln from '../src/index.js';

const { nn, optim } = kiln;

export interface T2Result { samplesPerSecond: number; accuracy: number; batches: number }

/**
 * Trains the T2 model on the current backend. With maxBatches, epochs 2-3 stop after that many batches each (for
 * the slow reference backend) and accuracy is NaN.
 */
export function runT2(options: { maxBatches?: number; seed?: number } = {}): T2Result {
  const { maxBatches = Infinity, seed = 0 } = options;
  kiln.manualSeed(seed);
  const { train, test } = kiln.data.loadMnist();
  const n = train.x.shape[0];
  const model = new nn.MLP([784, 256, 256, 10]);
  const opt = new optim.Adam(model.parameters(), { lr: 1e-3 });
  const shuffle = new kiln.Generator(seed + 1);
  const batchSize = 128;
  let samples = 0;
  let seconds = 0;
  let batches = 0;
  for (let epoch = 1; epoch <= 3; epoch++) {
    model.train();
    const order = kiln.randperm(n, { generator: shuffle });
    const t0 = performance.now();
    let seen = 0;
    for (let b = 0, k = 0; b < n && k < maxBatches; b += batchSize, k++) {
      const idx = order.narrow(0, b, Math.min(batchSize, n - b));
      const x = train.x.indexSelect(0, idx);
      const y = train.y.indexSelect(0, idx);
      opt.zeroGrad();
      const loss = nn.functional.crossEntropy(model.forward(x), y);
      loss.backward();
      opt.step();
      loss.item();
      seen += idx.shape[0];
      if (epoch > 1) batches++;
    }
    if (epoch > 1) { samples += seen; seconds += (performance.now() - t0) / 1000; } // epoch 1 warms up
  }
  let accuracy = NaN;
  if (maxBatches === Infinity) {
    model.eval();
    const predicted = kiln.noGrad(() => model.forward(test.x)).argmax(1);
    accuracy = predicted.eq(test.y).to('float32').mean().item();
  }
  return { samplesPerSecond: samples / seconds, accuracy, batches };
}

/** Writes the T2 split as raw little-endian arrays for the PyTorch script: x float32 (N, 784), y int32 (N). */
export function dumpMnist(dir: string, write: (path: string, data: Uint8Array) => void): void {
  const { train, test } = kiln.data.loadMnist();
  for (const [name, split] of [['train', train], ['test', test]] as const) {
    const x = split.x.data() as Float32Array;
    const y = split.y.data() as Int32Array;
    write(`${dir}/${name}_x.bin`, new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
    write(`${dir}/${name}_y.bin`, new Uint8Array(y.buffer, y.byteOffset, y.byteLength));
  }
}

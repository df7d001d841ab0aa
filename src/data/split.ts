// Seeded train/validation splits of a dataset, optionally stratified so each label keeps its share.

import { Generator, Tensor } from '../tensor/index.js';
import { Subset, type Dataset } from './dataset.js';

/** Options of trainValidationSplit. */
export interface SplitOptions {
  /** The validation share: a fraction in (0, 1) or a number of items. */
  validation: number;
  /** Seed of the split (default 0). */
  seed?: number;
  /**
   * Labels to stratify by: an int tensor or array with one label per item, or a function of the index. Each
   * label then contributes round(share * its count) items to validation.
   */
  stratify?: Tensor | readonly (number | string)[] | ((index: number) => number | string);
}

/**
 * Splits a dataset into train and validation subsets with a seeded shuffle; both keep dataset order inside.
 * `const { train, validation } = trainValidationSplit(ds, { validation: 0.1, seed: 1, stratify: labels })`
 */
export function trainValidationSplit<T>(dataset: Dataset<T>, options: SplitOptions): { train: Subset<T>; validation: Subset<T> } {
  const n = dataset.length;
  const { validation: share, seed = 0, stratify } = options;
  if (!(typeof share === 'number' && share > 0 && (share < 1 || (Number.isInteger(share) && share < n)))) {
    throw new Error(`trainValidationSplit: validation must be a fraction in (0, 1) or a whole number of items below ${n}, got ${share}`);
  }
  const fraction = share < 1 ? share : share / n;
  const g = new Generator(seed);
  let valIdx: number[];
  if (stratify === undefined) {
    const count = share < 1 ? Math.round(share * n) : share;
    valIdx = g.shuffle(Array.from({ length: n }, (_, i) => i)).slice(0, count);
  } else {
    let labelOf: (i: number) => number | string;
    if (typeof stratify === 'function') labelOf = stratify;
    else {
      const len = stratify instanceof Tensor ? stratify.size : stratify.length;
      if (len !== n) throw new Error(`trainValidationSplit: stratify has ${len} labels but the dataset has ${n} items`);
      labelOf = stratify instanceof Tensor ? (i) => stratify.storage[i] : (i) => stratify[i];
    }
    const groups = new Map<number | string, number[]>();
    for (let i = 0; i < n; i++) {
      const label = labelOf(i);
      let list = groups.get(label);
      if (!list) groups.set(label, (list = []));
      list.push(i);
    }
    valIdx = [];
    const labels = [...groups.keys()].sort((a, b) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0));
    for (const label of labels) {
      const list = groups.get(label)!;
      valIdx.push(...g.shuffle(list).slice(0, Math.round(fraction * list.length)));
    }
  }
  const inVal = new Uint8Array(n);
  for (const i of valIdx) inVal[i] = 1;
  const trainIdx: number[] = [];
  const validationIdx: number[] = [];
  for (let i = 0; i < n; i++) (inVal[i] ? validationIdx : trainIdx).push(i);
  return { train: new Subset(dataset, trainIdx), validation: new Subset(dataset, validationIdx) };
}

/**
 * Splits a dataset into consecutive parts of the given sizes (counts summing to its length, or fractions
 * summing to 1) after a seeded shuffle, as torch.utils.data.random_split.
 */
export function randomSplit<T>(dataset: Dataset<T>, sizes: readonly number[], options: { seed?: number } = {}): Subset<T>[] {
  const n = dataset.length;
  let counts: number[];
  const total = sizes.reduce((a, b) => a + b, 0);
  if (sizes.every((s) => Number.isInteger(s) && s >= 0) && total === n) counts = [...sizes];
  else if (sizes.every((s) => s >= 0 && s <= 1) && Math.abs(total - 1) < 1e-9) {
    counts = sizes.map((s) => Math.floor(s * n));
    for (let k = 0, left = n - counts.reduce((a, b) => a + b, 0); left > 0; k = (k + 1) % counts.length, left--) counts[k]++;
  } else {
    throw new Error(`randomSplit: sizes [${sizes.join(', ')}] must be counts summing to ${n} or fractions summing to 1`);
  }
  const order = new Generator(options.seed ?? 0).shuffle(Array.from({ length: n }, (_, i) => i));
  const out: Subset<T>[] = [];
  let at = 0;
  for (const c of counts) {
    out.push(new Subset(dataset, order.slice(at, at + c)));
    at += c;
  }
  return out;
}

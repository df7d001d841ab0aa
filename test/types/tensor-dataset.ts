// Type-level tests, compiled by `npm run lint` under strict + noUncheckedIndexedAccess (test/types/tsconfig.json):
// a TensorDataset is typed by its tensors, so batches destructure without casts, and tolist() takes the
// caller's type. A line marked @ts-expect-error fails the lint when it stops being an error.

import * as kiln from 'kiln';
import { DataLoader, TensorDataset, type Tensor } from 'kiln';

const x = kiln.zeros([8, 3]);
const y = kiln.zeros([8], { dtype: 'int32' });
const loader = new DataLoader(new TensorDataset(x, y), { batchSize: 4 });

for (const [input, target] of loader) {
  const a: Tensor = input;
  const b: Tensor = target;
  void a;
  void b;
}

const batch = loader.next();
if (batch) {
  // @ts-expect-error a dataset of two tensors has no third element
  const [, , third] = batch;
  void third;
}

const triple = new TensorDataset(x, y, x);
const [p, q, r] = triple.get(0);
const row: [Tensor, Tensor, Tensor] = [p, q, r];
void row;

// @ts-expect-error TensorDataset takes tensors only
void new TensorDataset(x, [1, 2, 3]);

const nested: number[][] = x.tolist<number[][]>();
const anyDepth = x.tolist();
// @ts-expect-error without a type argument tolist() gives NestedArray, not number[][]
const notNarrowed: number[][] = anyDepth;
void nested;
void notNarrowed;

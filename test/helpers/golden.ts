// Reading the PyTorch golden files under test/golden/ (written by tools/golden/make_golden.py) and comparing.

import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import type { DType, Tensor } from '../../src/index.js';

export interface GoldenTensor { shape: number[]; dtype: string; data: number[]; name?: string; requires_grad?: boolean }

export function readGolden<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../golden/${name}`, import.meta.url), 'utf8')) as T;
}

/** A Kiln tensor from a golden tensor; float data converted to the requested float dtype. */
export function fromGolden(g: GoldenTensor, floatDType: DType = 'float64'): Tensor {
  const dtype: DType = g.dtype.startsWith('int') ? 'int32' : floatDType;
  return kiln.tensor(g.data, { dtype, shape: g.shape });
}

/** Asserts shape equality and |a - b| <= atol + rtol * |b| elementwise, naming the first bad element. */
export function assertClose(actual: Tensor, expected: GoldenTensor | { shape: number[]; data: number[] }, what: string,
  rtol: number, atol: number): void {
  assert.deepEqual([...actual.shape], expected.shape, `${what}: shape`);
  const a = actual.storage;
  for (let i = 0; i < expected.data.length; i++) {
    const e = expected.data[i];
    const v = a[i];
    const ok = Number.isNaN(e) ? Number.isNaN(v) : Math.abs(v - e) <= atol + rtol * Math.abs(e);
    if (!ok) assert.fail(`${what}: element ${i} is ${v}, PyTorch has ${e}`);
  }
}

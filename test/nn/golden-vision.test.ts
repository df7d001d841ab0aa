// The vision ops and layers against PyTorch (test/golden/vision.json, written by tools/golden/vision_ref.py):
// conv2d variants, pooling, and BatchNorm's running statistics over several training steps followed by evaluation,
// outputs and gradients, in float64 (tight) and float32 (the dtype the native kernels run).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import type { DType, Tensor } from '../../src/index.js';
import { assertClose, fromGolden, readGolden, type GoldenTensor } from '../helpers/golden.js';

type G = GoldenTensor;
interface ConvCase { name: string; x: G; w: G; b: G | null; options: kiln.Conv2dOptions; out: G; g: G; dx: G; dw: G; db: G | null }
interface PoolCase {
  name: string; op: 'max' | 'avg' | 'adaptive'; x: G; kernel?: kiln.Size2; output?: number | [number, number];
  options: Record<string, unknown>; out: G; indices?: G; g: G; dx: G;
}
interface BnStep { x: G; g: G; out: G; dx: G; dweight: G | null; dbias: G | null }
interface BnCase {
  name: string; layer: 'BatchNorm1d' | 'BatchNorm2d'; features: number;
  options: { eps: number; momentum: number | null; affine: boolean }; weight: G | null; bias: G | null;
  steps: BnStep[]; running_mean: G; running_var: G; num_batches_tracked: number; eval: BnStep;
}
const golden = readGolden<{ conv: ConvCase[]; pool: PoolCase[]; batchnorm: BnCase[] }>('vision.json');
const F = kiln.nn.functional;
const tol: Record<string, [number, number]> = { float64: [1e-9, 1e-10], float32: [2e-4, 2e-4] };
const leafOf = (g: G, dtype: DType): Tensor => fromGolden(g, dtype).requiresGrad_();

for (const dtype of ['float64', 'float32'] as const) {
  const [rtol, atol] = tol[dtype];

  test(`conv2d matches PyTorch (${dtype})`, () => {
    for (const c of golden.conv) {
      const [x, w] = [leafOf(c.x, dtype), leafOf(c.w, dtype)];
      const b = c.b ? leafOf(c.b, dtype) : null;
      const out = F.conv2d(x, w, b, c.options);
      assertClose(out, c.out, `${c.name}: output`, rtol, atol);
      out.mul(fromGolden(c.g, dtype)).sum().backward();
      assertClose(x.grad!, c.dx, `${c.name}: dx`, rtol, atol);
      assertClose(w.grad!, c.dw, `${c.name}: dweight`, rtol, atol);
      if (c.db) assertClose(b!.grad!, c.db, `${c.name}: dbias`, rtol, atol);
    }
  });

  test(`pooling matches PyTorch (${dtype})`, () => {
    for (const c of golden.pool) {
      const x = leafOf(c.x, dtype);
      let out: Tensor;
      if (c.op === 'max') {
        const [y, idx] = F.maxPool2dWithIndices(x, c.kernel!, c.options);
        assert.deepEqual([...idx.storage], c.indices!.data, `${c.name}: indices`);
        out = y;
      } else if (c.op === 'avg') out = F.avgPool2d(x, c.kernel!, c.options);
      else out = F.adaptiveAvgPool2d(x, c.output!);
      assertClose(out, c.out, `${c.name}: output`, rtol, atol);
      out.mul(fromGolden(c.g, dtype)).sum().backward();
      assertClose(x.grad!, c.dx, `${c.name}: dx`, rtol, atol);
    }
  });

  test(`BatchNorm running statistics over training steps, then evaluation, match PyTorch (${dtype})`, () => {
    for (const c of golden.batchnorm) {
      const Layer = kiln.nn[c.layer];
      const bn = new Layer(c.features, { ...c.options, dtype });
      if (c.weight) {
        bn.weight!.storage.set(fromGolden(c.weight, dtype).storage);
        bn.bias!.storage.set(fromGolden(c.bias!, dtype).storage);
      }
      const check = (s: BnStep, what: string): void => {
        for (const p of bn.parameters()) p.grad = null;
        const x = leafOf(s.x, dtype);
        const out = bn.forward(x);
        assertClose(out, s.out, `${c.name} ${what}: output`, rtol, atol);
        out.mul(fromGolden(s.g, dtype)).sum().backward();
        assertClose(x.grad!, s.dx, `${c.name} ${what}: dx`, rtol, atol);
        if (s.dweight) assertClose(bn.weight!.grad!, s.dweight, `${c.name} ${what}: dweight`, rtol, atol);
        if (s.dbias) assertClose(bn.bias!.grad!, s.dbias, `${c.name} ${what}: dbias`, rtol, atol);
      };
      bn.train();
      c.steps.forEach((s, i) => check(s, `training step ${i + 1}`));
      const sd = bn.stateDict();
      assertClose(sd.running_mean, c.running_mean, `${c.name}: running_mean`, rtol, atol);
      assertClose(sd.running_var, c.running_var, `${c.name}: running_var`, rtol, atol);
      assert.equal(sd.num_batches_tracked.item(), c.num_batches_tracked, `${c.name}: num_batches_tracked`);
      bn.eval();
      check(c.eval, 'evaluation');
    }
  });
}

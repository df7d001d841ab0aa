// Every op against PyTorch: forward outputs and input gradients from test/golden/ops.json, in float64 (tight)
// and in float32 (the dtype the native backend accelerates).

import { test } from 'node:test';
import * as kiln from '../../src/index.js';
import type { DType, Tensor } from '../../src/index.js';
import { assertClose, fromGolden, readGolden, type GoldenTensor } from '../helpers/golden.js';

interface Case {
  name: string; op: string; args: unknown[]; kwargs: Record<string, unknown>;
  inputs: GoldenTensor[]; output: GoldenTensor; grad_weight: GoldenTensor | null; grads: (GoldenTensor | null)[];
}

const F = kiln.nn.functional;
type Fn = (...a: any[]) => Tensor; // eslint-disable-line @typescript-eslint/no-explicit-any
// Where Kiln's call differs from the plain `kiln[op](...args, kwargs)` form.
const adapters: Record<string, (args: any[], kw: Record<string, any>) => Tensor> = { // eslint-disable-line @typescript-eslint/no-explicit-any
  gelu: ([x], kw) => kiln.gelu(x, kw.approximate ?? 'none'),
  var: ([x, dims, keepDim], kw) => kiln.variance(x, dims, { unbiased: kw.unbiased, keepDim }),
  layerNorm: ([x, w, b], kw) => kiln.layerNorm(x, x.shape[x.ndim - 1], w, b, kw.eps),
  nllLoss: ([x, t], kw) => F.nllLoss(x, t, kw),
  mseLoss: ([x, t], kw) => F.mseLoss(x, t, kw),
  l1Loss: ([x, t], kw) => F.l1Loss(x, t, kw),
  binaryCrossEntropyWithLogits: ([x, t], kw) => F.binaryCrossEntropyWithLogits(x, t, kw),
};

function resolve(arg: unknown, inputs: Tensor[]): unknown {
  if (Array.isArray(arg)) return arg.map((a) => resolve(a, inputs));
  if (arg && typeof arg === 'object' && 'input' in arg) return inputs[(arg as { input: number }).input];
  return arg;
}

function run(c: Case, dtype: DType, rtol: number, atol: number): void {
  const inputs = c.inputs.map((g) => {
    const t = fromGolden(g, dtype);
    return g.requires_grad ? t.requiresGrad_() : t;
  });
  const args = c.args.map((a) => resolve(a, inputs));
  const fn = adapters[c.op] ?? ((a: unknown[], kw: Record<string, unknown>) =>
    ((kiln as unknown as Record<string, Fn>)[c.op])(...a, ...(Object.keys(kw).length ? [kw] : [])));
  const out = fn(args, c.kwargs);
  assertClose(out, c.output, `${c.name} (${dtype}) output`, rtol, atol);
  if (!c.grad_weight || !out.requiresGrad) return;
  out.mul(fromGolden(c.grad_weight, dtype)).sum().backward();
  c.grads.forEach((g, i) => {
    if (g) assertClose(inputs[i].grad ?? kiln.zerosLike(inputs[i]), g, `${c.name} (${dtype}) grad of input ${i}`, rtol, atol);
  });
}

const { cases } = readGolden<{ cases: Case[] }>('ops.json');
for (const c of cases) {
  test(`${c.name} matches PyTorch`, () => {
    run(c, 'float64', 1e-9, 1e-11);
    run(c, 'float32', 2e-4, 2e-5);
  });
}

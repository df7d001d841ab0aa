// Finite-difference gradient checking in float64: the analytic gradient of sum(f(x) * W) against central
// differences, for every input that requires grad.

import * as kiln from '../../src/index.js';
import type { Tensor } from '../../src/index.js';

export interface GradcheckOptions { eps?: number; rtol?: number; atol?: number }

/** Throws with the op name, input and element index of the first mismatch. */
export function gradcheck(name: string, fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], options: GradcheckOptions = {}): void {
  const { eps = 1e-6, rtol = 1e-5, atol = 1e-7 } = options;
  for (const x of inputs) x.grad = null;
  const out = fn(...inputs);
  if (out.dtype !== 'float64') throw new Error(`${name}: gradcheck needs float64 outputs, got ${out.dtype}`);
  const w = kiln.randn(out.shape as number[], { dtype: 'float64', generator: new kiln.Generator(7) });
  out.mul(w).sum().backward();
  const scalar = (): number => kiln.noGrad(() => fn(...inputs).mul(w).sum().item());
  inputs.forEach((x, k) => {
    if (!x.requiresGrad) return;
    const analytic = x.grad?.data() ?? new Float64Array(x.size);
    for (let i = 0; i < x.size; i++) {
      const orig = x.storage[i];
      x.storage[i] = orig + eps;
      const up = scalar();
      x.storage[i] = orig - eps;
      const down = scalar();
      x.storage[i] = orig;
      const numeric = (up - down) / (2 * eps);
      const a = analytic[i];
      if (!(Math.abs(a - numeric) <= atol + rtol * Math.max(Math.abs(a), Math.abs(numeric)))) {
        throw new Error(`${name}: gradient of input ${k} at element ${i}: analytic ${a}, numeric ${numeric}`);
      }
    }
  });
}

/** A float64 leaf requiring grad with values drawn from a seeded generator, kept away from zero when asked. */
export function leaf(shape: number[], seed: number, options: { positive?: boolean; awayFromZero?: boolean } = {}): Tensor {
  const g = new kiln.Generator(seed);
  const t = kiln.randn(shape, { dtype: 'float64', generator: g });
  const s = t.storage;
  for (let i = 0; i < s.length; i++) {
    if (options.positive) s[i] = Math.abs(s[i]) + 0.5;
    else if (options.awayFromZero && Math.abs(s[i]) < 0.2) s[i] += s[i] < 0 ? -0.3 : 0.3;
  }
  return t.requiresGrad_();
}

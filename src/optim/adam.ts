// Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay), on the backend's fused
// AdamW kernel, following torch.optim.Adam / AdamW.

import { backend, type FloatArray } from '../backend/index.js';
import { noGrad } from '../tensor/autograd.js';
import { zerosLike } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { Optimizer, type ParamsInput } from './optimizer.js';

export interface AdamOptions { lr?: number; betas?: [number, number]; eps?: number; weightDecay?: number }

abstract class AdamBase extends Optimizer {
  constructor(params: ParamsInput, options: AdamOptions, defaultWd: number, private decoupled: boolean, name: string) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: defaultWd, ...options }, name);
    for (const g of this.paramGroups) {
      const [b1, b2] = g.betas as [number, number];
      if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new Error(`${name}: betas must be in [0, 1), got [${b1}, ${b2}]`);
      if (!((g.eps as number) >= 0)) throw new Error(`${name}: eps must be non-negative, got ${String(g.eps)}`);
    }
  }

  step(): void {
    noGrad(() => {
      for (const g of this.paramGroups) {
        const [b1, b2] = g.betas as [number, number];
        for (const p of g.params) {
          if (!p.grad) continue;
          let st = this.state.get(p);
          if (!st) {
            st = { step: 0, exp_avg: zerosLike(p), exp_avg_sq: zerosLike(p) };
            this.state.set(p, st);
          }
          const t = (st.step as number) + 1;
          st.step = t;
          let grad = p.grad.storage as FloatArray;
          let wd = g.weightDecay;
          if (!this.decoupled && wd !== 0) {
            // Adam's L2 decay: g + wd * p, then the update with no decoupled decay.
            const w = p.storage as FloatArray;
            const d = grad.slice();
            for (let i = 0; i < d.length; i++) d[i] += wd * w[i];
            grad = d;
            wd = 0;
          }
          backend().adamw(p.storage as FloatArray, grad, (st.exp_avg as Tensor).storage as FloatArray,
            (st.exp_avg_sq as Tensor).storage as FloatArray, g.lr, b1, b2, g.eps as number, wd,
            1 - b1 ** t, 1 - b2 ** t);
        }
      }
    });
  }
}

/** Adam; weightDecay (default 0) is L2 regularisation added to the gradient. */
export class Adam extends AdamBase {
  constructor(params: ParamsInput, options: AdamOptions = {}) { super(params, options, 0, false, 'Adam'); }
}

/** AdamW; weightDecay (default 0.01) shrinks weights directly, decoupled from the gradient. */
export class AdamW extends AdamBase {
  constructor(params: ParamsInput, options: AdamOptions = {}) { super(params, options, 0.01, true, 'AdamW'); }
}

// Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay), on the fused AdamW
// update op (tensor's adamwUpdate_), following torch.optim.Adam / AdamW.

import { noGrad } from '../tensor/autograd.js';
import { zerosLike } from '../tensor/creation.js';
import { adamwUpdate_ } from '../tensor/ops/optim-ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { Optimizer, type ParamsInput } from './optimizer.js';

/** Options of Adam and AdamW: lr (default 1e-3), betas (default [0.9, 0.999]), eps (default 1e-8), weightDecay. */
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
          adamwUpdate_(p, p.grad, st.exp_avg as Tensor, st.exp_avg_sq as Tensor, {
            lr: g.lr, beta1: b1, beta2: b2, eps: g.eps as number, weightDecay: g.weightDecay, step: t,
            decoupled: this.decoupled,
          });
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

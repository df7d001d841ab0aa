// SGD with momentum, dampening, Nesterov and L2 weight decay, following torch.optim.SGD exactly.

import type { FloatArray } from '../backend/index.js';
import { noGrad } from '../tensor/autograd.js';
import { zerosLike } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { Optimizer, type ParamsInput } from './optimizer.js';

/** Options of SGD (PyTorch's defaults: no momentum, dampening or weight decay). */
export interface SGDOptions { lr: number; momentum?: number; dampening?: number; nesterov?: boolean; weightDecay?: number }

/** Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay, as torch.optim.SGD. `new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9 })` */
export class SGD extends Optimizer {
  constructor(params: ParamsInput, options: SGDOptions) {
    super(params, { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, ...options }, 'SGD');
    for (const g of this.paramGroups) {
      if (g.nesterov && (!((g.momentum as number) > 0) || g.dampening !== 0)) {
        throw new Error('SGD: Nesterov momentum needs momentum > 0 and dampening 0');
      }
    }
  }

  step(): void {
    noGrad(() => {
      for (const g of this.paramGroups) {
        const { lr, weightDecay: wd } = g;
        const momentum = g.momentum as number;
        const dampening = g.dampening as number;
        for (const p of g.params) {
          if (!p.grad) continue;
          const w = p.storage as FloatArray;
          const grad = p.grad.storage as FloatArray;
          const d = new (w.constructor as { new (n: number): FloatArray })(w.length);
          for (let i = 0; i < w.length; i++) d[i] = grad[i] + wd * w[i];
          if (momentum !== 0) {
            let st = this.state.get(p);
            const first = !st;
            if (!st) {
              st = { momentum_buffer: zerosLike(p) };
              this.state.set(p, st);
            }
            const buf = (st.momentum_buffer as Tensor).storage as FloatArray;
            // The first step takes the gradient as the buffer (no dampening), as PyTorch does.
            if (first) buf.set(d);
            else for (let i = 0; i < w.length; i++) buf[i] = momentum * buf[i] + (1 - dampening) * d[i];
            if (g.nesterov) for (let i = 0; i < w.length; i++) d[i] += momentum * buf[i];
            else d.set(buf);
          }
          for (let i = 0; i < w.length; i++) w[i] -= lr * d[i];
        }
      }
    });
  }
}

// Gradient (activation) checkpointing: a block's forward runs without recording the graph, keeping only its
// inputs; backward reruns the block with the graph on and backpropagates through it. Memory for activations drops
// from every block's intermediates to one block's at a time, for about one more forward pass of compute.

import { activationScope, enableGrad, isGradEnabled, noGrad, record } from './autograd.js';
import { autocast, autocastPrecision } from './autocast.js';
import { defaultGenerator } from './random.js';
import { allocationScope } from './storage.js';
import { isTensor, Tensor } from './tensor.js';

/**
 * Runs fn(...args) with its activations recomputed in backward instead of kept (PyTorch's reentrant
 * torch.utils.checkpoint). The rerun replays the same random draws of the default generator (dropout) and the same
 * autocast precision, so gradients equal those without checkpointing. Parameters that fn closes over get their
 * gradients during the rerun's backward; fn must use them only inside it (a transformer block does). Without grad
 * mode, or when no tensor argument requires grad, fn simply runs (nothing to save).
 * `x = kiln.nn.checkpoint((t) => block.forward(t), x)`
 */
export function checkpoint<A extends unknown[]>(fn: (...args: A) => Tensor, ...args: A): Tensor {
  if (typeof fn !== 'function') throw new Error(`checkpoint: fn must be a function returning a Tensor, got ${typeof fn}`);
  const inputs = args.filter(isTensor);
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) return fn(...args);
  const rng = defaultGenerator.getState();
  const precision = autocastPrecision();
  // Without the graph every intermediate buffer is garbage once fn returns: back to the pool at once.
  const out = noGrad(() => allocationScope(() => fn(...args), (r) => [isTensor(r) ? r : null]));
  if (!isTensor(out)) throw new Error(`checkpoint: fn must return a Tensor, got ${typeof out}`);
  return record('checkpoint', out, inputs, (g) => {
    // Leaves on the inputs' buffers (no markShared: they die with this closure and must not pin the buffers).
    const leaves = inputs.map((t) => new Tensor(t.storage, t.shape, t.requiresGrad));
    let i = 0;
    const rerunArgs = args.map((a) => (isTensor(a) ? leaves[i++] : a)) as A;
    const resume = defaultGenerator.getState();
    defaultGenerator.setState(rng);
    let y: Tensor;
    try {
      y = enableGrad(() => autocast(precision, () => activationScope(() => fn(...rerunArgs), (r) => [r])));
    } finally {
      defaultGenerator.setState(resume);
    }
    if (y.requiresGrad) y.backward(g);
    return leaves.map((l) => (l.requiresGrad ? l.grad : null));
  });
}

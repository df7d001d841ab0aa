// Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_.

import type { Tensor } from '../tensor/tensor.js';

/**
 * Scales all gradients so their joint L2 norm is at most maxNorm; returns the norm before clipping
 * (Infinity or NaN when a gradient is not finite, with nothing scaled).
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be positive, got ${maxNorm}`);
  const grads = [...params].map((p) => p.grad).filter((g): g is Tensor => g !== null);
  const norm = gradNorm(grads);
  if (!Number.isFinite(norm)) return norm;
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) {
    for (const g of grads) {
      const s = g.storage;
      for (let i = 0; i < s.length; i++) s[i] *= coef;
    }
  }
  return norm;
}

/** The joint L2 norm of a list of gradients (or of the .grad of parameters). */
export function gradNorm(tensors: Iterable<Tensor | null>): number {
  let sq = 0;
  for (const t of tensors) {
    if (!t) continue;
    const s = t.storage;
    for (let i = 0; i < s.length; i++) sq += s[i] * s[i];
  }
  return Math.sqrt(sq);
}

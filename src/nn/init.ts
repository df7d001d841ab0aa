// Parameter initialisers, in place, drawing from the global generator unless given one. Names follow
// torch.nn.init with camelCase and the trailing underscore for in-place.

import { defaultGenerator, type Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

/** Fills t in place from U(low, high); returns t. */
export function uniform_(t: Tensor, low = 0, high = 1, generator: Generator = defaultGenerator): Tensor {
  const s = t.storage;
  for (let i = 0; i < s.length; i++) s[i] = low + (high - low) * generator.uniform();
  return t;
}

/** Fills t in place from N(mean, std^2); returns t. */
export function normal_(t: Tensor, mean = 0, std = 1, generator: Generator = defaultGenerator): Tensor {
  const s = t.storage;
  for (let i = 0; i < s.length; i++) s[i] = mean + std * generator.normal();
  return t;
}

/** Fills t in place with value; returns t. */
export function constant_(t: Tensor, value: number): Tensor { t.storage.fill(value); return t; }
/** Fills t in place with zeros; returns t. */
export function zeros_(t: Tensor): Tensor { return constant_(t, 0); }
/** Fills t in place with ones; returns t. */
export function ones_(t: Tensor): Tensor { return constant_(t, 1); }

/** (fanIn, fanOut) of a weight: dims 1 and 0, times the receptive field for higher ranks. */
export function fans(t: Tensor): [number, number] {
  if (t.ndim < 2) throw new Error(`init: fan in and fan out need at least 2 dimensions, got ${t.ndim}`);
  const field = t.shape.slice(2).reduce((p, d) => p * d, 1);
  return [t.shape[1] * field, t.shape[0] * field];
}

/** He uniform; with a = sqrt(5) this is PyTorch's default for Linear weights, U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
export function kaimingUniform_(t: Tensor, a = 0, generator: Generator = defaultGenerator): Tensor {
  const [fanIn] = fans(t);
  const gain = Math.sqrt(2 / (1 + a * a));
  const bound = gain * Math.sqrt(3 / fanIn);
  return uniform_(t, -bound, bound, generator);
}

/** He normal: N(0, gain^2 / fanIn) with gain sqrt(2 / (1 + a^2)), in place; returns t. */
export function kaimingNormal_(t: Tensor, a = 0, generator: Generator = defaultGenerator): Tensor {
  const [fanIn] = fans(t);
  return normal_(t, 0, Math.sqrt(2 / (1 + a * a)) / Math.sqrt(fanIn), generator);
}

/** Glorot uniform: U(-b, b) with b = gain * sqrt(6 / (fanIn + fanOut)), in place; returns t. */
export function xavierUniform_(t: Tensor, gain = 1, generator: Generator = defaultGenerator): Tensor {
  const [fanIn, fanOut] = fans(t);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound, generator);
}

/** Glorot normal: N(0, gain^2 * 2 / (fanIn + fanOut)), in place; returns t. */
export function xavierNormal_(t: Tensor, gain = 1, generator: Generator = defaultGenerator): Tensor {
  const [fanIn, fanOut] = fans(t);
  return normal_(t, 0, gain * Math.sqrt(2 / (fanIn + fanOut)), generator);
}

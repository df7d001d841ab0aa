// Small models for the decoding tests.

import * as kiln from '../../src/index.js';

/** A GPT in eval mode whose biases and norm parameters are random too (they start as zeros and ones). */
export function randomGPT(config: kiln.models.GPTConfig, seed: number): kiln.models.GPT {
  const gpt = new kiln.models.GPT(config, { generator: new kiln.Generator(seed) });
  const g = new kiln.Generator(seed + 1);
  kiln.noGrad(() => {
    for (const [name, p] of gpt.namedParameters()) {
      if (name.endsWith('.bias') || /ln_/.test(name)) p.storage.set(kiln.randn(p.shape, { generator: g }).mul(0.1).storage as Float32Array);
    }
  });
  return gpt.eval();
}

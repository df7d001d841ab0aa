// Seeded random numbers: xoshiro128** seeded through splitmix32. Every random draw in Kiln goes through a
// Generator, and its state is a small plain object so checkpoints can save and restore it exactly.

export interface GeneratorState { s: [number, number, number, number] }

/**
 * A seeded random generator. `new kiln.Generator(42).uniform()`; pass one as `generator` to rand/randn/dropout
 * to keep a stream separate from the global one.
 */
export class Generator {
  private s = new Uint32Array(4);

  constructor(seed = 0) { this.manualSeed(seed); }

  /** Resets the stream from an integer seed (any safe integer). */
  manualSeed(seed: number): this {
    if (!Number.isSafeInteger(seed)) throw new Error(`manualSeed: seed must be a safe integer, got ${seed}`);
    let x = (seed >>> 0) ^ Math.floor(seed / 2 ** 32) * 0x9e3779b9;
    for (let i = 0; i < 4; i++) {
      // splitmix32
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
    return this;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** A double in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5;
    const lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A standard normal draw (Box-Muller; one of the pair is discarded so the state stays four words). */
  normal(): number {
    let u = this.uniform();
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** An integer in [low, high). */
  int(low: number, high: number): number {
    return low + Math.floor(this.uniform() * (high - low));
  }

  getState(): GeneratorState { return { s: [this.s[0], this.s[1], this.s[2], this.s[3]] }; }

  setState(state: GeneratorState): this {
    if (!state || !Array.isArray(state.s) || state.s.length !== 4 || !state.s.every((v) => Number.isInteger(v))) {
      throw new Error('Generator.setState: expected { s: [four unsigned 32-bit integers] }');
    }
    this.s.set(state.s.map((v) => v >>> 0));
    return this;
  }
}

function rotl(x: number, k: number): number { return (x << k) | (x >>> (32 - k)); }

/** The global generator behind every random op that is not given one. */
export const defaultGenerator = new Generator(0);

/** Seeds the global generator, as torch.manual_seed does. */
export function manualSeed(seed: number): void { defaultGenerator.manualSeed(seed); }

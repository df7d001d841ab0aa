// Seeded random numbers, the one RNG of Kiln: xoshiro128** seeded through splitmix32. Tensors, init, dropout, data
// shuffles, splits and window samplers all draw from a Generator, whose four-word state checkpoints save exactly.

/** A Generator's whole state: four 32-bit words (xoshiro128**), JSON-able. */
export interface GeneratorState { s: [number, number, number, number] }

/**
 * A seeded random generator. `new kiln.Generator(42).uniform()`; pass one as `generator` to rand/randn/dropout
 * to keep a stream separate from the global one.
 *
 * @example
 * ```ts
 * const g = new kiln.Generator(42);
 * const saved = g.getState();
 * const a = g.int(0, 100);
 * g.setState(saved);
 * g.int(0, 100) === a; // true
 * ```
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

  /**
   * A uniform integer in [low, high), both safe integers. Unbiased for ranges up to 2^32 (rejection on one
   * 32-bit draw, which is also what a data sampler needs per window); wider ranges use 53 random bits.
   */
  int(low: number, high: number): number {
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || high <= low) {
      throw new Error(`Generator.int: expected safe integers low < high, got ${low} and ${high}`);
    }
    const n = high - low;
    if (n <= 0x100000000) {
      const limit = 0x100000000 - (0x100000000 % n);
      for (;;) {
        const u = this.nextUint32();
        if (u < limit) return low + (u % n);
      }
    }
    return low + Math.floor(this.uniform() * n);
  }

  /**
   * Shuffles an array (or typed array) in place and returns it: Fisher-Yates from the end, one draw per position,
   * so the same state always gives the same permutation. `g.shuffle([0, 1, 2, 3])`
   */
  shuffle<A extends { length: number; [i: number]: unknown }>(items: A): A {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }

  /** The whole state (four 32-bit words), JSON-able: a checkpoint saves it and setState resumes the stream exactly. */
  getState(): GeneratorState { return { s: [this.s[0], this.s[1], this.s[2], this.s[3]] }; }

  /** Restores a state from getState(); the stream continues from where it was saved. */
  setState(state: GeneratorState): this {
    const ok = state !== null && typeof state === 'object' && Array.isArray(state.s) && state.s.length === 4 &&
      state.s.every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff) && state.s.some((v) => v !== 0);
    if (!ok) {
      throw new Error(`Generator.setState: expected { s: four unsigned 32-bit integers, not all zero }, found ${JSON.stringify(state)}`);
    }
    this.s.set(state.s);
    return this;
  }
}

function rotl(x: number, k: number): number { return (x << k) | (x >>> (32 - k)); }

/** The global generator behind every random op that is not given one. */
export const defaultGenerator = new Generator(0);

/** Seeds the global generator, as torch.manual_seed does. */
export function manualSeed(seed: number): void { defaultGenerator.manualSeed(seed); }

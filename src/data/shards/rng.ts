// The data layer's seeded generator (xoshiro128**, seeded through splitmix32): small, fast, and its whole
// state is four numbers that a checkpoint saves and restores exactly.

/** The state of a {@link DataRng}, JSON-able. */
export interface DataRngState {
  algorithm: 'xoshiro128**';
  s: [number, number, number, number];
}

/**
 * A deterministic random generator for sampling windows and splitting documents.
 *
 * @example
 * ```ts
 * const rng = new DataRng(42);
 * const saved = rng.state();
 * const a = rng.int(100);
 * rng.setState(saved);
 * rng.int(100) === a; // true
 * ```
 */
export class DataRng {
  private s = new Uint32Array(4);

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new Error(`DataRng seed: expected a safe integer, found ${seed}.`);
    let x = (seed >>> 0) ^ Math.floor(seed / 0x100000000);
    for (let i = 0; i < 4; i++) {
      // splitmix32
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1;
  }

  /** The next 32 random bits as an unsigned integer. */
  uint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  float(): number {
    return ((this.uint32() >>> 5) * 67108864 + (this.uint32() >>> 6)) / 9007199254740992;
  }

  /** A uniform integer in [0, n), n a positive safe integer (unbiased below 2^32). */
  int(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`DataRng.int: expected a positive integer bound, found ${n}.`);
    if (n <= 0x100000000) {
      const limit = 0x100000000 - (0x100000000 % n);
      for (;;) {
        const u = this.uint32();
        if (u < limit) return u % n;
      }
    }
    return Math.floor(this.float() * n);
  }

  state(): DataRngState {
    return { algorithm: 'xoshiro128**', s: [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!] };
  }

  setState(state: DataRngState): void {
    const ok =
      state !== null &&
      typeof state === 'object' &&
      state.algorithm === 'xoshiro128**' &&
      Array.isArray(state.s) &&
      state.s.length === 4 &&
      state.s.every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff) &&
      state.s.some((v) => v !== 0);
    if (!ok) throw new Error(`DataRng state: expected { algorithm: 'xoshiro128**', s: four uint32 not all zero }, found ${JSON.stringify(state)}.`);
    this.s.set(state.s);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

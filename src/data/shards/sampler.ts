// Batches of token windows from one split's shard files: random windows for training (seeded, with a
// state a checkpoint restores exactly) and consecutive windows covering the split for evaluation.

import { Generator as RandomGenerator, type GeneratorState } from '../../tensor/random.js';

/** Tokens to draw windows from: a shard file (TokenReader) or tokens in memory (memoryTokens). */
export interface TokenReader {
  /** Number of tokens. */
  readonly length: number;
  /** Copies `count` tokens from `start` into out[0..count). */
  read(start: number, count: number, out: Int32Array): void;
}

/** Token ids in memory as a TokenReader, for the samplers (the browser build trains from these). */
export function memoryTokens(ids: ArrayLike<number>): TokenReader {
  const tokens = Int32Array.from(ids);
  return {
    length: tokens.length,
    read(start, count, out) {
      if (!Number.isInteger(start) || start < 0 || start + count > tokens.length) {
        throw new Error(`memoryTokens: expected a range inside 0..${tokens.length}, found ${start}..${start + count}.`);
      }
      out.set(tokens.subarray(start, start + count));
    },
  };
}

/** A batch: inputs x and next-token targets y, each (B, T) row-major. */
export interface TokenBatch {
  x: Int32Array; // (B, T)
  y: Int32Array; // (B, T)
  /** Rows in this batch (B; the last evaluation batch may have fewer). */
  batchSize: number;
  blockSize: number;
}

/** Options for {@link TokenWindowSampler}. */
export interface WindowSamplerOptions {
  batchSize: number;
  /** T: tokens per row; each row reads T + 1 tokens. */
  blockSize: number;
  seed?: number;
}

/** The sampler's position, JSON-able, for checkpoints. */
export interface WindowSamplerState {
  rng: GeneratorState;
  /** Batches drawn so far. */
  batches: number;
}

function checkDims(batchSize: number, blockSize: number, what: string): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`${what} batchSize: expected a positive integer, found ${batchSize}.`);
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new Error(`${what} blockSize: expected a positive integer, found ${blockSize}.`);
}

/**
 * Draws random windows of T + 1 tokens from one split (its shard files), uniformly over all window starts,
 * reading each window through the file handle. Windows never cross a shard file, and train and validation
 * are separate files, so a training batch never holds a validation token.
 *
 * @example
 * ```ts
 * const sampler = new TokenWindowSampler(shards.train, { batchSize: 8, blockSize: 256, seed: 1 });
 * const { x, y } = sampler.next(); // Int32Array(8 * 256) each; y is x shifted by one token
 * const saved = sampler.state();   // store in the checkpoint; sampler.setState(saved) resumes exactly
 * ```
 */
export class TokenWindowSampler {
  readonly batchSize: number;
  readonly blockSize: number;
  private shards: TokenReader[];
  private cum: number[] = []; // cumulative window counts
  private total: number;
  private rng: RandomGenerator;
  private batches = 0;
  private row: Int32Array;

  constructor(shards: readonly TokenReader[], options: WindowSamplerOptions) {
    checkDims(options.batchSize, options.blockSize, 'TokenWindowSampler');
    this.batchSize = options.batchSize;
    this.blockSize = options.blockSize;
    this.shards = [...shards];
    let total = 0;
    let tokens = 0;
    for (const s of this.shards) {
      tokens += s.length;
      total += Math.max(0, s.length - this.blockSize);
      this.cum.push(total);
    }
    if (total === 0) {
      throw new Error(
        `TokenWindowSampler: expected a split with at least blockSize + 1 = ${this.blockSize + 1} tokens in one shard, found ${tokens} tokens in ${this.shards.length} shard(s).`,
      );
    }
    this.total = total;
    this.rng = new RandomGenerator(options.seed ?? 0);
    this.row = new Int32Array(this.blockSize + 1);
  }

  /** Number of distinct window starts. */
  get windows(): number {
    return this.total;
  }

  /** Draws the next batch. */
  next(): TokenBatch {
    const B = this.batchSize;
    const T = this.blockSize;
    const x = new Int32Array(B * T);
    const y = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const [shard, start] = this.locate(this.rng.int(0, this.total));
      shard.read(start, T + 1, this.row);
      x.set(this.row.subarray(0, T), b * T);
      y.set(this.row.subarray(1), b * T);
    }
    this.batches++;
    return { x, y, batchSize: B, blockSize: T };
  }

  private locate(w: number): [TokenReader, number] {
    let lo = 0;
    let hi = this.cum.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cum[mid]! > w) hi = mid;
      else lo = mid + 1;
    }
    return [this.shards[lo]!, w - (lo > 0 ? this.cum[lo - 1]! : 0)];
  }

  /** The sampler's position and RNG state, as JSON for a checkpoint. */
  state(): WindowSamplerState {
    return { rng: this.rng.getState(), batches: this.batches };
  }

  /** Continues from a state saved by state(). */
  setState(state: WindowSamplerState): void {
    if (state === null || typeof state !== 'object' || !Number.isInteger(state.batches) || state.batches < 0) {
      throw new Error(`TokenWindowSampler state: expected { rng, batches }, found ${JSON.stringify(state)}.`);
    }
    this.rng.setState(state.rng);
    this.batches = state.batches;
  }
}

/** Options for {@link sequentialWindows}. */
export interface SequentialWindowOptions {
  batchSize: number;
  blockSize: number;
  /** Stop after this many batches (default: cover the split). */
  maxBatches?: number;
}

/**
 * Consecutive windows covering a split for evaluation, in file order: rows start at 0, T, 2T, ... of each
 * shard, each reading T + 1 tokens, so every token after the first is a target exactly once (a tail
 * shorter than T + 1 tokens is left out). The last batch may have fewer rows. Deterministic.
 *
 * @example
 * ```ts
 * for (const { x, y, batchSize } of sequentialWindows(shards.val, { batchSize: 8, blockSize: 256 })) {
 *   // evaluate the model on x, y
 * }
 * ```
 */
export function* sequentialWindows(shards: readonly TokenReader[], options: SequentialWindowOptions): Generator<TokenBatch> {
  checkDims(options.batchSize, options.blockSize, 'sequentialWindows');
  const B = options.batchSize;
  const T = options.blockSize;
  const maxBatches = options.maxBatches ?? Infinity;
  const starts: [TokenReader, number][] = [];
  let made = 0;
  const row = new Int32Array(T + 1);
  const emit = (): TokenBatch => {
    const n = starts.length;
    const x = new Int32Array(n * T);
    const y = new Int32Array(n * T);
    starts.forEach(([s, start], b) => {
      s.read(start, T + 1, row);
      x.set(row.subarray(0, T), b * T);
      y.set(row.subarray(1), b * T);
    });
    starts.length = 0;
    made++;
    return { x, y, batchSize: n, blockSize: T };
  };
  for (const s of shards) {
    for (let start = 0; start + T + 1 <= s.length; start += T) {
      if (made >= maxBatches) return;
      starts.push([s, start]);
      if (starts.length === B) yield emit();
    }
  }
  if (starts.length > 0 && made < maxBatches) yield emit();
}

/** Number of rows {@link sequentialWindows} gives for a split (before maxBatches). */
export function countSequentialWindows(shards: readonly TokenReader[], blockSize: number): number {
  let n = 0;
  for (const s of shards) if (s.length >= blockSize + 1) n += Math.floor((s.length - 1) / blockSize);
  return n;
}

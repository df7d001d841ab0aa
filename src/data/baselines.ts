// Unigram and bigram perplexity baselines: what a model that knows only token frequencies (or only the
// previous token) scores on the validation split. A GPT worth training beats both.

import type { TokenShard } from './shards/format.js';

/** Tokens as shard files or an in-memory array. */
export type TokenSource = readonly TokenShard[] | ArrayLike<number>;

/** One baseline's score on the evaluation tokens. */
export interface BaselineScore {
  /** Mean negative log-likelihood per predicted token, in nats. */
  crossEntropy: number;
  perplexity: number;
}

/** Result of {@link ngramBaselines}. */
export interface NgramBaselines {
  /** Add-k smoothed token frequencies: p(w) = (c(w) + k) / (N + kV). */
  unigram: BaselineScore;
  /** Witten-Bell interpolated bigram: p(w | v) = (c(v, w) + T(v) p1(w)) / (c(v) + T(v)). */
  bigram: BaselineScore;
  /** Tokens counted in train, tokens scored in eval (every eval token after the first of each source). */
  tokens: { train: number; eval: number };
}

/** Options for {@link ngramBaselines}. */
export interface NgramOptions {
  vocabSize: number;
  /** The unigram's add-k (default 1), so unseen tokens keep a finite cost. */
  addK?: number;
}

function* chunksOf(src: TokenSource): Generator<ArrayLike<number>> {
  if (Array.isArray(src) && src.length > 0 && typeof src[0] === 'object') {
    for (const s of src as readonly TokenShard[]) yield* s.chunks();
  } else if (!Array.isArray(src) || src.length === 0 || typeof src[0] === 'number') {
    yield src as ArrayLike<number>;
  }
}

/**
 * Counts unigrams and bigrams on the train tokens and scores the eval tokens with both models. The scored
 * positions are those a language model predicts: every token but the first of the eval stream.
 *
 * @example
 * ```ts
 * const b = ngramBaselines(shards.train, shards.val, { vocabSize: tok.vocabSize });
 * console.log(b.unigram.perplexity, b.bigram.perplexity);
 * ```
 */
export function ngramBaselines(train: TokenSource, evalTokens: TokenSource, options: NgramOptions): NgramBaselines {
  const V = options.vocabSize;
  const k = options.addK ?? 1;
  if (!Number.isInteger(V) || V < 1) throw new Error(`ngramBaselines vocabSize: expected a positive integer, found ${V}.`);
  if (!(k > 0)) throw new Error(`ngramBaselines addK: expected a positive number, found ${k}.`);
  const uni = new Float64Array(V);
  const ctx = new Float64Array(V); // c(v) as a context
  const types = new Float64Array(V); // T(v): distinct successors of v
  const bi = new Map<number, number>();
  let N = 0;
  const check = (id: number, what: string): void => {
    if (!(id >= 0 && id < V && Number.isInteger(id))) throw new Error(`ngramBaselines ${what} tokens: expected ids in [0, ${V}), found ${id}.`);
  };
  let prev = -1;
  for (const chunk of chunksOf(train)) {
    for (let i = 0; i < chunk.length; i++) {
      const w = chunk[i]!;
      check(w, 'train');
      uni[w]!++;
      N++;
      if (prev >= 0) {
        const key = prev * V + w;
        const c = bi.get(key);
        if (c === undefined) {
          bi.set(key, 1);
          types[prev]!++;
        } else bi.set(key, c + 1);
        ctx[prev]!++;
      }
      prev = w;
    }
  }
  if (N === 0) throw new Error('ngramBaselines train tokens: expected at least one token, found none.');
  const p1 = (w: number): number => (uni[w]! + k) / (N + k * V);
  let nllUni = 0;
  let nllBi = 0;
  let scored = 0;
  prev = -1;
  for (const chunk of chunksOf(evalTokens)) {
    for (let i = 0; i < chunk.length; i++) {
      const w = chunk[i]!;
      check(w, 'eval');
      if (prev >= 0) {
        const pu = p1(w);
        nllUni -= Math.log(pu);
        const cv = ctx[prev]!;
        const tv = types[prev]!;
        const pb = cv === 0 ? pu : ((bi.get(prev * V + w) ?? 0) + tv * pu) / (cv + tv);
        nllBi -= Math.log(pb);
        scored++;
      }
      prev = w;
    }
  }
  if (scored === 0) throw new Error('ngramBaselines eval tokens: expected at least two tokens, found fewer.');
  const score = (nll: number): BaselineScore => ({ crossEntropy: nll / scored, perplexity: Math.exp(nll / scored) });
  return { unigram: score(nllUni), bigram: score(nllBi), tokens: { train: N, eval: scored } };
}

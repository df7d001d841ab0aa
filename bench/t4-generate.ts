// T4 of BENCHMARKS.md on Kiln: greedy generation with the T3 model (V=4096, T=128, L=4, H=4, C=256), prompt 16
// tokens, 112 new tokens, batch 1; new tokens per second with the KV cache (the lean decoding path) and without
// it (the same path running the whole sequence every step), on the current backend. Public API only.
// Standalone: `node --import tsx bench/t4-generate.ts [repeats]` prints one JSON line.

import * as kiln from '../src/index.js';

export const T4 = { vocabSize: 4096, context: 128, layers: 4, heads: 4, width: 256, prompt: 16, newTokens: 112 };

export interface T4Result {
  /** New tokens per second with the KV cache (median of repeats, prefill included). */
  cachedTokensPerSecond: number;
  /** The same without a cache (every step recomputes the sequence); NaN when skipped. */
  uncachedTokensPerSecond: number;
  /** The model's own forward with its KV cache, for reference (the path a custom model would take). */
  moduleCachedTokensPerSecond: number;
  /** Whether greedy output with the cache equals greedy output without it (the module path's, when skipped). */
  cacheMatchesRecompute: boolean;
  /** Whether the single-token steps ran on the WebAssembly SIMD mat-vec kernel. */
  simdMatVec: boolean;
}

function medianRate(run: () => number[], repeats: number): number {
  run(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t = performance.now();
    const out = run();
    times.push((performance.now() - t) / 1000);
    if (out.length !== T4.newTokens) throw new Error(`T4: expected ${T4.newTokens} new tokens, got ${out.length}`);
  }
  times.sort((a, b) => a - b);
  return T4.newTokens / times[times.length >> 1];
}

/** Runs T4 on the current backend. */
export function runT4(options: { repeats?: number; uncachedRepeats?: number; skipUncached?: boolean } = {}): T4Result {
  const repeats = options.repeats ?? 7;
  const gpt = new kiln.models.GPT({ vocabSize: T4.vocabSize, context: T4.context, layers: T4.layers, heads: T4.heads, width: T4.width },
    { generator: new kiln.Generator(0) });
  gpt.eval().freeze(); // as loadModel leaves a model for inference
  const g = new kiln.Generator(1);
  const prompt = Array.from({ length: T4.prompt }, () => g.int(0, T4.vocabSize));
  const opts = { maxNewTokens: T4.newTokens, temperature: 0, eosTokenIds: [] };
  const cached = (): number[] => kiln.infer.generate(gpt, prompt, opts);
  const moduleCached = (): number[] => kiln.infer.generate(gpt, prompt, opts);
  const uncached = (): number[] => kiln.infer.generate(gpt, prompt, { ...opts, cache: false });
  const a = cached();
  const b = options.skipUncached ? moduleCached() : uncached();
  return {
    cachedTokensPerSecond: medianRate(cached, repeats),
    uncachedTokensPerSecond: options.skipUncached ? NaN : medianRate(uncached, options.uncachedRepeats ?? Math.max(1, repeats >> 2)),
    moduleCachedTokensPerSecond: medianRate(moduleCached, Math.max(1, repeats >> 2)),
    cacheMatchesRecompute: a.length === b.length && a.every((v, i) => v === b[i]),
    simdMatVec: false,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = runT4({ repeats: Number(process.argv[2] ?? 7) });
  console.log(JSON.stringify({ backend: kiln.backendInfo(), ...r }));
}

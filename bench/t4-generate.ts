// T4 of BENCHMARKS.md on Kiln: greedy generation with the T3 model (V=4096, T=128, L=4, H=4, C=256), prompt 16
// tokens, 112 new tokens, batch 1, with the KV cache. Three paths, each timed the same way (median of repeats after
// one warm-up, prefill included; the paths
// run in rotation so that a drift in the machine's speed weighs on each alike):
//   - `gpt.generate(idx, 112, { temperature: 0 })`: the model's own method (its default temperature is 1, so greedy is
//     asked for), the headline, like for like with a PyTorch loop;
//   - `kiln.infer.generate(gpt, promptIds, { maxNewTokens: 112 })`: the code path the CLI and the server take;
//   - the same at the CLI's sampling defaults (temperature 0.8, top-p 0.95), reported as its cost over greedy.
// Public API only. Standalone: `node --import tsx bench/t4-generate.ts [repeats]` prints one JSON line.

import * as kiln from '../src/index.js';

export const T4 = { vocabSize: 4096, context: 128, layers: 4, heads: 4, width: 256, prompt: 16, newTokens: 112 };
/** The CLI's sampling defaults (src/cli: --temperature 0.8 --top-p 0.95). */
export const CLI_SAMPLING = { temperature: 0.8, topP: 0.95 };

export interface T4Result {
  /** New tokens/s through gpt.generate (greedy). */
  modelGenerateTokensPerSecond: number;
  /** New tokens/s through kiln.infer.generate (greedy: its default temperature is 0). */
  inferGreedyTokensPerSecond: number;
  /** New tokens/s through kiln.infer.generate at the CLI's sampling defaults. */
  inferSamplingTokensPerSecond: number;
  /** Median over rounds of (sampling time / greedy time) of the pair timed back to back. */
  samplingCostOverGreedy: number;
  /** Whether gpt.generate and kiln.infer.generate produce the same greedy tokens. */
  greedyOutputsMatch: boolean;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Times the paths in rotation (one warm-up each, then `repeats` rounds of every path in turn), so that a drift in
 * the machine's speed within the run weighs on every path alike. Returns each path's seconds per call, in order.
 */
/**
 * Warm-up: every path in turn until this long has passed (at least once each), on both sides alike (t4_generate.py
 * uses the same). After one run each, V8 may still be tiering up the decoding loop and the sampler during the first
 * timed rounds of a fresh process (one run here: 3489 new tokens/s, then 4222 in a second call); a warm-up by time,
 * the same on both sides, takes that out of the comparison. Run-to-run noise on a shared VM stays ~10% either way.
 */
const WARM_MS = 1500;

function interleavedSeconds(paths: (() => number[])[], repeats: number): number[][] {
  const start = performance.now();
  do for (const run of paths) run(); while (performance.now() - start < WARM_MS);
  const times = paths.map(() => [] as number[]);
  for (let i = 0; i < repeats; i++) {
    paths.forEach((run, p) => {
      const t = performance.now();
      const out = run();
      times[p].push((performance.now() - t) / 1000);
      if (out.length !== T4.newTokens) throw new Error(`T4: expected ${T4.newTokens} new tokens, got ${out.length}`);
    });
  }
  return times;
}

/** Runs T4 on the current backend. */
export function runT4(options: { repeats?: number } = {}): T4Result {
  const repeats = options.repeats ?? 5;
  const gpt = new kiln.models.GPT({ vocabSize: T4.vocabSize, context: T4.context, layers: T4.layers, heads: T4.heads, width: T4.width },
    { generator: new kiln.Generator(0) });
  gpt.eval().freeze(); // as loadModel leaves a model for inference
  const g = new kiln.Generator(1);
  const prompt = Array.from({ length: T4.prompt }, () => g.int(0, T4.vocabSize));
  const idx = kiln.tensor(Int32Array.from(prompt), { shape: [1, T4.prompt] });
  const viaModel = (): number[] => Array.from(gpt.generate(idx, T4.newTokens, { temperature: 0 }).data() as Int32Array).slice(T4.prompt);
  const viaInfer = (): number[] => kiln.infer.generate(gpt, prompt, { maxNewTokens: T4.newTokens });
  let seed = 0;
  const viaInferSampling = (): number[] => kiln.infer.generate(gpt, prompt, { maxNewTokens: T4.newTokens, ...CLI_SAMPLING, seed: seed++ });
  const a = viaModel();
  const b = viaInfer();
  const [model, greedy, sampling] = interleavedSeconds([viaModel, viaInfer, viaInferSampling], repeats);
  return {
    modelGenerateTokensPerSecond: T4.newTokens / median(model),
    inferGreedyTokensPerSecond: T4.newTokens / median(greedy),
    inferSamplingTokensPerSecond: T4.newTokens / median(sampling),
    samplingCostOverGreedy: median(sampling.map((t, i) => t / greedy[i])),
    greedyOutputsMatch: a.length === b.length && a.every((v, i) => v === b[i]),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = runT4({ repeats: Number(process.argv[2] ?? 5) });
  console.log(JSON.stringify({ backend: kiln.backendInfo(), ...r }));
}

// Kiln's side of one benchmark round, in a fresh process: `node --import tsx bench/kiln-worker.ts JOB 'JSON'` prints
// one JSON line. bench/run.ts starts one per round and alternates them with bench/torch_bench.py (the PyTorch side,
// same job names). Threads: KILN_THREADS (bench/run.ts passes the count both sides use).
//   t1kernel  GEMM through the backend into a preallocated output (like numpy/torch with out=), GFLOP/s per shape
//   t1api     kiln.noGrad(() => a.matmul(b)) through the public API: the first call in this process, then the median
//   mlp       an MLP 784-256-256-10 training loop through the public API (no activationScope), steps/s, RSS growth
//   t2        the MNIST MLP (bench/t2-mnist.ts)
//   t5        the MNIST CNN (bench/t5-cnn.ts)
//   gpt       T3/T3b training steps (bench/t3-gpt.ts); precision and checkpoint select the variant
//   gemmbf16  the GEMMs of a T3b step (forward, dx, dW; head included) in float32 and bf16, GFLOP/s per shape
//   t4        generation (bench/t4-generate.ts)
//   t6        the char-level LSTM language model (bench/t6-lstm.ts)
//   s1        kiln serve: a 50-request burst and tokens/s at 16 streams vs 1 (bench/s1-serve.ts)
//   s1soak    kiln serve: a soak of mixed traffic, failures and RSS growth (bench/s1-serve.ts)

import * as kiln from '../src/index.js';
import { backend } from '../src/backend/node.js';
import { rateSamples, median } from './stats.js';
import { RssGrowth } from './rss.js';
// Each workload's module is imported by its own job only: a job runs in a process that holds what a user's program
// for that workload would (importing every workload, the server included, made V8's background collections busy
// enough to slow t1api's 256x256 products by a fifth on 2 cores).

type Params = Record<string, unknown>;

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = s / 4294967296 - 0.5; }
  return a;
}

const jobs: Record<string, (p: Params) => Record<string, unknown> | Promise<Record<string, unknown>>> = {
  gemmbf16(p) {
    const be = backend();
    const opts = { warmMs: Number(p.warm_s ?? 0.3) * 1000, sampleMs: Number(p.sample_s ?? 0.1) * 1000, samples: Number(p.samples ?? 5) };
    const out: Record<string, unknown> = {};
    for (const [name, tA, tB, M, N, K] of p.shapes as [string, boolean, boolean, number, number, number][]) {
      const A = rand(M * K, 1);
      const B = rand(K * N, 2);
      const C = new Float32Array(M * N);
      const flops = 2 * M * N * K;
      out[`${name} float32`] = median(rateSamples(() => be.gemm(tA, tB, 1, M, N, K, 1, A, 0, B, 0, 0, C, 0), flops, opts)) / 1e9;
      out[`${name} bf16`] = be.gemmBf16
        ? median(rateSamples(() => be.gemmBf16!(tA, tB, 1, M, N, K, 1, A, 0, B, 0, 0, C, 0), flops, opts)) / 1e9 : null;
    }
    return out;
  },
  t1kernel(p) {
    const be = backend();
    const opts = { warmMs: Number(p.warm_s ?? 0.3) * 1000, sampleMs: Number(p.sample_s ?? 0.1) * 1000, samples: Number(p.samples ?? 5) };
    const gflops = (p.shapes as [number, number, number][]).map(([M, N, K]) => {
      const A = rand(M * K, 1);
      const B = rand(K * N, 2);
      const C = new Float32Array(M * N);
      return median(rateSamples(() => be.gemm(false, false, 1, M, N, K, 1, A, 0, B, 0, 0, C, 0), 2 * M * N * K, opts)) / 1e9;
    });
    return { gflops };
  },
  t1api(p) {
    const [M, N, K] = p.shape as [number, number, number];
    const a = kiln.tensor(rand(M * K, 1), { shape: [M, K] });
    const b = kiln.tensor(rand(K * N, 2), { shape: [K, N] });
    const flops = 2 * M * N * K;
    let t = performance.now();
    kiln.noGrad(() => a.matmul(b));
    const first = (performance.now() - t) / 1000;
    const times: number[] = [];
    const end = performance.now() + Number(p.follow_s ?? 1) * 1000;
    const minCalls = Number(p.min_calls ?? 5);
    const maxCalls = Number(p.max_calls ?? 50);
    while (times.length < minCalls || (performance.now() < end && times.length < maxCalls)) {
      t = performance.now();
      kiln.noGrad(() => a.matmul(b));
      times.push((performance.now() - t) / 1000);
    }
    return { first_gflops: flops / first / 1e9, follow_gflops: flops / median(times) / 1e9, calls: times.length };
  },
  mlp(p) {
    kiln.manualSeed(0);
    const { nn, optim } = kiln;
    const model = new nn.Sequential(new nn.Linear(784, 256), new nn.ReLU(), new nn.Linear(256, 256), new nn.ReLU(), new nn.Linear(256, 10));
    const opt = new optim.Adam(model.parameters(), { lr: 1e-3 });
    const x = kiln.randn([128, 784]);
    const y = kiln.randint(0, 10, [128]);
    const step = () => {
      opt.zeroGrad();
      const loss = nn.functional.crossEntropy(model.forward(x), y);
      loss.backward();
      opt.step();
      return loss.item();
    };
    for (let i = 0; i < Number(p.warmup); i++) step();
    const mem = new RssGrowth();
    const steps = Number(p.steps);
    const t = performance.now();
    for (let i = 0; i < steps; i++) { step(); mem.sample(); }
    const secs = (performance.now() - t) / 1000;
    return { steps_per_s: steps / secs, rss_growth_mb: mem.growthMB(), rss_exact: mem.exact };
  },
  async t2(p) {
    const { runT2 } = await import('./t2-mnist.js');
    const r = runT2(p.max_batches === undefined ? {} : { maxBatches: Number(p.max_batches) });
    return { samples_per_s: r.samplesPerSecond, accuracy: Number.isNaN(r.accuracy) ? null : r.accuracy };
  },
  async t5(p) {
    const { runT5 } = await import('./t5-cnn.js');
    const r = runT5(p.max_batches === undefined ? {} : { maxBatches: Number(p.max_batches) });
    return { samples_per_s: r.samplesPerSecond, accuracy: Number.isNaN(r.accuracy) ? null : r.accuracy };
  },
  async gpt(p) {
    const { runGPTSteps } = await import('./t3-gpt.js');
    const s = { V: Number(p.V), T: Number(p.T), L: Number(p.L), H: Number(p.H), C: Number(p.C), B: Number(p.B) };
    const r = runGPTSteps(s, { warmup: Number(p.warmup), steps: Number(p.steps),
      precision: p.precision === 'bf16' ? 'bf16' : 'float32', checkpoint: p.checkpoint === true });
    return { ms_per_step: r.msPerStep, params: r.params, first_loss: r.firstLoss, last_loss: r.lastLoss,
      rss_growth_mb: r.rssGrowthMB, rss_exact: r.rssExact, peak_rss_mb: r.peakRssMB };
  },
  async t4(p) {
    const { runT4 } = await import('./t4-generate.js');
    const r = runT4({ repeats: Number(p.repeats ?? 5) });
    return { model_generate_tokens_per_s: r.modelGenerateTokensPerSecond, infer_greedy_tokens_per_s: r.inferGreedyTokensPerSecond,
      infer_sampling_tokens_per_s: r.inferSamplingTokensPerSecond,
      sampling_cost_over_greedy: r.samplingCostOverGreedy, greedy_outputs_match: r.greedyOutputsMatch };
  },
  async t6(p) {
    const { runT6 } = await import('./t6-lstm.js');
    const r = runT6({ warmup: Number(p.warmup ?? 10), steps: Number(p.steps ?? 20) });
    return { tokens_per_s: r.tokensPerSecond, ms_per_step: r.msPerStep, params: r.params, first_loss: r.firstLoss,
      last_loss: r.lastLoss };
  },
  s1: async () => (await import('./s1-serve.js')).runS1(),
  s1soak: async (p) => (await import('./s1-serve.js')).runS1Soak(Number(p.seconds ?? 600)),
};

const [job, json] = process.argv.slice(2);
if (!jobs[job]) {
  console.log(JSON.stringify({ error: `usage: kiln-worker.ts ${Object.keys(jobs).join('|')} [JSON]` }));
  process.exit(2);
}
const info = kiln.backendInfo();
try {
  console.log(JSON.stringify({ backend: info, ...await jobs[job](json ? JSON.parse(json) as Params : {}) }));
} catch (e) {
  console.error(e);
  console.log(JSON.stringify({ backend: info, error: `${(e as Error).name}: ${(e as Error).message.split('\n')[0]}` }));
}

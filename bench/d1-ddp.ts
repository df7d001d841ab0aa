// D1 of the bench: data-parallel T3 (bench/t3-gpt.ts) on one process or under `mpirun -np N`, one thread per rank
// (KILN_THREADS=1). Each rank trains on its own B rows (the global batch is N x B), with DistributedDataParallel's
// bucketed all-reduce overlapped with backward. Rank 0 prints one JSON line:
//   ms_per_step           median step (zero-grad, forward, backward, the gradient wait, AdamW)
//   backward_ms           median backward with the bucket all-reduces running beside it
//   backward_alone_ms     median backward inside noSync (no communication), the steps in between
//   wait_ms               median time finishGradientSync() waits after backward (communication not hidden)
//   allreduce_ms          the same gradients all-reduced on their own (no backward running)
//   allreduce_gbps        bytes / time of a 25 MB all-reduce on the world (algorithm bandwidth), GB/s
// `node --import tsx bench/d1-ddp.ts '{"warmup":2,"steps":6,"bucket_mb":25}'` (or under mpirun); bench/run.ts starts it.

import * as kiln from '../src/index.js';
import { T3, tokens } from './t3-gpt.js';

const p = JSON.parse(process.argv[2] ?? '{}') as { warmup?: number; steps?: number; bucket_mb?: number };
const warmup = p.warmup ?? 2;
const steps = p.steps ?? 6;
const d = kiln.distributed;
const { rank, worldSize } = d.init();
const s = T3;

function med(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  return a.length === 0 ? NaN : a.length % 2 ? a[a.length >> 1] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2;
}

kiln.manualSeed(0);
const model = new kiln.models.GPT({ vocabSize: s.V, context: s.T, layers: s.L, heads: s.H, width: s.C, dropout: 0, bias: true, tiedEmbeddings: true });
const ddp = new d.DistributedDataParallel(model, { bucketCapMB: p.bucket_mb ?? 25 });
const opt = new kiln.optim.AdamW(model.parameters(), { lr: 3e-4, betas: [0.9, 0.999], weightDecay: 0.1 });
const { idx: ids, targets: tgt } = tokens(s);
const shift = (a: Int32Array) => a.map((v) => (v + 31 * rank) % s.V); // each rank its own rows
const idx = kiln.tensor(shift(ids), { shape: [s.B, s.T] });
const targets = kiln.tensor(shift(tgt), { shape: [s.B, s.T] });

const step: number[] = [];
const backward: number[] = [];
const alone: number[] = [];
const wait: number[] = [];
for (let i = 0; i < warmup + 2 * steps; i++) {
  // Odd timed steps run backward without communication (noSync) to time backward alone; their gradients are then
  // all-reduced after it, so every step still trains on the averaged gradient.
  const quiet = i >= warmup && (i - warmup) % 2 === 1;
  const t0 = performance.now();
  opt.zeroGrad();
  const loss = model.loss(idx, targets);
  const b0 = performance.now();
  if (quiet) ddp.noSync(() => loss.backward()); else loss.backward();
  const b1 = performance.now();
  ddp.finishGradientSync();
  const w1 = performance.now();
  opt.step();
  loss.item();
  const t1 = performance.now();
  if (i < warmup) continue;
  if (quiet) alone.push(b1 - b0);
  else { step.push(t1 - t0); backward.push(b1 - b0); wait.push(w1 - b1); }
}

// The same gradients all-reduced with nothing else running, bucket by bucket as the wrapper sends them.
const reduceTimes: number[] = [];
const buckets = ddp.bucketSizes().map((n) => kiln.ones([n]));
for (let r = 0; r < 3; r++) {
  d.barrier();
  const t0 = performance.now();
  for (const b of buckets) d.allReduce(b);
  reduceTimes.push(performance.now() - t0);
}
// Loopback bandwidth: a 25 MB buffer (the default bucket), algorithm bandwidth = bytes / time.
const big = kiln.ones([(25 * 1024 * 1024) / 4]);
const bwTimes: number[] = [];
for (let r = 0; r < 5; r++) {
  d.barrier();
  const t0 = performance.now();
  d.allReduce(big);
  bwTimes.push(performance.now() - t0);
}
if (rank === 0) {
  console.log(JSON.stringify({
    world: worldSize, tokens_per_step: worldSize * s.B * s.T, ms_per_step: med(step), backward_ms: med(backward),
    backward_alone_ms: med(alone), wait_ms: med(wait), allreduce_ms: worldSize > 1 ? med(reduceTimes) : 0,
    allreduce_gbps: worldSize > 1 ? (25 * 1024 * 1024) / (med(bwTimes) / 1000) / 1e9 : null,
    buckets: ddp.bucketSizes().length, params: model.numParameters(),
  }));
}

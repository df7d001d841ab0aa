// T3/T3b of BENCHMARKS.md: one GPT training step (zero-grad, forward, cross-entropy, backward, AdamW, reading the
// loss) on fixed pseudo-random tokens (the same as the PyTorch side), timed after warm-up. Written against the public API only.

import * as kiln from '../src/index.js';
import { RssGrowth } from './rss.js';

export interface GPTShape { V: number; T: number; L: number; H: number; C: number; B: number }

export const T3: GPTShape = { V: 4096, T: 128, L: 4, H: 4, C: 256, B: 8 };
export const T3B: GPTShape = { V: 8192, T: 256, L: 6, H: 6, C: 384, B: 8 };

/** FLOPs per training step as BENCHMARKS.md counts them. */
export function stepFlops(s: GPTShape): number {
  return 6 * s.B * s.T * (12 * s.L * s.C * s.C + s.V * s.C) + 12 * s.L * s.B * s.T * s.T * s.C;
}

/** The step's tokens, the same on the PyTorch side (bench/torch_bench.py): a fixed hash, no generator involved. */
export function tokens(s: GPTShape): { idx: Int32Array; targets: Int32Array } {
  const n = s.B * s.T;
  const idx = new Int32Array(n);
  const targets = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    idx[i] = (i * 7919 + 17) % s.V;
    targets[i] = (i * 104729 + 13) % s.V;
  }
  return { idx, targets };
}

export interface StepResult {
  msPerStep: number; params: number; firstLoss: number; lastLoss: number;
  /** RSS growth during the timed steps (peak during them minus RSS after warm-up), MB; exact: the peak is the kernel's */
  rssGrowthMB: number; rssExact: boolean;
  /** the process's peak RSS so far (MB): with a fresh process per run, the step's peak memory */
  peakRssMB: number;
}

/** How a step runs: GEMM precision (kiln.autocast) and gradient checkpointing of the blocks. */
export interface StepMode { precision?: 'float32' | 'bf16'; checkpoint?: boolean }

/** Median ms per step over `steps` steps after `warmup` steps, on the current backend; onStep(i) runs before step i. */
export function runGPTSteps(s: GPTShape, { warmup = 3, steps = 10, onStep = (_i: number) => {}, precision = 'float32', checkpoint = false }:
  { warmup?: number; steps?: number; onStep?: (i: number) => void } & StepMode = {}): StepResult {
  kiln.manualSeed(0);
  const model = new kiln.models.GPT({ vocabSize: s.V, context: s.T, layers: s.L, heads: s.H, width: s.C, dropout: 0,
    bias: true, tiedEmbeddings: true });
  model.checkpointActivations = checkpoint;
  const params = model.parameters().reduce((n, p) => n + p.size, 0);
  const opt = new kiln.optim.AdamW(model.parameters(), { lr: 3e-4, betas: [0.9, 0.999], weightDecay: 0.1 });
  const { idx: ids, targets: tgt } = tokens(s);
  const idx = kiln.tensor(ids, { shape: [s.B, s.T] });
  const targets = kiln.tensor(tgt, { shape: [s.B, s.T] });
  const times: number[] = [];
  let firstLoss = NaN;
  let lastLoss = NaN;
  let mem: RssGrowth | undefined;
  for (let i = 0; i < warmup + steps; i++) {
    onStep(i);
    if (i === warmup) mem = new RssGrowth();
    const t0 = performance.now();
    opt.zeroGrad();
    const loss = kiln.autocast(precision, () => model.loss(idx, targets)); // as the PyTorch side: only the loss
    loss.backward();
    opt.step();
    lastLoss = loss.item();
    if (i === 0) firstLoss = lastLoss;
    if (i >= warmup) { times.push(performance.now() - t0); mem!.sample(); }
  }
  times.sort((a, b) => a - b);
  const msPerStep = times.length % 2 ? times[times.length >> 1] : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
  return { msPerStep, params, firstLoss, lastLoss, rssGrowthMB: mem?.growthMB() ?? NaN, rssExact: mem?.exact ?? false,
    peakRssMB: process.resourceUsage().maxRSS / 1024 };
}

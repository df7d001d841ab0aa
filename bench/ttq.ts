// Time to quality (bench row "ttq"), Kiln's side: the default pre-training recipe's model, optimizer, schedule and
// data, trained while the loss over the whole held-out split is measured every evalEvery steps (clock stopped).
// bench/ttq.py is PyTorch's side of the same run; bench/run.ts runs both and compares the time to the same loss.
//
//   node --import tsx bench/ttq.ts data  '{"dir": "/tmp/x", "preset": "small", "maxSteps": 3000}'   the shared files
//   node --import tsx bench/ttq.ts train '{"dir": "/tmp/x"}'                                          Kiln trains on them
//
// `data` writes into dir: meta.json (settings, shapes, the bigram's loss on the held-out split), val.i32 (every
// held-out token) and batches.i32 (steps x B x (T + 1) tokens: the recipe's training windows in the order its seeded
// sampler draws them), so both sides see the same tokens in the same order. Each job prints one JSON line.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as kiln from '../src/index.js';

const { resolveSettings, pretrainData, splitTokens, warmupSteps } = kiln.recipes.pretrain;

/** What both sides read from meta.json. */
export interface TTQMeta {
  preset: string; V: number; T: number; L: number; H: number; C: number; B: number; dropout: number; bias: boolean;
  steps: number; lr: number; min_lr: number; warmup: number; weight_decay: number; beta2: number; clip: number;
  eval_every: number; seed: number; bigram_loss: number; unigram_loss: number; val_tokens: number;
}

/** One evaluation: the step, training seconds so far (evaluations excluded), and the whole-split loss. */
export interface TTQEval { step: number; train_s: number; loss: number }

function writeInt32(path: string, a: Int32Array): void {
  writeFileSync(path, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

function readInt32(path: string): Int32Array {
  const b = readFileSync(path);
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Writes the shared files for a recipe configuration (settings as `kiln pretrain` flags take them). */
export function writeData(dir: string, flags: Record<string, unknown>): TTQMeta {
  const s = resolveSettings({ progress: 'none', ...flags } as Partial<kiln.recipes.pretrain.PretrainSettings>);
  const { tokenizer, shards } = pretrainData(s, dir);
  const steps = s.maxSteps;
  if (steps === null) throw new Error('ttq data: give maxSteps');
  const B = s.batchSize;
  const T = s.context;
  const sampler = new kiln.data.TokenWindowSampler(shards.train, { batchSize: B, blockSize: T, seed: s.seed });
  const batches = new Int32Array(steps * B * (T + 1)); // (steps, B, T + 1)
  for (let i = 0; i < steps; i++) {
    const b = sampler.next();
    for (let r = 0; r < B; r++) {
      const row = (i * B + r) * (T + 1);
      batches.set(b.x.subarray(r * T, (r + 1) * T), row);
      batches[row + T] = b.y[(r + 1) * T - 1];
    }
  }
  const val = splitTokens(shards.val);
  const base = kiln.data.ngramBaselines(shards.train, val, { vocabSize: tokenizer.vocabSize });
  const meta: TTQMeta = {
    preset: s.preset, V: tokenizer.vocabSize, T, L: s.layers, H: s.heads, C: s.width, B, dropout: s.dropout, bias: s.bias,
    steps, lr: s.lr, min_lr: s.minLr, warmup: warmupSteps(s.warmup, steps), weight_decay: s.weightDecay, beta2: s.beta2,
    clip: s.clip, eval_every: s.evalEvery, seed: s.seed, bigram_loss: base.bigram.crossEntropy, unigram_loss: base.unigram.crossEntropy,
    val_tokens: val.length,
  };
  if (s.gradAccum !== 1) throw new Error('ttq data: gradAccum other than 1 is not part of the bench');
  writeInt32(join(dir, 'batches.i32'), batches);
  writeInt32(join(dir, 'val.i32'), val);
  writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta, null, 2));
  return meta;
}

/** Trains Kiln's GPT on the shared files as the recipe does, evaluating the whole held-out split along the way. */
export function train(dir: string): { evals: TTQEval[]; train_s: number; eval_s: number; params: number; final_loss: number } {
  const m = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as TTQMeta;
  const batches = readInt32(join(dir, 'batches.i32'));
  const val = readInt32(join(dir, 'val.i32'));
  kiln.manualSeed(m.seed);
  const gpt = new kiln.models.GPT({ vocabSize: m.V, context: m.T, layers: m.L, heads: m.H, width: m.C, dropout: m.dropout, bias: m.bias, tiedEmbeddings: true });
  const opt = new kiln.optim.AdamW(gpt.paramGroups(m.weight_decay), { lr: m.lr, betas: [0.9, m.beta2], eps: 1e-8 });
  const sched = new kiln.optim.Scheduler(opt, kiln.optim.cosineWithWarmup({ warmup: m.warmup, total: m.steps, floor: m.min_lr }));
  const params = gpt.parameters();
  const { B, T } = m;
  const x = new Int32Array(B * T); // (B, T)
  const y = new Int32Array(B * T); // (B, T)
  const evals: TTQEval[] = [];
  let trainMs = 0;
  let evalMs = 0;
  const evaluate = (step: number): void => {
    const t = performance.now();
    evals.push({ step, train_s: trainMs / 1000, loss: kiln.train.heldOutLoss(gpt, val, { context: T, batchSize: B }).loss });
    evalMs += performance.now() - t;
  };
  gpt.train();
  for (let i = 0; i < m.steps; i++) {
    const t = performance.now();
    for (let r = 0; r < B; r++) {
      const row = (i * B + r) * (T + 1);
      x.set(batches.subarray(row, row + T), r * T);
      y.set(batches.subarray(row + 1, row + T + 1), r * T);
    }
    opt.zeroGrad();
    const loss = gpt.loss(new kiln.Tensor(x.slice(), [B, T]), new kiln.Tensor(y.slice(), [B, T]));
    loss.backward();
    if (m.clip > 0) kiln.optim.clipGradNorm(params, m.clip);
    opt.step();
    sched.step();
    loss.item(); // the recipe reads every step's loss for its log
    trainMs += performance.now() - t;
    if ((i + 1) % m.eval_every === 0 || i + 1 === m.steps) evaluate(i + 1);
  }
  return { evals, train_s: trainMs / 1000, eval_s: evalMs / 1000, params: gpt.numParameters(), final_loss: evals[evals.length - 1].loss };
}

/** The first evaluation at or below `target`: its training seconds, or null when the run never got there. */
export function timeTo(evals: readonly TTQEval[], target: number): number | null {
  return evals.find((e) => e.loss <= target)?.train_s ?? null;
}

function main(): void {
  const [job, json] = process.argv.slice(2);
  const p = (json ? JSON.parse(json) : {}) as Record<string, unknown> & { dir?: string };
  if (!p.dir || (job !== 'data' && job !== 'train')) {
    console.log(JSON.stringify({ error: "usage: ttq.ts data|train '{\"dir\": ..., settings}'" }));
    process.exitCode = 2;
    return;
  }
  const { dir, ...flags } = p;
  try {
    console.log(JSON.stringify({ backend: kiln.backendInfo(), ...(job === 'data' ? writeData(dir, flags) : train(dir)) }));
  } catch (e) {
    console.error(e);
    console.log(JSON.stringify({ error: `${(e as Error).name}: ${(e as Error).message.split('\n')[0]}` }));
  }
}

if (process.argv[1]?.endsWith('ttq.ts')) main();

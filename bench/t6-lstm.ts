// T6 of BENCHMARKS.md: a char-level LSTM language model (embedding 128, LSTM 2 x 256 batch-first, linear head to
// the character vocabulary), Adam lr 2e-3, batch 32, sequence 128, random windows of the Brown corpus with its
// word/TAG tags stripped. Figure: training tokens/s of the median step after 10 warm-up steps. One step = zero-grad,
// forward, cross-entropy, backward, Adam, reading the loss. Written against the public API only.

import * as kiln from '../src/index.js';

const { nn, optim } = kiln;

export const T6 = { E: 128, H: 256, L: 2, B: 32, T: 128, lr: 2e-3 };

/** The Brown corpus as character ids over its sorted character set (the PyTorch side reads the same ids). */
export function brownChars(): { ids: Int32Array; vocab: number } {
  const text = kiln.data.brownCorpus().map((d) => d.text).join('\n\n');
  const chars = [...new Set(text)].sort();
  const id = new Map(chars.map((c, i) => [c, i]));
  const cps = [...text];
  const ids = new Int32Array(cps.length);
  for (let i = 0; i < cps.length; i++) ids[i] = id.get(cps[i])!;
  return { ids, vocab: chars.length };
}

/** The T6 model: embedding, stacked batch-first LSTM, linear head; forward gives logits (B, T, vocab). */
export class CharLSTM extends nn.Module {
  embed: kiln.nn.Embedding;
  lstm: kiln.nn.LSTM;
  head: kiln.nn.Linear;

  constructor(vocab: number, s = T6) {
    super();
    this.embed = new nn.Embedding(vocab, s.E);
    this.lstm = new nn.LSTM(s.E, s.H, { numLayers: s.L, batchFirst: true });
    this.head = new nn.Linear(s.H, vocab);
  }

  /** Logits (B, T, vocab). The forward runs in an activationScope: its intermediates go back to the pool after backward. */
  forward(idx: kiln.Tensor): kiln.Tensor {
    return kiln.activationScope(() => this.head.forward(this.lstm.forward(this.embed.forward(idx))[0]), (y) => [y]);
  }
}

/** B random windows of T + 1 characters: inputs and next-character targets, (B, T) each. */
export function windows(ids: Int32Array, B: number, T: number, gen: kiln.Generator): { x: kiln.Tensor; y: kiln.Tensor } {
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const start = Math.floor(gen.uniform() * (ids.length - T - 1));
    x.set(ids.subarray(start, start + T), b * T);
    y.set(ids.subarray(start + 1, start + T + 1), b * T);
  }
  return { x: kiln.tensor(x, { shape: [B, T] }), y: kiln.tensor(y, { shape: [B, T] }) };
}

export interface T6Result { tokensPerSecond: number; msPerStep: number; firstLoss: number; lastLoss: number; params: number }

/** Median step over `steps` timed steps after `warmup`, on the current backend. */
export function runT6({ warmup = 10, steps = 20, data = brownChars() } = {}): T6Result {
  kiln.manualSeed(0);
  const s = T6;
  const model = new CharLSTM(data.vocab);
  const opt = new optim.Adam(model.parameters(), { lr: s.lr });
  const gen = new kiln.Generator(1);
  const times: number[] = [];
  let firstLoss = NaN;
  let lastLoss = NaN;
  for (let i = 0; i < warmup + steps; i++) {
    const { x, y } = windows(data.ids, s.B, s.T, gen);
    const t0 = performance.now();
    opt.zeroGrad();
    const logits = model.forward(x);
    const loss = nn.functional.crossEntropy(logits.reshape([-1, data.vocab]), y.reshape([-1]));
    loss.backward();
    opt.step();
    lastLoss = loss.item();
    if (i === 0) firstLoss = lastLoss;
    if (i >= warmup) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)];
  return { tokensPerSecond: (s.B * s.T) / (ms / 1000), msPerStep: ms, firstLoss, lastLoss,
    params: model.parameters().reduce((n, p) => n + p.size, 0) };
}

// A character-level LSTM language model on the bundled Brown corpus (the T6 model of BENCHMARKS.md): embedding,
// a stacked batch-first nn.LSTM, a linear head; Adam on random windows; then it writes text one character at a
// time, carrying the LSTM's [h, c] state from step to step.
// Run: npx tsx examples/char-lstm.ts                 (T6 sizes: embedding 128, LSTM 2 x 256, 300 steps)
//      npx tsx examples/char-lstm.ts --steps 2000    (longer: the samples turn into English-looking words)

import * as kiln from 'kiln';
import { parseArgs } from 'node:util';

const { nn, optim } = kiln;

export interface CharLstmOptions {
  steps?: number;
  embed?: number;
  hidden?: number;
  layers?: number;
  batch?: number;
  seqLen?: number;
  lr?: number;
  /** Train on the first this-many characters of the corpus only (quick runs); default all of it. */
  chars?: number;
  /** Characters to write after training. */
  sampleLength?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface CharLstmResult { losses: number[]; sample: string; tokensPerSecond: number }

/** Embedding -> LSTM -> Linear over characters. */
class CharModel extends nn.Module {
  embed: kiln.nn.Embedding;
  lstm: kiln.nn.LSTM;
  head: kiln.nn.Linear;

  constructor(vocab: number, embed: number, hidden: number, layers: number) {
    super();
    this.embed = new nn.Embedding(vocab, embed);
    this.lstm = new nn.LSTM(embed, hidden, { numLayers: layers, batchFirst: true });
    this.head = new nn.Linear(hidden, vocab);
  }

  /** idx (B, T) to logits (B, T, vocab) and the LSTM's final [h, c]. */
  forward(idx: kiln.Tensor, state?: [kiln.Tensor, kiln.Tensor]): [kiln.Tensor, [kiln.Tensor, kiln.Tensor]] {
    const [out, next] = this.lstm.forward(this.embed.forward(idx), state);
    return [this.head.forward(out), next];
  }
}

export function trainCharLstm(options: CharLstmOptions = {}): CharLstmResult {
  const { steps = 300, embed = 128, hidden = 256, layers = 2, batch = 32, seqLen = 128, lr = 2e-3, sampleLength = 200,
    seed = 0, log = console.log } = options;
  kiln.manualSeed(seed);
  let text = kiln.data.brownCorpus().map((d) => d.text).join('\n\n');
  if (options.chars !== undefined) text = text.slice(0, options.chars);
  const chars = [...new Set(text)].sort();
  const index = new Map(chars.map((c, i) => [c, i]));
  const ids = Int32Array.from([...text], (c) => index.get(c)!);
  const model = new CharModel(chars.length, embed, hidden, layers);
  const opt = new optim.Adam(model.parameters(), { lr });
  const gen = new kiln.Generator(seed + 1);
  const losses: number[] = [];
  const t0 = performance.now();
  for (let step = 1; step <= steps; step++) {
    const x = new Int32Array(batch * seqLen);
    const y = new Int32Array(batch * seqLen);
    for (let b = 0; b < batch; b++) {
      const start = gen.int(0, ids.length - seqLen - 1);
      x.set(ids.subarray(start, start + seqLen), b * seqLen);
      y.set(ids.subarray(start + 1, start + seqLen + 1), b * seqLen);
    }
    opt.zeroGrad();
    const [logits] = model.forward(kiln.tensor(x, { shape: [batch, seqLen] }));
    const loss = nn.functional.crossEntropy(logits.reshape([-1, chars.length]), kiln.tensor(y));
    loss.backward();
    opt.step();
    losses.push(loss.item());
    if (step % 50 === 0 || step === steps) log(`step ${step}: loss ${losses[losses.length - 1].toFixed(3)}`);
  }
  const tokensPerSecond = (steps * batch * seqLen) / ((performance.now() - t0) / 1000);
  log(`${tokensPerSecond.toFixed(0)} tokens/s`);
  const sample = write(model, chars, index, 'The ', sampleLength, gen);
  log(sample);
  return { losses, sample, tokensPerSecond };
}

/** Feeds the prompt, then samples one character at a time, passing the LSTM state along. */
function write(model: CharModel, chars: string[], index: Map<string, number>, prompt: string, n: number,
  gen: kiln.Generator): string {
  model.eval();
  return kiln.noGrad(() => {
    let state: [kiln.Tensor, kiln.Tensor] | undefined;
    let input = [...prompt].map((c) => index.get(c) ?? 0);
    let out = prompt;
    for (let i = 0; i < n; i++) {
      const [logits, next] = model.forward(kiln.tensor(Int32Array.from(input), { shape: [1, input.length] }), state);
      state = next;
      const probs = logits.narrow(1, input.length - 1, 1).reshape([-1]).softmax(-1).data();
      let u = gen.uniform();
      let k = 0;
      while (k < probs.length - 1 && u >= probs[k]) u -= probs[k++];
      out += chars[k];
      input = [k];
    }
    return out;
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { steps: { type: 'string' }, chars: { type: 'string' } } });
  trainCharLstm({
    steps: values.steps === undefined ? undefined : Number(values.steps),
    chars: values.chars === undefined ? undefined : Number(values.chars),
  });
}

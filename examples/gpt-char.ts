// A character-level GPT in a plain loop, with nothing but the public API: build the model, train it with
// AdamW and a warmup-cosine schedule on random windows of a text, then sample from it with the KV cache.
// Run: npx tsx examples/gpt-char.ts                       (a few paragraphs of the Brown corpus, ~1 minute)
//      npx tsx examples/gpt-char.ts --text notes.txt --steps 2000

import * as kiln from 'kiln';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

export interface CharGptOptions {
  text?: string;
  steps?: number;
  context?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  log?: (line: string) => void;
}

export function trainCharGpt(options: CharGptOptions = {}): { model: kiln.models.GPT; losses: number[]; sample: string } {
  const { steps = 300, context = 64, batchSize = 16, lr = 3e-3, seed = 0, log = console.log } = options;
  const text = options.text ?? kiln.data.brownCorpus({ genres: 'r' }).map((d) => d.text).join('\n\n').slice(0, 100_000);
  const chars = [...new Set(text)].sort();
  const stoi = new Map(chars.map((c, i) => [c, i]));
  const ids = Int32Array.from(text, (c) => stoi.get(c)!);
  kiln.manualSeed(seed);
  const gen = new kiln.Generator(seed);

  const model = new kiln.models.GPT({ vocabSize: chars.length, context, layers: 2, heads: 4, width: 64 });
  const opt = new kiln.optim.AdamW(model.paramGroups(0.1), { lr, betas: [0.9, 0.99] });
  const sched = new kiln.optim.Scheduler(opt, kiln.optim.cosineWithWarmup({ warmup: Math.floor(steps / 10), total: steps, floor: 0.1 }));
  log(`${model.numParameters()} parameters, ${chars.length} characters, ${ids.length} characters of text`);

  const losses: number[] = [];
  for (let step = 1; step <= steps; step++) {
    // A batch of random windows: x = text[i : i+T], y = text[i+1 : i+T+1].
    const x = new Int32Array(batchSize * context);
    const y = new Int32Array(batchSize * context);
    for (let b = 0; b < batchSize; b++) {
      const i = gen.int(0, ids.length - context - 1);
      x.set(ids.subarray(i, i + context), b * context);
      y.set(ids.subarray(i + 1, i + context + 1), b * context);
    }
    opt.zeroGrad();
    const { loss } = model.forward(new kiln.Tensor(x, [batchSize, context]), new kiln.Tensor(y, [batchSize, context]));
    loss!.backward();
    kiln.optim.clipGradNorm(model.parameters(), 1);
    opt.step();
    sched.step();
    losses.push(loss!.item());
    if (step % 50 === 0 || step === steps) log(`step ${step}: loss ${losses[losses.length - 1].toFixed(3)}`);
  }

  const prompt = kiln.tensor([[...'The '].map((c) => stoi.get(c) ?? 0)], { dtype: 'int32' });
  const out = model.generate(prompt, 200, { temperature: 0.8, topK: 20, generator: gen });
  const sample = Array.from(out.storage, (i) => chars[i]).join('');
  log(`sample:\n${sample}`);
  return { model, losses, sample };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { text: { type: 'string' }, steps: { type: 'string' } } });
  trainCharGpt({ text: values.text ? readFileSync(values.text, 'utf8') : undefined, steps: values.steps ? Number(values.steps) : undefined });
}

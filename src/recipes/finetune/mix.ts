// Pre-training text to mix into fine-tuning against forgetting: random windows of a text source, tokenized with
// the model's tokenizer, as training rows whose every position is a target (the plain language-model loss).

import { Generator } from '../../tensor/random.js';
import type { Tokenizer } from '../../data/tokenizer/index.js';
import { brownCorpus, readTextSource } from '../../data/text/index.js';
import type { TrainingRow } from './encode.js';

/** Options of mixing pre-training text into a fine-tune. */
export interface PretrainRowsOptions {
  /** How many rows. */
  rows: number;
  /** Tokens per row (input length). */
  length: number;
  seed: number;
  /** A file or folder of text (default: the bundled Brown corpus). */
  source?: string;
}

/** `rows` windows of `length` + 1 tokens from documents drawn in a seeded order; line -1 marks them as text rows. */
export function pretrainRows(tok: Tokenizer, o: PretrainRowsOptions): TrainingRow[] {
  if (!Number.isInteger(o.rows) || o.rows < 0) throw new Error(`mixed-in text: rows must be an integer >= 0, got ${o.rows}`);
  if (!Number.isInteger(o.length) || o.length < 2) throw new Error(`mixed-in text: length must be an integer >= 2, got ${o.length}`);
  if (o.rows === 0) return [];
  const docs = o.source ? readTextSource(o.source) : brownCorpus();
  const g = new Generator(o.seed + 104729);
  const out: TrainingRow[] = [];
  // A document gives several windows; only the documents needed are tokenized (the whole corpus is millions of tokens).
  for (let tries = 0; out.length < o.rows && tries < o.rows * 4 + 16; tries++) {
    const ids = tok.encode(docs[g.int(0, docs.length)].text);
    const windows = Math.min(8, Math.floor(ids.length / (o.length + 1)));
    for (let w = 0; w < windows && out.length < o.rows; w++) {
      const at = g.int(0, ids.length - o.length);
      const win = ids.slice(at, at + o.length + 1);
      out.push({ input: win.slice(0, -1), target: win.slice(1), line: -1 });
    }
  }
  if (out.length < o.rows) throw new Error(`mixed-in text: ${o.source ?? 'the corpus'} is too short for ${o.rows} windows of ${o.length + 1} tokens`);
  return out;
}

// Tiny models and tokenizers for the inference tests: a random-weight GPT and a character tokenizer (or a
// byte-level BPE), written to a frozen model folder when a test needs one on disk.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CharTokenizer } from '../../src/data/tokenizer/char.js';
import { trainByteLevelBPE } from '../../src/data/tokenizer/bpe-train.js';
import type { Tokenizer } from '../../src/data/tokenizer/tokenizer.js';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { GPT } from '../../src/models/gpt.js';
import { toHFConfig } from '../../src/models/gpt-config.js';
import { Generator } from '../../src/tensor/random.js';

export const TEXT = 'the quick brown fox jumps over the lazy dog. User: Assistant: hello world!\n';

/** A character tokenizer over TEXT's characters plus <|endoftext|>. */
export function charTokenizer(): CharTokenizer {
  return CharTokenizer.fromText(TEXT);
}

/** A small byte-level BPE (bytes are tokens, so any text encodes). */
export function bpeTokenizer(): Tokenizer {
  return trainByteLevelBPE([TEXT.repeat(4)], { vocabSize: 300 });
}

/**
 * A random GPT. Its weights are scaled up from GPT-2's 0.02 so the output depends on the input (with tiny
 * weights every position predicts nearly the same distribution).
 */
export function tinyGPT(vocabSize: number, seed = 1, options: { context?: number; width?: number } = {}): GPT {
  const gpt = new GPT({ vocabSize, context: options.context ?? 64, layers: 2, heads: 2, width: options.width ?? 32 },
    { generator: new Generator(seed) });
  for (const [name, p] of gpt.namedParameters()) {
    if (name.endsWith('.weight') && p.ndim === 2) for (let i = 0; i < p.size; i++) p.storage[i] *= 40;
  }
  gpt.eval();
  return gpt;
}

/** Writes a frozen model folder (config.json in HF form, model.safetensors, tokenizer.json, tokenizer_config.json). */
export function writeModelFolder(gpt: GPT, tok: Tokenizer, tokenizerConfig: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-infer-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(toHFConfig(gpt.config), null, 2));
  saveSafetensors(join(dir, 'model.safetensors'), gpt.stateDict());
  tok.save(join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
  return dir;
}

// `kiln generate --model DIR [--max-tokens N] [--temperature X] [--top-k N] [--top-p X] [--seed N] PROMPT`:
// continues a prompt, streaming the text to stdout as it is generated (statistics go to stderr).
// Also holds the flag parsing and model opening that `kiln chat` and `kiln serve` share.

import { InvalidArgumentError, type Command } from 'commander';
import { existsSync } from 'node:fs';
import * as kiln from '../index.js';

/** A commander parser for numbers with bounds, failing with the flag's expectation. */
export function num(what: string, opts: { int?: boolean; min?: number; max?: number; exclusiveMin?: boolean } = {}): (v: string) => number {
  return (v: string): number => {
    const n = Number(v);
    const ok = v.trim() !== '' && Number.isFinite(n) && (!opts.int || Number.isInteger(n)) &&
      (opts.min === undefined || (opts.exclusiveMin ? n > opts.min : n >= opts.min)) && (opts.max === undefined || n <= opts.max);
    if (!ok) throw new InvalidArgumentError(`expected ${what}, got '${v}'.`);
    return n;
  };
}

/** The sampling flags shared by generate and chat. */
export function samplingFlags(cmd: Command, defaults: { maxTokens: number }): Command {
  return cmd
    .option('--max-tokens <n>', 'most new tokens', num('an integer >= 1', { int: true, min: 1 }), defaults.maxTokens)
    .option('--temperature <x>', 'sampling temperature; 0 is greedy', num('a number >= 0', { min: 0 }), 0.8)
    .option('--top-k <n>', 'sample from the k most likely tokens (0: all)', num('an integer >= 0', { int: true, min: 0 }), 0)
    .option('--top-p <x>', 'nucleus sampling: the smallest set of tokens with this much probability', num('a number in (0, 1]', { min: 0, max: 1, exclusiveMin: true }), 0.95)
    .option('--repetition-penalty <x>', 'divide the logits of tokens already seen (1: off)', num('a number > 0', { min: 0, exclusiveMin: true }), 1)
    .option('--seed <n>', 'seed for repeatable sampling', num('an integer', { int: true }));
}

export interface SamplingFlags { maxTokens: number; temperature: number; topK: number; topP: number; repetitionPenalty: number; seed?: number }

export function samplingOptions(f: SamplingFlags): kiln.infer.GenerateOptions {
  return { maxNewTokens: f.maxTokens, temperature: f.temperature, topK: f.topK, topP: f.topP, repetitionPenalty: f.repetitionPenalty, seed: f.seed };
}

/**
 * Opens --model: a run folder (its best checkpoint), a frozen model folder, a Hugging Face GPT-2 folder, or a
 * LoRA fine-tuning run (its adapters merged into the base), frozen and in evaluation mode.
 */
/** Help of --no-verify, shared by every command that loads weights. */
export const VERIFY_HELP = 'load weights without checking their recorded sha256, dtype and finiteness (for debugging a damaged file)';

export function openModel(dir: string, verify = true): kiln.hub.LoadedModel {
  if (!existsSync(dir)) throw new Error(`--model '${dir}' does not exist`);
  return kiln.hub.loadModel(dir, { verify });
}

export function register(program: Command): void {
  samplingFlags(program
    .command('generate')
    .description('Continue a prompt with a model, streaming the text as it is generated (a KV cache makes each token one small step).')
    .requiredOption('--model <dir>', 'a run folder (its best checkpoint), a frozen model folder or a Hugging Face GPT-2 or LlamaForCausalLM folder')
    .argument('<prompt>', 'the text to continue'), { maxTokens: 100 })
    .option('--stop <text...>', 'stop before any of these strings')
    .option('--no-cache', 'recompute the whole sequence for every token (slow; for comparison)')
    .option('--no-verify', VERIFY_HELP)
    .action(async (prompt: string, f: SamplingFlags & { model: string; stop?: string[]; cache: boolean; verify: boolean }) => {
      const m = openModel(f.model, f.verify);
      const t0 = performance.now();
      let n = 0;
      let finish: string | undefined;
      for await (const c of kiln.infer.streamGenerate(m.model, m.tokenizer, prompt, { ...samplingOptions(f), stop: f.stop, cache: f.cache })) {
        if (c.id !== undefined) n++;
        process.stdout.write(c.text);
        finish = c.finishReason ?? finish;
      }
      process.stdout.write('\n');
      const s = (performance.now() - t0) / 1000;
      process.stderr.write(`kiln generate: ${n} tokens in ${s.toFixed(2)} s (${(n / Math.max(s, 1e-9)).toFixed(1)} tokens/s), ` +
        `finished by ${finish === 'stop' ? 'end of text or a stop sequence' : 'the token limit or the context'}\n`);
    });
}

// `kiln pretrain`: pre-trains a GPT from scratch (the recipe is kiln.recipes.pretrain). Thin: registers one flag per
// setting of the recipe's table, reads --config and a resumed run's saved settings, and calls the recipe, with the
// live dashboard when --dashboard asks for it.

import type { Command } from 'commander';
import { resolve } from 'node:path';
import * as kiln from '../index.js';
import { startRunDashboard } from '../dashboard/index.js';

type PretrainSettings = kiln.recipes.pretrain.PretrainSettings;
const { OPTIONS, parseValue, readConfigFile, resolveSettings, savedSettings, pretrain } = kiln.recipes.pretrain;

export function register(program: Command): void {
  const cmd = program
    .command('pretrain')
    .description('Pre-train a GPT from scratch on a text corpus (default: the bundled Brown corpus): trains a BPE tokenizer, ' +
      'builds token shards, trains with AdamW and a warmup-cosine schedule, evaluates perplexity against unigram and bigram ' +
      'baselines, prints samples, and writes checkpoints and metrics.jsonl to the run folder.')
    .option('--config <file>', 'a JSON file of settings: the flag names below as keys (e.g. {"preset": "tiny", "max-steps": 500}); flags given on the command line win');
  for (const o of OPTIONS) {
    if (o.kind === 'bool' && o.key === 'bias') cmd.option('--no-bias', o.help);
    else if (o.kind === 'bool') cmd.option(`--${o.flag}`, o.help);
    else if (o.kind === 'strs') cmd.option(`--${o.flag} <${o.arg}>`, o.help, (v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    else cmd.option(`--${o.flag} <${o.arg}>`, o.help);
  }
  cmd.addHelpText('after', '\nExamples:\n  kiln pretrain                          # small GPT on the Brown corpus, about 5 minutes\n' +
    '  kiln pretrain --preset tiny            # about 20 seconds\n' +
    '  kiln pretrain --data notes/ --max-steps 2000 --out runs/notes\n' +
    '  kiln pretrain --out runs/notes --resume --max-steps 4000\n');
  cmd.action(async (raw: Record<string, unknown>) => {
    const flags: Partial<PretrainSettings> = {};
    for (const o of OPTIONS) {
      const name = o.key; // commander's camel-case attribute of --<flag>
      if (cmd.getOptionValueSource(name) !== 'cli') continue;
      (flags as Record<string, unknown>)[o.key] = o.kind === 'bool' ? raw[name] : parseValue(o, raw[name], `--${o.flag}`);
    }
    const file = typeof raw.config === 'string' ? readConfigFile(raw.config) : {};
    const resume = flags.resume ?? file.resume ?? false;
    const out = flags.out ?? file.out ?? null;
    const saved = resume && out ? savedSettings(resolve(out)) : {};
    await pretrain(resolveSettings(flags, file, saved), console.log, {
      startDashboard: (runDir, port) => startRunDashboard(runDir, { port }).catch(() => startRunDashboard(runDir, { port: 0 })),
    });
  });
}

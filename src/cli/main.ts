#!/usr/bin/env node
// The `kiln` command: parses flags with commander and hands each subcommand to its module in this folder.
// Each module exports `register(program)`; this file only lists them.

import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import * as dashboard from './dashboard.js';
import * as plot from './plot.js';
import * as pretrain from './pretrain.js';
import * as finetune from './finetune.js';
import * as exportCmd from './export.js';
import * as generate from './generate.js';
import * as chat from './chat.js';
import * as serve from './serve.js';
import * as doctor from './doctor.js';
import * as evalCmd from './eval.js';
import * as playground from './playground.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('kiln')
  .description('Train neural networks in TypeScript: pre-train, fine-tune, and serve GPT models.')
  .version(pkg.version)
  .showHelpAfterError();

// Subcommands register themselves here, one import and one call each.
const modules: { register(p: Command): void }[] = [dashboard, plot, pretrain, finetune, exportCmd, generate, chat, serve,
  doctor, evalCmd, playground];
for (const m of modules) m.register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  // Errors from bad input are one clear sentence; no stack trace for the user.
  console.error(`kiln: ${err instanceof Error ? err.message : String(err)}`);
  if (process.env.KILN_DEBUG && err instanceof Error) console.error(err.stack);
  process.exit(1);
});

// `kiln plot RUN [--out loss.svg|loss.png]`: writes a run's loss curves as a static image for reports and READMEs.

import type { Command } from 'commander';
import { plotRun } from '../train/plot.js';

export function register(program: Command): void {
  program
    .command('plot')
    .description("Write a run's training and validation loss against step as an SVG or PNG image.")
    .argument('<run>', 'run folder (or its metrics.jsonl)')
    .option('--out <file>', 'output image, .svg or .png', 'loss.svg')
    .option('--log-y', 'logarithmic loss axis')
    .option('--title <text>', 'chart title', 'Loss')
    .action(async (run: string, opts: { out: string; logY?: boolean; title: string }) => {
      await plotRun(run, opts.out, { logY: !!opts.logY, title: opts.title });
      console.log(`kiln plot: wrote ${opts.out}`);
    });
}

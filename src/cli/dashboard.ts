// `kiln dashboard [runs] [--host H] [--port N]`: serves the training dashboard for a runs folder until interrupted.

import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDashboard, startRunDashboard } from '../dashboard/index.js';

export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new Error(`--port must be an integer from 0 to 65535, got "${value}"`);
  return n;
}

export function register(program: Command): void {
  program
    .command('dashboard')
    .description('Serve a live dashboard of the runs in a folder: loss, learning rate, gradient norm, throughput, samples, config.')
    .argument('[runs]', 'folder whose sub-folders are runs', 'runs')
    .option('--host <host>', 'address to bind (127.0.0.1 keeps it on this machine)', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0 picks a free one)', '6006')
    .action(async (runs: string, opts: { host: string; port: string }) => {
      const port = parsePort(opts.port);
      if (!existsSync(runs)) console.log(`kiln: ${runs} does not exist yet; runs will appear as they are written`);
      // Given one run's folder rather than a folder of runs: serve its parent with that run chosen.
      const oneRun = existsSync(join(runs, 'metrics.jsonl')) || existsSync(join(runs, 'config.json'));
      const dash = oneRun
        ? await startRunDashboard(runs, { host: opts.host, port })
        : await startDashboard({ runsDir: runs, host: opts.host, port });
      console.log(`kiln dashboard: ${dash.url} (${oneRun ? `run ${runs}` : `runs in ${runs}`}; Ctrl-C to stop)`);
      if (!/^(127\.|localhost$|::1$)/.test(opts.host)) {
        console.log(`kiln: listening on ${opts.host}: anyone who can reach this machine can read these runs' metrics, configs and samples`);
      }
      await new Promise<void>((ok) => {
        const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); ok(); };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await dash.close();
    });
}

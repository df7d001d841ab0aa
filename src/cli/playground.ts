// `kiln playground [--host H] [--port N]`: serves the in-browser training page until interrupted.

import type { Command } from 'commander';
import { startPlayground } from '../playground/server.js';
import { parsePort } from './dashboard.js';

export function register(program: Command): void {
  program
    .command('playground')
    .description('Serve a page that trains a small GPT in your browser (on sample text or yours), then generates and downloads it.')
    .option('--host <host>', 'address to bind (127.0.0.1 keeps it on this machine)', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0 picks a free one)', '6007')
    .action(async (opts: { host: string; port: string }) => {
      const pg = await startPlayground({ host: opts.host, port: parsePort(opts.port) });
      console.log(`kiln playground: ${pg.url} (Ctrl-C to stop)`);
      await new Promise<void>((ok) => {
        const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); ok(); };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await pg.close();
    });
}

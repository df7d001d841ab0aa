// `kiln serve --model DIR [--host H] [--port N]`: the OpenAI-compatible HTTP server (completions, chat,
// streaming, models, health). SIGTERM or SIGINT stops accepting, finishes in-flight requests, then exits.

import type { Command } from 'commander';
import * as kiln from '../index.js';
import { num, openModel, VERIFY_HELP } from './generate.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('Serve a model over HTTP with the OpenAI API: POST /v1/completions, POST /v1/chat/completions (stream: true for ' +
      'server-sent events), GET /v1/models, GET /health. One generation runs at a time; others wait in a queue.')
    .requiredOption('--model <dir>', 'a run folder (its best checkpoint), a frozen model folder or a Hugging Face GPT-2 folder')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0 picks a free one)', num('a port number 0-65535', { int: true, min: 0, max: 65535 }), 8000)
    .option('--max-tokens-limit <n>', 'largest max_tokens a request may ask for', num('an integer >= 1', { int: true, min: 1 }), 512)
    .option('--max-body-bytes <n>', 'largest request body', num('an integer >= 1', { int: true, min: 1 }), 1024 * 1024)
    .option('--queue <n>', 'requests that may wait while one generates (then 503)', num('an integer >= 0', { int: true, min: 0 }), 32)
    .option('--log', 'log every request')
    .option('--no-verify', VERIFY_HELP)
    .action(async (f: { model: string; host: string; port: number; maxTokensLimit: number; maxBodyBytes: number; queue: number; log?: boolean; verify: boolean }) => {
      const m = openModel(f.model, f.verify);
      const server = await kiln.infer.startServer({
        model: m, host: f.host, port: f.port, maxTokensLimit: f.maxTokensLimit, maxBodyBytes: f.maxBodyBytes,
        queue: { maxWaiting: f.queue }, logger: !!f.log,
      });
      console.log(`kiln serve: ${m.name} on ${server.url} (POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health)`);
      const stop = (signal: string): void => {
        console.log(`kiln serve: ${signal}: finishing in-flight requests, then exiting`);
        server.close().then(() => {
          console.log('kiln serve: stopped');
          process.exit(0);
        }, (err: unknown) => {
          console.error(`kiln serve: ${(err as Error).message}`);
          process.exit(1);
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}

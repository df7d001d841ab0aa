// `kiln serve --model DIR [--host H] [--port N]`: the OpenAI-compatible HTTP server (completions, chat,
// streaming, models, health), continuous batching. SIGTERM or SIGINT stops accepting, finishes in-flight
// requests, then exits. --api-key (or KILN_API_KEY) and --allowed-hosts make it safe to expose; binding beyond
// loopback without a key prints a warning.

import type { Command } from 'commander';
import * as kiln from '../index.js';
import { num, openModel, VERIFY_HELP } from './generate.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('Serve a model over HTTP with the OpenAI API: POST /v1/completions, POST /v1/chat/completions (stream: true for ' +
      'server-sent events), GET /v1/models, GET /health. Concurrent requests decode together (continuous batching); ' +
      'beyond the batch they wait in a queue.')
    .requiredOption('--model <dir>', 'a run folder (its best checkpoint), a frozen model folder or a Hugging Face GPT-2 or LlamaForCausalLM folder')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--port <n>', 'port (0 picks a free one)', num('a port number 0-65535', { int: true, min: 0, max: 65535 }), 8000)
    .option('--max-tokens-limit <n>', 'largest max_tokens a request may ask for', num('an integer >= 1', { int: true, min: 1 }), 512)
    .option('--max-body-bytes <n>', 'largest request body', num('an integer >= 1', { int: true, min: 1 }), 1024 * 1024)
    .option('--batch <n>', 'requests decoded together (default 16, fewer when the KV cache would pass 512 MiB)', num('an integer >= 1', { int: true, min: 1 }))
    .option('--queue <n>', 'requests that may wait for a free batch row (then 503)', num('an integer >= 0', { int: true, min: 0 }), 256)
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" on /v1 routes (default: env KILN_API_KEY; none when unset)')
    .option('--allowed-hosts <list>', 'comma-separated Host header names the server answers (default: localhost, 127.0.0.1, ::1 ' +
      'and --host when it is a specific address; * allows any)')
    .option('--served-model-name <names>', 'comma-separated names a request\'s "model" may use (default: the model folder\'s name)')
    .option('--log', 'log every request')
    .option('--no-verify', VERIFY_HELP)
    .action(async (f: { model: string; host: string; port: number; maxTokensLimit: number; maxBodyBytes: number; batch?: number; queue: number;
      apiKey?: string; allowedHosts?: string; servedModelName?: string; log?: boolean; verify: boolean }) => {
      const apiKey = f.apiKey ?? (process.env.KILN_API_KEY || undefined);
      const list = (v: string | undefined, flag: string): string[] | undefined => {
        if (v === undefined) return undefined;
        const items = v.split(',').map((x) => x.trim()).filter((x) => x.length > 0);
        if (items.length === 0) throw new Error(`${flag}: expected a comma-separated list of names, got ${JSON.stringify(v)}`);
        return items;
      };
      const m = openModel(f.model, f.verify);
      const server = await kiln.infer.startServer({
        model: m, host: f.host, port: f.port, maxTokensLimit: f.maxTokensLimit, maxBodyBytes: f.maxBodyBytes,
        queue: { maxBatch: f.batch, maxWaiting: f.queue }, logger: !!f.log, apiKey,
        allowedHosts: list(f.allowedHosts, '--allowed-hosts'), modelNames: list(f.servedModelName, '--served-model-name'),
      });
      console.log(`kiln serve: ${m.name} on ${server.url} (POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health); ` +
        `batch ${server.batcher.maxBatch}, queue ${server.batcher.maxWaiting}${apiKey ? ', API key required' : ''}`);
      if (!kiln.infer.isLoopback(f.host) && !apiKey) {
        console.warn(`kiln serve: warning: listening on ${f.host}, beyond this machine, without an API key: anyone who can reach ` +
          'the port can use the model; set --api-key or KILN_API_KEY');
      }
      if (!kiln.infer.isLoopback(f.host) && f.allowedHosts === undefined && ['0.0.0.0', '::'].includes(f.host)) {
        console.warn('kiln serve: note: only Host headers localhost, 127.0.0.1 and ::1 are answered; pass --allowed-hosts with the ' +
          'names or addresses clients use');
      }
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

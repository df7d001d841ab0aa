// The command lines as a user runs them: `kiln generate`, `kiln chat` with piped input, and `kiln serve`
// finishing an in-flight streamed request on SIGTERM before exiting cleanly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { loadModel } from '../../src/hub/load.js';
import { ChatTemplate } from '../../src/infer/chat-template.js';
import { generateText } from '../../src/infer/generate.js';
import { charTokenizer, tinyGPT, writeModelFolder } from './helpers.js';

const tok = charTokenizer();
const dir = writeModelFolder(tinyGPT(tok.vocabSize, 21), tok);

function kiln(args: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { env: { ...process.env, NODE_NO_WARNINGS: '1' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(stdin ?? '');
  });
}

test('kiln generate and kiln chat (piped) print what the library generates', async () => {
  const { model, tokenizer } = loadModel(dir);
  const want = generateText(model, tokenizer, 'the quick', { maxNewTokens: 20, temperature: 0 }).text;
  const template = new ChatTemplate();
  const reply = generateText(model, tokenizer, template.render([{ role: 'user', content: 'hello' }]),
    { maxNewTokens: 15, temperature: 0, stop: template.stops }).text;
  const [gen, chat] = await Promise.all([
    kiln(['generate', '--model', dir, '--max-tokens', '20', '--temperature', '0', 'the quick']),
    kiln(['chat', '--model', dir, '--max-tokens', '15', '--temperature', '0'], 'hello\n/exit\n'),
  ]);
  assert.equal(gen.code, 0, gen.stderr);
  assert.equal(gen.stdout, `${want}\n`);
  assert.match(gen.stderr, /20 tokens in .* tokens\/s/);
  assert.equal(chat.code, 0, chat.stderr);
  assert.match(chat.stdout, /plain default template/);
  assert.ok(chat.stdout.includes(`you> hello\nassistant> ${reply.trimStart()}\nyou> /exit`), chat.stdout);
  // Bad flags fail in commander's parser with the expectation (checked in-process: a spawn costs seconds).
  const { num } = await import('../../src/cli/generate.js');
  assert.throws(() => num('an integer >= 0', { int: true, min: 0 })('-1'), /expected an integer >= 0, got '-1'/);
  assert.throws(() => num('a number in (0, 1]', { min: 0, max: 1, exclusiveMin: true })('0'), /got '0'/);
  assert.equal(num('a number')('0.5'), 0.5);
});

test('kiln serve answers, then on SIGTERM finishes the in-flight stream and exits 0', async () => {
  // Bound beyond loopback with the key from KILN_API_KEY: no warning, and requests need the key.
  const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--model', dir, '--port', '0', '--host', '0.0.0.0',
    '--allowed-hosts', 'localhost,127.0.0.1'], { env: { ...process.env, NODE_NO_WARNINGS: '1', KILN_API_KEY: 'k-123' } });
  let out = '';
  let err = '';
  p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const url = await new Promise<string>((resolve, reject) => {
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /on (http:\/\/[^ ]+)/.exec(out);
      if (m) resolve(m[1]);
    });
    p.on('close', () => reject(new Error(`serve exited early: ${out}`)));
  });
  const exited = new Promise<number | null>((resolve) => p.on('close', resolve));
  assert.match(out, /API key required/);
  const local = url.replace('0.0.0.0', '127.0.0.1');
  const noKey = JSON.stringify({ prompt: 'the', max_tokens: 2 });
  assert.equal((await fetch(`${local}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: noKey })).status, 401);
  const res = await fetch(`${local}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer k-123' },
    body: JSON.stringify({ prompt: 'the', max_tokens: 40, temperature: 0, stream: true }),
  });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const first = await reader.read();
  p.kill('SIGTERM');
  let body = new TextDecoder().decode(first.value);
  for (let r = await reader.read(); !r.done; r = await reader.read()) body += new TextDecoder().decode(r.value);
  assert.ok(body.trimEnd().endsWith('data: [DONE]'), body.slice(-200));
  assert.match(body, /"finish_reason":"(length|stop)"/);
  assert.equal(await exited, 0);
  assert.match(out, /SIGTERM: finishing in-flight requests/);
  assert.doesNotMatch(err, /warning/);
  await assert.rejects(fetch(`${local}/health`));
});

test('kiln serve beyond loopback without a key warns', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_NO_WARNINGS: '1' };
  delete env.KILN_API_KEY;
  const p = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--model', dir, '--port', '0', '--host', '0.0.0.0'], { env });
  let err = '';
  const closed = new Promise((resolve) => p.on('close', resolve));
  await new Promise<void>((resolve, reject) => {
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); if (/--allowed-hosts/.test(err)) resolve(); });
    p.on('close', () => reject(new Error(`serve exited early: ${err}`)));
  });
  p.kill('SIGTERM');
  await closed;
  assert.match(err, /warning: listening on 0\.0\.0\.0, beyond this machine, without an API key/);
});

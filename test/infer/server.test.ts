// The OpenAI-compatible server against the official `openai` client on 127.0.0.1 (ephemeral port): completions
// and chat, streaming and not, models and health, then malformed, mistyped and oversized requests, the
// max_tokens limit, a full queue, and a burst of concurrent requests that must all complete.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { loadModel } from '../../src/hub/load.js';
import { generateText } from '../../src/infer/generate.js';
import { startServer, type RunningServer } from '../../src/infer/server.js';
import { charTokenizer, tinyGPT, writeModelFolder } from './helpers.js';

let server: RunningServer;
let client: OpenAI;
let dir: string;

before(async () => {
  const tok = charTokenizer();
  dir = writeModelFolder(tinyGPT(tok.vocabSize, 11), tok);
  server = await startServer({ model: dir, port: 0, maxBodyBytes: 4096, maxTokensLimit: 48, queue: { maxBatch: 4, maxWaiting: 16 }, modelNames: ['m'] });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await server.close();
});

const post = (path: string, body: string, type = 'application/json'): Promise<Response> =>
  fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': type }, body });

test('GET /health and GET /v1/models', async () => {
  const h = await (await fetch(`${server.url}/health`)).json() as { status: string };
  assert.equal(h.status, 'ok');
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].object, 'model');
});

test('completions: greedy text equals generateText, with usage; streaming gives the same text', async () => {
  const { model, tokenizer } = loadModel(dir);
  const want = generateText(model, tokenizer, 'the quick', { maxNewTokens: 20, temperature: 0 });
  const r = await client.completions.create({ model: 'm', prompt: 'the quick', max_tokens: 20, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, want.text);
  assert.equal(r.choices[0].finish_reason, want.finishReason);
  assert.equal(r.usage?.prompt_tokens, 9);
  assert.equal(r.usage?.completion_tokens, want.ids.length);
  const stream = await client.completions.create({ model: 'm', prompt: 'the quick', max_tokens: 20, temperature: 0, stream: true });
  let text = '';
  let finish: string | null = null;
  let chunks = 0;
  for await (const c of stream) {
    text += c.choices[0].text;
    finish = c.choices[0].finish_reason ?? finish;
    chunks++;
  }
  assert.equal(text, want.text);
  assert.equal(finish, want.finishReason);
  assert.ok(chunks > 2, 'expected the text to arrive in several events');
  // A seed makes sampling repeatable over HTTP too.
  const a = await client.completions.create({ model: 'm', prompt: 'fox', max_tokens: 12, temperature: 1, seed: 5 });
  const b = await client.completions.create({ model: 'm', prompt: 'fox', max_tokens: 12, temperature: 1, seed: 5 });
  assert.equal(a.choices[0].text, b.choices[0].text);
});

test('chat completions through the default template, streaming and not', async () => {
  const messages = [{ role: 'user' as const, content: 'hello' }];
  const r = await client.chat.completions.create({ model: 'm', messages, max_tokens: 30, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(!r.choices[0].message.content!.includes('\nUser:'));
  const stream = await client.chat.completions.create({ model: 'm', messages, max_tokens: 30, temperature: 0, stream: true });
  let text = '';
  let role: string | undefined;
  let finish: string | null = null;
  for await (const c of stream) {
    assert.equal(c.object, 'chat.completion.chunk');
    role ??= c.choices[0].delta.role;
    text += c.choices[0].delta.content ?? '';
    finish = c.choices[0].finish_reason ?? finish;
  }
  assert.equal(role, 'assistant');
  assert.equal(text, r.choices[0].message.content);
  assert.equal(finish, r.choices[0].finish_reason);
});

test('bad requests get a 400 that names the field; oversized bodies 413; unknown routes 404', async () => {
  const cases: [string, string, RegExp, string | null][] = [
    ['/v1/completions', '{"prompt": "hi", ', /not valid JSON/, null],
    ['/v1/completions', '{"prompt": "hi", "max_tokens": "5"}', /max_tokens/, 'max_tokens'],
    ['/v1/completions', '{"prompt": 5}', /prompt/, 'prompt'],
    ['/v1/completions', '{"max_tokens": 5}', /'prompt' is required/, 'prompt'],
    ['/v1/completions', '{"prompt": "hi", "temperature": -1}', /temperature/, 'temperature'],
    ['/v1/completions', '{"prompt": "hi", "max_tokens": 49}', /must be at most 48/, 'max_tokens'],
    ['/v1/completions', '{"prompt": "hi", "stop": [1]}', /stop/, 'stop'],
    ['/v1/completions', '{"prompt": "hi", "n": 2}', /'n'/, 'n'],
    ['/v1/completions', '{"prompt": "€"}', /cannot be tokenized/, 'prompt'],
    ['/v1/completions', `{"prompt": "${'a'.repeat(70)}"}`, /context is 64 tokens/, 'prompt'],
    ['/v1/chat/completions', '{"messages": []}', /messages/, 'messages'],
    ['/v1/chat/completions', '{"messages": [{"role": "robot", "content": "x"}]}', /messages\.0\.role/, 'messages.0.role'],
    ['/v1/chat/completions', '{"messages": [{"role": "user"}]}', /messages\.0\.content' is required/, 'messages.0.content'],
  ];
  for (const [path, body, message, param] of cases) {
    const res = await post(path, body);
    const j = await res.json() as { error: { message: string; type: string; param: string | null } };
    assert.equal(res.status, 400, `${body}: ${JSON.stringify(j)}`);
    assert.match(j.error.message, message, body);
    assert.equal(j.error.param, param, body);
    assert.equal(j.error.type, 'invalid_request_error');
  }
  const big = await post('/v1/completions', JSON.stringify({ prompt: 'a'.repeat(5000) }));
  assert.equal(big.status, 413);
  assert.match((await big.json() as { error: { message: string } }).error.message, /limit of 4096 bytes/);
  assert.equal((await post('/v1/completions', 'prompt=hi', 'text/plain')).status, 415);
  assert.equal((await fetch(`${server.url}/v1/nothing`)).status, 404);
  // The openai client surfaces the 400 as an error with the status.
  await assert.rejects(client.completions.create({ model: 'm', prompt: 'hi', max_tokens: 1000 }),
    (err: { status?: number }) => err.status === 400);
});

test('a burst of concurrent requests is queued and every one is answered', async () => {
  const jobs = Array.from({ length: 8 }, (_, i) => i % 2 === 0
    ? client.completions.create({ model: 'm', prompt: 'the dog', max_tokens: 16, temperature: 0.8, seed: i })
      .then((r) => r.choices[0].finish_reason)
    : (async () => {
      const s = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 16, stream: true, seed: i });
      let finish: string | null = null;
      for await (const c of s) finish = c.choices[0].finish_reason ?? finish;
      return finish;
    })());
  const results = await Promise.all(jobs);
  for (const f of results) assert.ok(f === 'stop' || f === 'length', `finish_reason ${f}`);
  const h = await (await fetch(`${server.url}/health`)).json() as { queue: { running: number; waiting: number } };
  assert.deepEqual([h.queue.running, h.queue.waiting], [0, 0]);
});

test('a client that disconnects mid-stream frees the queue for the next request', async () => {
  const ctrl = new AbortController();
  const res = await fetch(`${server.url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, signal: ctrl.signal,
    body: JSON.stringify({ prompt: 'the', max_tokens: 48, temperature: 0, stream: true }),
  });
  const reader = res.body!.getReader();
  await reader.read();
  ctrl.abort();
  const r = await client.completions.create({ model: 'm', prompt: 'dog', max_tokens: 5, temperature: 0 });
  assert.ok(r.choices[0].finish_reason === 'length' || r.choices[0].finish_reason === 'stop');
  const h = await (await fetch(`${server.url}/health`)).json() as { queue: { running: number; waiting: number } };
  assert.deepEqual([h.queue.running, h.queue.waiting], [0, 0]);
});

test('a full queue answers 503, and close() lets in-flight requests finish', async () => {
  const tok = charTokenizer();
  const s = await startServer({ model: loadModel(dir), port: 0, queue: { maxBatch: 1, maxWaiting: 1 } });
  const body = JSON.stringify({ prompt: 'the', max_tokens: 40, temperature: 0 });
  const send = (): Promise<Response> => fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const first = send();
  const second = send();
  await new Promise((r) => setTimeout(r, 20));
  const third = await send();
  // With one running and one waiting, the third is refused (unless the first two already finished).
  assert.ok(third.status === 503 || third.status === 200, `status ${third.status}`);
  if (third.status === 503) assert.match((await third.json() as { error: { message: string } }).error.message, /busy: 2 requests are in flight/);
  const t0 = Date.now();
  const closing = s.close();
  const [r1, r2] = await Promise.all([first, second]);
  assert.equal(r1.status, 200);
  assert.equal(r2.status, 200);
  assert.equal(((await r1.json()) as { choices: { text: string }[] }).choices[0].text.length > 0, true);
  await closing;
  assert.ok(Date.now() - t0 < 10000, 'close() should not wait for keep-alive timeouts');
  await assert.rejects(send());
  void tok;
});

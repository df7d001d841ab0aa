// Fuzz: HTTP request bodies of the OpenAI-compatible server, injected in-process (fastify's inject: the same
// parsing, schema checks and handlers, no sockets). Mutated completion and chat bodies, and raw text sent as
// JSON: each ends in a 2xx answer or a 4xx in OpenAI's error shape ({ error: { message, type } }), never a 500.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { startServer } from '../../src/infer/server.js';
import { CharTokenizer } from '../../src/data/tokenizer/char.js';
import { tinyGPT } from '../infer/helpers.js';
import { ONE_PASS, fuzzAsync, oddJson } from './helpers.js';

const num = fc.oneof(fc.integer({ min: -3, max: 5 }), fc.double({ noNaN: true }), fc.constantFrom(0, 1, 2, 1e9, -1, 0.5), oddJson);
const sampling = {
  model: fc.oneof(fc.string({ maxLength: 6 }), oddJson), max_tokens: num, max_completion_tokens: num, temperature: num, top_p: num, top_k: num,
  repetition_penalty: num, seed: num, stop: fc.oneof(fc.string({ maxLength: 3 }), fc.array(fc.string({ maxLength: 3 }), { maxLength: 5 }), oddJson),
  stream: fc.oneof(fc.boolean(), oddJson), n: num, user: oddJson, echo: oddJson, logprobs: oddJson, stream_options: oddJson,
};
const text = fc.string({ maxLength: 12 });
const completion = fc.record({
  ...sampling,
  prompt: fc.oneof(text, fc.array(text, { maxLength: 2 }), fc.array(fc.integer({ min: -2, max: 80 }), { maxLength: 5 }), oddJson),
}, { requiredKeys: [] });
const message = fc.oneof(fc.record({ role: fc.oneof(fc.constantFrom('system', 'user', 'assistant'), oddJson), content: fc.oneof(text, oddJson), name: oddJson }, { requiredKeys: [] }), oddJson);
const chat = fc.record({ ...sampling, messages: fc.oneof(fc.array(message, { maxLength: 3 }), oddJson) }, { requiredKeys: [] });
const request = fc.oneof(
  fc.record({ url: fc.constant('/v1/completions'), payload: completion.map((b) => JSON.stringify(b)) }),
  fc.record({ url: fc.constant('/v1/chat/completions'), payload: chat.map((b) => JSON.stringify(b)) }),
  fc.record({ url: fc.constantFrom('/v1/completions', '/v1/chat/completions'), payload: fc.oneof(fc.string({ maxLength: 40 }), oddJson.map((v) => JSON.stringify(v) ?? '')) }),
);

test('fuzz: request bodies of /v1/completions and /v1/chat/completions', { skip: ONE_PASS }, async (t) => {
  const tok = CharTokenizer.fromText('abcdefghijklmnopqrstuvwxyz .,!?<|>_', { specialTokens: ['<|endoftext|>'] });
  const gpt = tinyGPT(tok.vocabSize, 1, { width: 16, context: 32 });
  const server = await startServer({
    model: { model: gpt, tokenizer: tok, config: gpt.config, specialTokens: {}, tokenizerConfig: null, weightsPath: 'fuzz', kind: 'model', name: 'fuzz' },
    port: 0, maxTokensLimit: 1, maxBodyBytes: 4096, // one new token at most: the bodies are under test, not decoding
  });
  t.after(() => server.close());
  await fuzzAsync(fc.asyncProperty(request, async ({ url, payload }) => {
    const r = await server.app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } });
    assert.ok(r.statusCode < 500, `${url} ${payload.slice(0, 200)} -> ${r.statusCode} ${r.body.slice(0, 300)}`);
    if (r.statusCode >= 400) {
      const body = JSON.parse(r.body) as { error?: { message?: unknown; type?: unknown } };
      assert.ok(typeof body.error?.message === 'string' && body.error.message.length > 0 && typeof body.error.type === 'string', r.body);
    }
  }));
});

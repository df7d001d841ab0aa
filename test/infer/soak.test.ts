// A bounded soak of the server (the long one is `npm run bench -- S1soak`): mixed streaming and non-streaming chat
// and completions from 8 clients for a few seconds (KILN_TEST_SOAK_S, default 7), some abandoned mid-stream.
// Every request must be answered, nothing may be left running or waiting, and RSS must not run away.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { soak } from '../../bench/s1-serve.js';
import { startServer } from '../../src/infer/server.js';
import { bpeTokenizer, tinyGPT, writeModelFolder } from './helpers.js';

test('a soak of mixed traffic: no failures, abandoned streams free their rows, memory stays bounded', async () => {
  const seconds = Number(process.env.KILN_TEST_SOAK_S ?? 7);
  const tok = bpeTokenizer();
  const server = await startServer({ model: writeModelFolder(tinyGPT(tok.vocabSize, 4, { context: 128 }), tok), port: 0, modelNames: ['s'] });
  try {
    const r = await soak(server, seconds, { clients: 8, maxTokens: 32 });
    assert.equal(r.failures, 0, JSON.stringify(r));
    assert.ok(r.requests >= 20, `only ${r.requests} requests in ${seconds} s`);
    assert.ok(r.abandoned > 0, 'some streams were abandoned');
    assert.ok(server.batcher.peakBatch >= 4, `peak batch ${server.batcher.peakBatch}`);
    // A leak of a cache or a request's buffers per request would pass this; a short run cannot measure 5%.
    assert.ok(r.rssEndMB - r.rssWarmMB < 150, `RSS grew from ${r.rssWarmMB.toFixed(0)} to ${r.rssEndMB.toFixed(0)} MB`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual([server.batcher.running, server.batcher.pending], [0, 0], 'nothing left decoding or waiting');
  } finally {
    await server.close();
  }
});

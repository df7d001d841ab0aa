// Continuous batching: requests that decode together give exactly what each gives alone (greedy, and seeded
// sampling with its own options), they join and leave between steps (a late request starts while others run,
// short ones leave early), a cancelled request frees its row for a waiting one, and the queue bound refuses
// with a clear error only past maxBatch + maxWaiting.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher, QueueFullError, type BatchChunk } from '../../src/infer/batcher.js';
import { generateText } from '../../src/infer/generate.js';
import { bpeTokenizer, tinyGPT } from './helpers.js';

const tok = bpeTokenizer();
const gpt = tinyGPT(tok.vocabSize, 3);
const PROMPTS = ['the quick', 'hello', 'over the lazy dog', 'User: hi', 'fox', 'brown fox jumps'];

test('concurrent greedy requests give the same text as each alone, and decode in shared steps', async () => {
  const alone = PROMPTS.map((p, i) => generateText(gpt, tok, p, { maxNewTokens: 6 + 3 * i, temperature: 0, eosTokenIds: [] }));
  const batcher = new Batcher(gpt, tok, { maxBatch: 4, maxWaiting: 8 });
  const together = await Promise.all(PROMPTS.map((p, i) =>
    batcher.submit({ promptIds: tok.encode(p), options: { maxNewTokens: 6 + 3 * i, temperature: 0, eosTokenIds: [] } })));
  together.forEach((r, i) => {
    assert.equal(r.text, alone[i].text, `prompt ${i}`);
    assert.equal(r.completionTokens, alone[i].ids.length);
    assert.equal(r.finishReason, 'length');
  });
  assert.equal(batcher.peakBatch, 4, 'four rows decoded together');
  // 6 requests of 6..21 tokens one after another would take 81 steps; together far fewer.
  assert.ok(batcher.steps < 60, `${batcher.steps} steps`);
  assert.deepEqual([batcher.running, batcher.pending], [0, 0]);
});

test('seeded sampling with per-request options matches the same request alone', async () => {
  const opts = [
    { maxNewTokens: 12, temperature: 0.9, topK: 20, seed: 1 },
    { maxNewTokens: 9, temperature: 1.2, topP: 0.8, seed: 2 },
    { maxNewTokens: 15, temperature: 0.7, repetitionPenalty: 1.3, seed: 3 },
    { maxNewTokens: 10, temperature: 0, stop: ['o'] },
  ];
  const alone = opts.map((o, i) => generateText(gpt, tok, PROMPTS[i], { ...o, eosTokenIds: [] }));
  const batcher = new Batcher(gpt, tok, { maxBatch: 4 });
  const together = await Promise.all(opts.map((o, i) =>
    batcher.submit({ promptIds: tok.encode(PROMPTS[i]), options: { ...o, eosTokenIds: [] } })));
  together.forEach((r, i) => {
    assert.equal(r.text, alone[i].text, `request ${i}`);
    assert.equal(r.finishReason, alone[i].finishReason, `request ${i}`);
  });
});

test('requests join and leave between steps; streamed chunks add up to the text', async () => {
  // One step per turn of the event loop, so that the test can submit between steps.
  const batcher = new Batcher(gpt, tok, { maxBatch: 3, stepBudgetMs: 0 });
  const events: string[] = [];
  const chunks: BatchChunk[] = [];
  const long = batcher.submit({
    promptIds: tok.encode('the'), options: { maxNewTokens: 30, temperature: 0, eosTokenIds: [] },
    onChunk: (c) => { chunks.push(c); if (chunks.length === 5) events.push(`long at ${batcher.steps}`); },
  });
  const short = batcher.submit({ promptIds: tok.encode('fox'), options: { maxNewTokens: 3, temperature: 0, eosTokenIds: [] } })
    .then((r) => { events.push(`short done at ${batcher.steps}`); return r; });
  // Joins while the long one runs: submitted after ten steps.
  while (batcher.steps < 10) await new Promise((r) => setImmediate(r));
  const stepAtJoin = batcher.steps;
  const late = await batcher.submit({ promptIds: tok.encode('dog'), options: { maxNewTokens: 4, temperature: 0, eosTokenIds: [] } });
  assert.equal(late.completionTokens, 4);
  assert.ok(batcher.steps - stepAtJoin <= 6, 'the late request decoded beside the long one, not after it');
  assert.equal(batcher.running, 1, 'the long request is still running after the late one left');
  const r = await long;
  await short;
  assert.equal(chunks.map((c) => c.text).join(''), r.text);
  assert.equal(chunks.filter((c) => c.id !== undefined).length, 30);
  assert.deepEqual(events.sort(), ['long at 5', 'short done at 3'].sort());
  assert.equal(r.text, generateText(gpt, tok, 'the', { maxNewTokens: 30, temperature: 0, eosTokenIds: [] }).text);
});

test('by default a turn of the event loop runs several steps; outputs are those of one step per turn', async () => {
  const request = { promptIds: tok.encode('the'), options: { maxNewTokens: 40, temperature: 0, eosTokenIds: [] } };
  const batcher = new Batcher(gpt, tok, { maxBatch: 2 });
  let turns = 0;
  let done = false;
  const count = (): void => { if (!done) { turns++; setImmediate(count); } };
  setImmediate(count);
  const r = await batcher.submit(request);
  done = true;
  assert.equal(batcher.steps, 40);
  assert.ok(turns < batcher.steps, `${turns} turns of the event loop for ${batcher.steps} steps`);
  const oneByOne = await new Batcher(gpt, tok, { maxBatch: 2, stepBudgetMs: 0 }).submit(request);
  assert.equal(r.text, oneByOne.text);
  assert.throws(() => new Batcher(gpt, tok, { stepBudgetMs: -1 }), /stepBudgetMs must be a finite number >= 0, got -1/);
  assert.throws(() => new Batcher(gpt, tok, { stepBudgetMs: Number.NaN }), /stepBudgetMs must be/);
});

test('cancelling frees the row for a waiting request; the queue refuses only past its bound', async () => {
  const batcher = new Batcher(gpt, tok, { maxBatch: 1, maxWaiting: 1 });
  const ctrl = new AbortController();
  let seen = 0;
  const first = batcher.submit({
    promptIds: tok.encode('the'), options: { maxNewTokens: 40, temperature: 0, eosTokenIds: [] }, signal: ctrl.signal,
    onChunk: () => { if (++seen === 3) ctrl.abort(); },
  });
  const second = batcher.submit({ promptIds: tok.encode('fox'), options: { maxNewTokens: 5, temperature: 0, eosTokenIds: [] } });
  assert.throws(() => batcher.submit({ promptIds: tok.encode('dog') }), (err: Error) =>
    err instanceof QueueFullError && /2 requests are in flight.*batch of 1.*queue of 1/.test(err.message));
  const r1 = await first;
  assert.equal(r1.finishReason, 'stop');
  assert.ok(r1.completionTokens <= 4, `cancelled after ${r1.completionTokens} tokens`);
  assert.equal((await second).completionTokens, 5);
  // A waiting request that is cancelled leaves the queue without decoding.
  const blocker = batcher.submit({ promptIds: tok.encode('the'), options: { maxNewTokens: 8, temperature: 0 } });
  const waitCtrl = new AbortController();
  const waiting = batcher.submit({ promptIds: tok.encode('dog'), options: { maxNewTokens: 8 }, signal: waitCtrl.signal });
  waitCtrl.abort();
  assert.deepEqual(await waiting, { text: '', completionTokens: 0, finishReason: 'stop' });
  await blocker;
  assert.deepEqual([batcher.running, batcher.pending], [0, 0]);
});

test('bad requests are refused by name; a bad prompt fails alone', async () => {
  const batcher = new Batcher(gpt, tok, { maxBatch: 2 });
  assert.throws(() => batcher.submit({ promptIds: [1], options: { temperature: -1 } }), /temperature/);
  const ok = batcher.submit({ promptIds: tok.encode('the'), options: { maxNewTokens: 4, temperature: 0 } });
  await assert.rejects(batcher.submit({ promptIds: [tok.vocabSize + 5] }), /outside the vocabulary/);
  await assert.rejects(batcher.submit({ promptIds: new Array(65).fill(1) }), /context is 64/);
  assert.equal((await ok).completionTokens, 4);
  assert.throws(() => new Batcher(gpt, tok, { maxBatch: 0 }), /maxBatch must be an integer >= 1/);
});

test('a callback that throws fails its own request only', async () => {
  const batcher = new Batcher(gpt, tok, { maxBatch: 2 });
  const bad = batcher.submit({ promptIds: tok.encode('the'), options: { maxNewTokens: 10, temperature: 0 },
    onChunk: () => { throw new Error('client gone'); } });
  const good = batcher.submit({ promptIds: tok.encode('fox'), options: { maxNewTokens: 10, temperature: 0, eosTokenIds: [] } });
  await assert.rejects(bad, /client gone/);
  assert.equal((await good).completionTokens, 10);
  assert.deepEqual([batcher.running, batcher.pending], [0, 0]);
});

test('requests that arrive together prefill together (one forward per prompt length); a failed prefill fails only them', async () => {
  const model = tinyGPT(tok.vocabSize, 4);
  const spied = model as unknown as { forward: (...args: unknown[]) => unknown };
  const forward = spied.forward.bind(model);
  let prefills = 0;
  let fail = false;
  spied.forward = (...args: unknown[]) => {
    if (fail) throw new Error('prefill failed');
    if ((args[0] as { shape: number[] }).shape[1] > 1) prefills++;
    return forward(...args);
  };
  const batcher = new Batcher(model, tok, { maxBatch: 8 });
  const texts = ['the quick', 'the fox', 'brown fox', 'lazy dog', 'hello'];
  const prompts = texts.map((p) => tok.encode(p));
  const lengths = new Set(prompts.map((p) => p.length));
  assert.ok(lengths.size < prompts.length, 'some prompts share a length');
  const options = { maxNewTokens: 4, temperature: 0, eosTokenIds: [] };
  const results = await Promise.all(prompts.map((promptIds) => batcher.submit({ promptIds, options })));
  assert.equal(prefills, lengths.size, `${prompts.length} prompts of ${lengths.size} lengths`);
  results.forEach((r, i) => assert.equal(r.text, generateText(model, tok, texts[i], options).text, texts[i]));
  fail = true;
  const failed = await Promise.allSettled(prompts.slice(0, 2).map((promptIds) => batcher.submit({ promptIds, options })));
  assert.deepEqual(failed.map((f) => f.status === 'rejected' && String(f.reason)), ['Error: prefill failed', 'Error: prefill failed']);
  fail = false;
  const after = await batcher.submit({ promptIds: prompts[0], options });
  assert.equal(after.text, results[0].text, 'the batcher goes on after a failed prefill');
  assert.equal(batcher.running, 0);
});

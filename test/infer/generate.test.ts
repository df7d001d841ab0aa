// Generation: the one decoding path against PyTorch's GPT-2 logits and against the greedy output of the old lean
// decoder, cache vs no cache, batched decoding, seeded sampling, the sampler's filters, stop sequences,
// streaming with multi-byte characters, and the guards on bad input.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as kiln from '../../src/index.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { loadWeights } from '../../src/hub/load.js';
import { GPT } from '../../src/models/gpt.js';
import { gptConfigFromJSON } from '../../src/models/gpt-config.js';
import { Llama } from '../../src/models/llama.js';
import { BatchDecoder } from '../../src/models/generate.js';
import { generate, generateText, streamGenerate, TextStreamer } from '../../src/infer/generate.js';
import { Sampler, Selection } from '../../src/models/sampling.js';
import { Generator } from '../../src/tensor/random.js';
import { bpeTokenizer, charTokenizer, tinyGPT } from './helpers.js';

const GOLDEN = 'test/golden/hf-gpt2-tiny';

function hfTiny(): GPT {
  const cfg = gptConfigFromJSON(JSON.parse(readFileSync(`${GOLDEN}/config.json`, 'utf8')));
  const gpt = new GPT(cfg);
  loadWeights(gpt, loadSafetensors(`${GOLDEN}/model.safetensors`).tensors, GOLDEN);
  return gpt.eval();
}

test('decoding with the KV cache reproduces Hugging Face GPT-2 logits (prefill and token by token)', () => {
  const gpt = hfTiny();
  const golden = JSON.parse(readFileSync(`${GOLDEN}/logits.json`, 'utf8')) as {
    idx: { shape: number[]; data: number[] }; logits: { shape: number[]; data: number[] };
  };
  const [B, T] = golden.idx.shape;
  const V = golden.logits.shape[2];
  for (let b = 0; b < B; b++) {
    const ids = golden.idx.data.slice(b * T, (b + 1) * T);
    const cache = gpt.createCache(1);
    // A 5-token prompt in one pass, then one token at a time.
    let worst = 0;
    for (let t = 4; t < T; t++) {
      const feed = t === 4 ? ids.slice(0, 5) : [ids[t]];
      const logits = gpt.forward(kiln.tensor([feed], { dtype: 'int32' }), null, { cache, lastOnly: true }).logits.storage;
      const o = (b * T + t) * V;
      for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(logits[v] - golden.logits.data[o + v]));
    }
    assert.ok(worst < 1e-4, `row ${b} differs from PyTorch by ${worst}`);
  }
});

test('greedy output is unchanged from the old lean decoder that `kiln generate` ran (golden)', () => {
  const golden = JSON.parse(readFileSync('test/golden/greedy-generate.json', 'utf8')) as {
    char: { prompt: string; seed: number; text: string }[]; bpe: { prompt: string; seed: number; text: string }[];
    hf: { prompt: number[]; ids: number[] }[];
  };
  const ct = charTokenizer();
  const bt = bpeTokenizer();
  const o = { maxNewTokens: 40, temperature: 0, eosTokenIds: [] };
  for (const g of golden.char) assert.equal(generateText(tinyGPT(ct.vocabSize, g.seed), ct, g.prompt, o).text, g.text);
  for (const g of golden.bpe) assert.equal(generateText(tinyGPT(bt.vocabSize, g.seed), bt, g.prompt, o).text, g.text);
  const hf = hfTiny();
  for (const g of golden.hf) assert.deepEqual(generate(hf, g.prompt, { maxNewTokens: 16 - g.prompt.length, eosTokenIds: [] }), g.ids);
});

test('greedy output with the cache equals greedy output without it; gpt.generate decodes the same tokens', () => {
  const tok = charTokenizer();
  const gpt = tinyGPT(tok.vocabSize);
  const prompt = tok.encode('the quick');
  const opts = { maxNewTokens: 40, eosTokenIds: [] };
  const cached = generate(gpt, prompt, opts);
  const none = generate(gpt, prompt, { ...opts, cache: false });
  assert.equal(cached.length, 40);
  assert.deepEqual(cached, none);
  assert.ok(new Set(cached).size > 3, 'the model should not just repeat one token');
  const viaModel = gpt.generate(kiln.tensor([prompt], { dtype: 'int32' }), 40, { temperature: 0 });
  assert.deepEqual([...viaModel.storage].slice(prompt.length), cached);
});

test('a batch of sequences of different lengths decodes as each would alone, joining and leaving at steps', () => {
  const tok = charTokenizer();
  const gpt = tinyGPT(tok.vocabSize, 6);
  const prompts = ['the', 'quick brown', 'a'].map((p) => tok.encode(p));
  const alone = prompts.map((p, i) => generate(gpt, p, { maxNewTokens: 6 + 4 * i, eosTokenIds: [] }));
  const dec = new BatchDecoder(gpt, 2);
  const got = new Map<number, number[]>();
  const seqs = [dec.start(prompts[0], { maxNewTokens: 6 }), dec.start(prompts[1], { maxNewTokens: 10 })];
  assert.throws(() => dec.start(prompts[2]), /all 2 rows are decoding/);
  let third = false;
  while (dec.running > 0) {
    for (const e of dec.step()) {
      const i = seqs.indexOf(e.sequence);
      if (e.id !== undefined) got.set(i, [...(got.get(i) ?? []), e.id]);
    }
    if (!third && dec.hasRoom) {
      seqs.push(dec.start(prompts[2], { maxNewTokens: 14 })); // joins in the row the first one left
      third = true;
    }
  }
  assert.deepEqual([0, 1, 2].map((i) => got.get(i)), alone);
});

test('startMany prefills prompts of one length in one forward, as each would alone; a bad request fails alone', () => {
  const tok = charTokenizer();
  const models = [
    tinyGPT(tok.vocabSize, 3),
    new Llama({ vocabSize: tok.vocabSize, context: 32, layers: 2, heads: 2, kvHeads: 1, width: 16, hidden: 32 }).eval(),
  ];
  for (const model of models) {
    kiln.manualSeed(5);
    const prompts = ['cat', 'dog', 'a longer one', 'owl', 'x', 'hen'].map((p) => tok.encode(p));
    const alone = prompts.map((p) => generate(model, p, { maxNewTokens: 5, eosTokenIds: [] }));
    const dec = new BatchDecoder(model, 6);
    let forwards = 0;
    const spied = model as unknown as { forward: (...args: unknown[]) => unknown };
    const forward = spied.forward.bind(model);
    spied.forward = (...args: unknown[]) => { forwards++; return forward(...args); };
    const started = dec.startMany([
      ...prompts.slice(0, 3).map((prompt) => ({ prompt, options: { maxNewTokens: 5, eosTokenIds: [] } })),
      { prompt: [tok.vocabSize + 4] },
      ...prompts.slice(3).map((prompt) => ({ prompt, options: { maxNewTokens: 5, eosTokenIds: [] } })),
      { prompt: tok.encode('no room'), options: { maxNewTokens: 5 } },
    ]);
    assert.equal(forwards, 3, 'lengths 3, 12 and 1: one forward each');
    assert.match(String(started[3]), /token id \d+ is outside the vocabulary/);
    assert.match(String(started[7]), /all 6 rows are decoding/);
    const seqs = started.filter((s) => !(s instanceof Error));
    assert.equal(seqs.length, 6);
    const got = new Map<unknown, number[]>();
    while (dec.running > 0) for (const e of dec.step()) if (e.id !== undefined) got.set(e.sequence, [...(got.get(e.sequence) ?? []), e.id]);
    assert.deepEqual(seqs.map((s) => got.get(s)), alone);
    const strict = new BatchDecoder(model, 3);
    forwards = 0;
    assert.throws(() => strict.startAll([{ prompt: prompts[0] }, { prompt: [tok.vocabSize + 4] }]), /outside the vocabulary/);
    assert.equal(forwards, 0, 'startAll refuses before any forward');
    assert.equal(strict.freeRows, 3, 'and leaves no row taken');
    assert.deepEqual(strict.startAll(prompts.slice(0, 3).map((prompt) => ({ prompt }))).map((q) => q.row), [0, 1, 2]);
    spied.forward = forward;
    const failing = new BatchDecoder(model, 2);
    spied.forward = () => { throw new Error('forward failed'); };
    assert.throws(() => failing.startMany([{ prompt: prompts[0] }, { prompt: prompts[1] }]), /forward failed/);
    spied.forward = forward;
    assert.equal(failing.freeRows, 2, 'a failed prefill leaves no row taken');
  }
});

test('the same seed repeats a sampled generation; top-k 1 and a tiny top-p are greedy', () => {
  const tok = charTokenizer();
  const gpt = tinyGPT(tok.vocabSize, 2);
  const prompt = tok.encode('hello');
  const o = { maxNewTokens: 30, eosTokenIds: [], temperature: 1.2 };
  const a = generate(gpt, prompt, { ...o, seed: 7 });
  const b = generate(gpt, prompt, { ...o, seed: 7 });
  const c = generate(gpt, prompt, { ...o, seed: 8 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const greedy = generate(gpt, prompt, { maxNewTokens: 30, eosTokenIds: [] });
  assert.deepEqual(generate(gpt, prompt, { ...o, seed: 3, topK: 1 }), greedy);
  assert.deepEqual(generate(gpt, prompt, { ...o, seed: 3, topP: 1e-6 }), greedy);
  const withGen = generate(gpt, prompt, { ...o, generator: new Generator(7) });
  assert.deepEqual(withGen, a);
});

test('the sampler: repetition penalty (CTRL style), top-k and top-p keep only the allowed tokens', () => {
  const s = new Sampler(3, { repetitionPenalty: 4 }, new Generator(0));
  s.observe([0]);
  const l = Float32Array.of(2, 1, -1);
  assert.equal(s.pick(l), 1);
  assert.deepEqual([...l], [0.5, 1, -1]);
  const s2 = new Sampler(3, { repetitionPenalty: 4 }, new Generator(0));
  s2.observe([2]);
  const l2 = Float32Array.of(0, 0.1, -1);
  s2.pick(l2);
  assert.equal(l2[2], -4);
  // top-k 2 never draws the third token; top-p 0.5 over (0.5, 0.3, 0.2) keeps only the first.
  const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.2)];
  const k2 = new Sampler(3, { temperature: 1, topK: 2 }, new Generator(1));
  const p5 = new Sampler(3, { temperature: 1, topP: 0.5 }, new Generator(1));
  const seen = new Set<number>();
  for (let i = 0; i < 300; i++) {
    seen.add(k2.pick(Float64Array.from(logits)));
    assert.equal(p5.pick(Float64Array.from(logits)), 0);
  }
  assert.deepEqual([...seen].sort(), [0, 1]);
  assert.throws(() => new Sampler(3, { topP: 0 }, new Generator(0)), /topP must be a number in \(0, 1\]/);
  assert.throws(() => new Sampler(3, { temperature: -1 }, new Generator(0)), /temperature must be a number >= 0/);
  assert.throws(() => new Sampler(3, { topK: 1.5 }, new Generator(0)), /topK must be an integer/);
  assert.throws(() => new Sampler(3, { repetitionPenalty: 0 }, new Generator(0)), /repetitionPenalty must be a number > 0/);
});

test('the greedy pick (the backend\'s arg-max) is the first largest logit, skips NaN, reads only vocabSize entries, and is 0 when none is finite', () => {
  const s = new Sampler(6, {}, new Generator(0));
  assert.equal(s.pick(Float32Array.of(1, 3, 2, 3, -1, 0)), 1);
  assert.equal(s.pick(Float32Array.of(1, NaN, 2, 5, NaN, 0)), 3);
  assert.equal(s.pick(Float32Array.of(NaN, NaN, NaN, NaN, NaN, NaN)), 0);
  assert.equal(s.pick(new Float32Array(6).fill(-Infinity)), 0);
  assert.equal(s.pick(Float32Array.of(-0, 0, -1, -2, -3, -4)), 0);
  assert.equal(s.pick(Float32Array.of(0, 1, 2, 3, 4, 5, 99)), 5); // a longer row: the entry past vocabSize is not a token
  assert.equal(s.pick([0, 1, 9, 3, 4, 5]), 2); // a plain array takes the loop
  const V = 4096;
  const g = new Generator(3);
  for (let k = 0; k < 20; k++) {
    const l = Float32Array.from({ length: V }, () => Math.round(g.normal() * 8) / 8);
    if (k % 4 === 1) l[Math.floor(g.uniform() * V)] = NaN;
    let want = -1; // the first index of the largest value that is not NaN
    for (let i = 0; i < V; i++) if (!Number.isNaN(l[i]) && (want < 0 || l[i] > l[want])) want = i;
    assert.equal(new Sampler(V, { temperature: 0 }, new Generator(0)).pick(l), want);
  }
});

test('sampled tokens follow the top-k and nucleus distribution (the rejection draw and its second draw together)', () => {
  // 150 tokens (three blocks of the blocked draw) with a spread of probabilities and a tie at the nucleus
  // boundary. Top-p 0.6 rejects about 40% of first draws, so the second draw from the nucleus is well exercised.
  const V = 150;
  const g = new Generator(5);
  const logits = Float32Array.from({ length: V }, () => Math.round(g.normal() * 1.5 * 8) / 8);
  const probs = Array.from(logits, (l) => Math.exp(l));
  const expected = (topK: number, topP: number): number[] => {
    const order = [...probs.keys()].sort((a, b) => probs[b] - probs[a]);
    const kth = topK > 0 ? probs[order[topK - 1]] : 0;
    const kept = order.filter((i) => probs[i] >= kth);
    const total = kept.reduce((s, i) => s + probs[i], 0);
    let mass = 0;
    let floor = 0;
    for (const i of kept) { // the nucleus: every token at or above the first one where the mass reaches top-p
      mass += probs[i];
      if (mass >= topP * total) { floor = probs[i]; break; }
    }
    const inNucleus = kept.filter((i) => probs[i] >= floor);
    const z = inNucleus.reduce((s, i) => s + probs[i], 0);
    const want = new Array<number>(V).fill(0);
    for (const i of inNucleus) want[i] = probs[i] / z;
    return want;
  };
  const N = 20000;
  for (const [topK, topP] of [[0, 0.6], [40, 0.8], [0, 0.95]]) {
    const want = expected(topK, topP);
    for (const viaKernel of [true, false]) {
      const s = new Sampler(V, { temperature: 1, topK, topP }, new Generator(9));
      const counts = new Array<number>(V).fill(0);
      for (let n = 0; n < N; n++) counts[s.pick(viaKernel ? logits.slice() : Array.from(logits))]++;
      const label = `top-k ${topK}, top-p ${topP}, ${viaKernel ? 'kernel' : 'passes'}`;
      for (let i = 0; i < V; i++) {
        if (want[i] === 0) { assert.equal(counts[i], 0, `${label}: token ${i} is outside and was drawn`); continue; }
        const sd = Math.sqrt(N * want[i] * (1 - want[i]));
        assert.ok(Math.abs(counts[i] - N * want[i]) < 5 * sd + 1, `${label}: token ${i} drawn ${counts[i]} times, expected ${(N * want[i]).toFixed(0)}`);
      }
    }
  }
});

test('top-k and top-p thresholds by radix selection equal the sorted definitions, ties included', () => {
  const g = new Generator(11);
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + g.int(0, 300);
    // Rounded values make ties common; some trials use a tiny spread so values share their high bits.
    const spread = trial % 3 === 0 ? 1e-6 : 1;
    const p = Float32Array.from({ length: n }, () => 0.5 + Math.round(g.uniform() * 20) / 20 * spread);
    const sorted = [...p].sort((a, b) => b - a);
    const sel = new Selection(n);
    const k = 1 + g.int(0, n);
    assert.equal(sel.threshold(p, 0, k, true), sorted[k - 1], `trial ${trial}: k-th largest`);
    const floor = trial % 2 ? sorted[k - 1] : 0;
    const kept = sorted.filter((v) => v >= floor);
    const total = kept.reduce((a, b) => a + b, 0);
    const target = g.uniform() * total;
    let acc = 0;
    let want = floor;
    for (const v of kept) {
      acc += v;
      if (acc >= target) { want = Math.max(v, floor); break; }
    }
    assert.equal(sel.threshold(p, floor, target, false), want, `trial ${trial}: mass threshold`);
  }
});

test('the backend\'s fused sampling kernel picks exactly what the sampler\'s own passes pick', () => {
  // A Float32Array row goes to the backend's kernel where there is one (native); any other array runs the
  // TypeScript passes: the two must agree token for token, from the same generator state.
  const g = new Generator(21);
  const settings = [{ temperature: 0.8, topP: 0.95 }, { temperature: 1, topK: 40 }, { temperature: 0.7, topK: 5, topP: 0.5 },
    { temperature: 1.3 }, { temperature: 0.5, topP: 0.999 }, { temperature: 1, topK: 1 }];
  for (const [i, opts] of settings.entries()) {
    for (const V of [7, 300, 4096]) {
      const viaKernel = new Sampler(V, opts, new Generator(100 + i));
      const viaPasses = new Sampler(V, opts, new Generator(100 + i));
      for (let row = 0; row < 60; row++) {
        // Large spreads, rounded values (ties) and a few -Infinity logits, as a masked vocabulary has.
        const logits = Float32Array.from({ length: V }, (_, v) =>
          v % 17 === 3 ? -Infinity : Math.round(g.normal() * (row % 2 ? 8 : 2) * 4) / 4);
        const a = viaKernel.pick(logits.slice());
        const b = viaPasses.pick(Array.from(logits));
        assert.equal(a, b, `settings ${JSON.stringify(opts)}, V ${V}, row ${row}`);
      }
    }
  }
  const allMasked = new Sampler(3, { temperature: 1 }, new Generator(0));
  assert.equal(allMasked.pick(Float32Array.of(-Infinity, -Infinity, -Infinity)), 0, 'no finite logit: the arg-max (the first)');
});

test('stop sequences end the text just before them, and streaming never shows part of one', async () => {
  const tok = charTokenizer();
  const gpt = tinyGPT(tok.vocabSize, 3);
  const base = generateText(gpt, tok, 'the lazy', { maxNewTokens: 40, eosTokenIds: [] });
  assert.equal(base.finishReason, 'length');
  assert.equal(base.ids.length, 40);
  assert.equal(base.text, tok.decode(base.ids));
  const stop = base.text.slice(10, 13);
  const cut = base.text.indexOf(stop);
  const stopped = generateText(gpt, tok, 'the lazy', { maxNewTokens: 40, eosTokenIds: [], stop: [stop] });
  assert.equal(stopped.finishReason, 'stop');
  assert.equal(stopped.text, base.text.slice(0, cut));
  let streamed = '';
  let last: string | undefined;
  for await (const chunk of streamGenerate(gpt, tok, 'the lazy', { maxNewTokens: 40, eosTokenIds: [], stop: [stop] })) {
    streamed += chunk.text;
    assert.ok(!streamed.includes(stop.slice(0, 2)) || base.text.slice(0, cut).includes(stop.slice(0, 2)));
    last = chunk.finishReason;
  }
  assert.equal(streamed, stopped.text);
  assert.equal(last, 'stop');
  // Token ids stop with the text: generate() leaves out the token that completed the stop sequence.
  const ids = generate(gpt, tok.encode('the lazy'), { maxNewTokens: 40, eosTokenIds: [], stop: [stop], tokenizer: tok });
  assert.ok(tok.decode(ids).startsWith(stopped.text) && ids.length < 40);
});

test('the text streamer emits whole characters when a character spans several byte tokens', () => {
  const tok = bpeTokenizer();
  const text = 'héllo 🎉 wörld — ok';
  const ids = tok.encode(text);
  assert.ok(ids.length > [...text].length - 3, 'expected several byte tokens for the multi-byte characters');
  const s = new TextStreamer(tok);
  let out = '';
  for (const id of ids) {
    const piece = s.push(id);
    assert.ok(!piece.includes('\ufffd'), `piece ${JSON.stringify(piece)} has a broken character`);
    out += piece;
  }
  out += s.flush();
  assert.equal(out, text);
  // A stop sequence split across pushes is held back, then dropped.
  const s2 = new TextStreamer(tok, ['\nUser:']);
  let out2 = '';
  for (const id of tok.encode('hi there\nUser: more')) {
    out2 += s2.push(id);
    if (s2.stopped) break;
  }
  assert.equal(out2, 'hi there');
  assert.ok(s2.stopped);
});

test('end-of-text stops generation; maxNewTokens and the context bound the output', () => {
  const tok = charTokenizer();
  const gpt = tinyGPT(tok.vocabSize, 4, { context: 16 });
  const prompt = tok.encode('the fox');
  const greedy = generate(gpt, prompt, { maxNewTokens: 5, eosTokenIds: [] });
  assert.equal(greedy.length, 5);
  // Declaring the first greedy token end-of-text yields nothing, with finishReason 'stop'.
  const r = generateText(gpt, tok, prompt, { maxNewTokens: 5, eosTokenIds: [greedy[0]] });
  assert.deepEqual(r.ids, []);
  assert.equal(r.finishReason, 'stop');
  // The context (16) ends generation with 'length' even when more tokens were asked for: the model reads 16
  // positions, and the token predicted from the last one is the final output token.
  const full = generateText(gpt, tok, prompt, { maxNewTokens: 100, eosTokenIds: [] });
  assert.equal(full.ids.length, 16 - prompt.length + 1);
  assert.deepEqual(full.ids, generate(gpt, prompt, { maxNewTokens: 100, eosTokenIds: [], cache: false }));
  assert.equal(full.finishReason, 'length');
  assert.throws(() => generate(gpt, tok.encode('the quick brown fox'), { maxNewTokens: 1 }),
    /the prompt has 19 tokens but the model's context is 16/);
  assert.throws(() => generate(gpt, [], {}), /the prompt is empty/);
  assert.throws(() => generate(gpt, prompt, { maxNewTokens: -1 }), /maxNewTokens must be an integer >= 0/);
  assert.throws(() => generate(gpt, [999], { maxNewTokens: 1 }), /outside the vocabulary/);
  assert.throws(() => generate(gpt, prompt, { stop: [''] }), /stop must be a list of non-empty strings/);
});

test('decoding sees weights changed between calls; float64 models and models without biases match recomputation', () => {
  const tok = charTokenizer();
  const gpt = tinyGPT(tok.vocabSize, 5);
  const prompt = tok.encode('dog');
  const before = generate(gpt, prompt, { maxNewTokens: 10, eosTokenIds: [] });
  const w = gpt.transformer.h.at(0) as unknown as { mlp: { c_fc: { weight: { storage: Float32Array } } } };
  w.mlp.c_fc.weight.storage.fill(0.5);
  const after = generate(gpt, prompt, { maxNewTokens: 10, eosTokenIds: [] });
  assert.deepEqual(after, generate(gpt, prompt, { maxNewTokens: 10, eosTokenIds: [], cache: false }));
  assert.notDeepEqual(after, before);
  const noBias = new GPT({ vocabSize: tok.vocabSize, context: 32, layers: 2, heads: 2, width: 16, bias: false }, { generator: new Generator(9) });
  for (const p of noBias.parameters()) if (p.ndim === 2) for (let i = 0; i < p.size; i++) p.storage[i] *= 40;
  const o = { maxNewTokens: 12, eosTokenIds: [] };
  const p2 = tok.encode('over');
  assert.deepEqual(generate(noBias, p2, o), generate(noBias, p2, { ...o, cache: false }));
  const f64 = new GPT({ vocabSize: tok.vocabSize, context: 32, layers: 1, heads: 2, width: 16 }, { generator: new Generator(9), dtype: 'float64' });
  assert.deepEqual(generate(f64, p2, o), generate(f64, p2, { ...o, cache: false }));
});

test('a model with LoRA adapters decodes through its own forward (the adapters count)', async () => {
  const { applyLoRA } = await import('../../src/nn/lora.js');
  const tok = charTokenizer();
  const gpt = tinyGPT(tok.vocabSize, 12);
  applyLoRA(gpt, { rank: 2, targets: ['c_attn'] });
  for (const [name, p] of gpt.namedParameters()) if (name.includes('lora_B')) p.storage.fill(0.3);
  const prompt = tok.encode('lazy');
  const o = { maxNewTokens: 10, eosTokenIds: [] };
  assert.deepEqual(generate(gpt, prompt, o), generate(gpt, prompt, { ...o, cache: false }));
});

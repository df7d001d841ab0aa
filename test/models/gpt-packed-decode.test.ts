// Batched decoding with packed weights and prompts through the fused step (src/tensor/ops/gpt-block.ts,
// GPT.fusedSteps): packed panels give bitwise the unpacked step's logits and cache, outlive the allocation scope of
// the step that made them, and are rebuilt when a weight changes; a prompt fed as entries of fused steps (several
// rows, more entries than one step takes) writes bitwise the cache that token-by-token steps write, and gives the
// full forward's logits within rounding (the LM head of 1 to 4 rows sums in another order than of 5 to 16). On the reference backend nothing is packed and prompts run through the layers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import { randomGPT } from '../helpers/models.js';
import { backend } from '../../src/backend/index.js';
import { gptModelDecode, PackedGPTWeights, type GPTModelWeights } from '../../src/tensor/ops/gpt-block.js';
import { allocationScope } from '../../src/tensor/storage.js';

const cfg = { vocabSize: 61, context: 24, layers: 2, heads: 4, width: 32 };
const fused = kiln.backendInfo().name === 'native' || kiln.backendInfo().name === 'wasm';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyModel = any;

const model = (seed: number): kiln.models.GPT => randomGPT(cfg, seed);

function weightsOf(gpt: kiln.models.GPT): GPTModelWeights {
  const tr = gpt.transformer as AnyModel;
  return { wte: tr.wte.weight, wpe: tr.wpe.weight, blocks: [...tr.h].map((b: AnyModel) => b.fusedWeights()),
    lnfWeight: tr.ln_f.weight, lnfBias: tr.ln_f.bias, head: gpt.lm_head.weight };
}

/** Two caches with the same random earlier positions. */
function twinCaches(gpt: kiln.models.GPT, rows: number): [kiln.models.KVCache, kiln.models.KVCache] {
  const pair = [gpt.createCache(rows), gpt.createCache(rows)] as [kiln.models.KVCache, kiln.models.KVCache];
  for (const c of pair) {
    const rand = new kiln.Generator(6);
    for (let l = 0; l < cfg.layers; l++) {
      c.keys[l].set(kiln.randn([c.keys[l].length], { generator: rand }).storage as Float32Array);
      c.values[l].set(kiln.randn([c.values[l].length], { generator: rand }).storage as Float32Array);
    }
  }
  return pair;
}

test('packed weights give the unpacked step bitwise, outlive the scope that made them, and go stale when a weight changes', () => {
  const gpt = model(4);
  const w = weightsOf(gpt);
  const rows = [11, 2, 5, 7, 0, 9, 1, 4, 8];
  const starts = [3, 0, 22, 7, 7, 15, 1, 9, 2];
  // Packed inside a step's allocation scope, as GPT.forward packs them, then other work reuses the pool.
  const packed = kiln.noGrad(() => allocationScope(() => PackedGPTWeights.pack(w, rows.length), () => []));
  const uses = backend().panelsApply?.(false, rows.length, cfg.width) === true;
  assert.equal(packed !== null, uses, 'packed exactly where the backend uses panels');
  if (!packed) return;
  for (let i = 0; i < 5; i++) kiln.noGrad(() => gpt.forward(kiln.tensor(Int32Array.from([1, 2, 3, 4, 5, 6]), { shape: [2, 3] })));
  const fresh = PackedGPTWeights.pack(w, rows.length)!;
  fresh.panels.forEach((p, i) => assert.deepEqual(packed.panels[i], p, `panel ${i} was overwritten after its scope ended`));

  const [plain, withPanels] = twinCaches(gpt, 12);
  const tokens = Int32Array.from(rows, (_, i) => (i * 7) % cfg.vocabSize);
  kiln.noGrad(() => {
    const want = gptModelDecode(tokens, w, [0, 1].map((l) => plain.layer(l)), rows, starts, cfg.heads, 1e-5)!;
    const got = gptModelDecode(tokens, w, [0, 1].map((l) => withPanels.layer(l)), rows, starts, cfg.heads, 1e-5, packed)!;
    assert.deepEqual(Array.from(got.data() as Float32Array), Array.from(want.data() as Float32Array));
    for (let l = 0; l < cfg.layers; l++) assert.deepEqual(withPanels.keys[l], plain.keys[l], `layer ${l} keys`);
  });

  assert.ok(packed.matches(w));
  new kiln.optim.SGD(gpt.parameters(), { lr: 0.1 }).step(); // no gradients: nothing moves, but a step may write
  assert.equal(packed.matches(w), false, 'an optimizer step makes packed weights stale');
  const again = PackedGPTWeights.pack(w, rows.length)!;
  kiln.markWeightsChanged();
  assert.equal(again.matches(w), false, 'markWeightsChanged makes them stale');
  const replaced = { ...w, head: w.head.clone() };
  assert.equal(PackedGPTWeights.pack(w, rows.length)!.matches(replaced), false, 'a replaced weight is not the packed one');
});

test('a model trained between batched steps decodes with its new weights, as a fresh cache does', () => {
  const gpt = model(7);
  const idx = kiln.tensor(Int32Array.from({ length: 9 }, (_, i) => (i * 5) % cfg.vocabSize), { shape: [9, 1] });
  const cache = gpt.createCache(9);
  kiln.noGrad(() => gpt.forward(idx, null, { cache }));
  const before = cache.packed;
  // one real training step
  gpt.train();
  const opt = new kiln.optim.SGD(gpt.parameters(), { lr: 0.5 });
  const x = kiln.tensor(Int32Array.from([1, 2, 3, 4]), { shape: [1, 4] });
  gpt.forward(x, kiln.tensor(Int32Array.from([2, 3, 4, 5]), { shape: [1, 4] })).loss!.backward();
  opt.step();
  gpt.eval();
  cache.reset();
  const got = kiln.noGrad(() => gpt.forward(idx, null, { cache }).logits);
  const want = kiln.noGrad(() => gpt.forward(idx, null, { cache: gpt.createCache(9) }).logits);
  assert.deepEqual(Array.from(got.data() as Float32Array), Array.from(want.data() as Float32Array));
  if (before) assert.notEqual(cache.packed, before, 'the stale packed weights were replaced');
});

test('a prompt through fused steps writes the cache token-by-token steps write (bitwise), with their logits within rounding', () => {
  const gpt = model(9);
  const g = new kiln.Generator(3);
  for (const [B, T] of [[1, 5], [2, 20], [3, 7]] as const) {
    const ids = Int32Array.from({ length: B * T }, () => g.int(0, cfg.vocabSize));
    const rows = Array.from({ length: B }, (_, b) => 2 * b + 1);
    const [whole, byToken] = twinCaches(gpt, 6);
    for (const c of [whole, byToken]) for (const r of rows) c.lengths[r] = 2; // continuing two cached positions
    const prompt = kiln.noGrad(() => gpt.forward(kiln.tensor(ids, { shape: [B, T] }), null, { cache: whole, rows, lastOnly: true }).logits);
    assert.deepEqual(prompt.shape, [B, 1, cfg.vocabSize]);
    let last: kiln.Tensor | null = null;
    for (let t = 0; t < T; t++) {
      const step = Int32Array.from({ length: B }, (_, b) => ids[b * T + t]);
      last = kiln.noGrad(() => gpt.forward(kiln.tensor(step, { shape: [B, 1] }), null, { cache: byToken, rows }).logits);
    }
    assert.deepEqual(Array.from(whole.lengths), Array.from(byToken.lengths));
    const got = Array.from(prompt.data() as Float32Array);
    const want = Array.from(last!.data() as Float32Array);
    if (fused) {
      for (let l = 0; l < cfg.layers; l++) {
        assert.deepEqual(whole.keys[l], byToken.keys[l], `B ${B}, T ${T}, layer ${l} keys`);
        assert.deepEqual(whole.values[l], byToken.values[l], `B ${B}, T ${T}, layer ${l} values`);
      }
    }
    for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `B ${B}, T ${T}, ${i}: ${got[i]} vs ${want[i]}`);
  }
  // against the full forward of one row from position 0
  const ids = Int32Array.from({ length: 20 }, () => g.int(0, cfg.vocabSize));
  const full = kiln.noGrad(() => gpt.forward(kiln.tensor(ids, { shape: [1, 20] })).logits.data() as Float32Array);
  const viaCache = kiln.noGrad(() => gpt.forward(kiln.tensor(ids, { shape: [1, 20] }), null, { cache: gpt.createCache(1), lastOnly: true }).logits.data() as Float32Array);
  for (let v = 0; v < cfg.vocabSize; v++) {
    assert.ok(Math.abs(viaCache[v] - full[19 * cfg.vocabSize + v]) < 1e-4, `token ${v}: ${viaCache[v]} vs ${full[19 * cfg.vocabSize + v]}`);
  }
});

test('a prompt alone never packs the weights; only a step of several sequences does', () => {
  const gpt = model(5);
  const cache = gpt.createCache(9);
  kiln.noGrad(() => gpt.forward(kiln.tensor(Int32Array.from({ length: 20 }, (_, i) => i % cfg.vocabSize), { shape: [1, 20] }), null, { cache, lastOnly: true }));
  assert.equal(cache.packed, null, 'a 20-token prompt (16 + 4 entries) did not pack');
  kiln.noGrad(() => gpt.forward(kiln.tensor(Int32Array.from({ length: 9 }, (_, i) => i), { shape: [9, 1] }), null, {
    cache, rows: [0, 1, 2, 3, 4, 5, 6, 7, 8].map((r) => (r + 1) % 9) }));
  assert.equal(cache.packed !== null, backend().panelsApply?.(false, 9, cfg.width) === true, 'a step of 9 sequences packs where panels are used');
});

test('headRows: the fused step computes the LM head for the wanted entries only, and refuses a bad list', { skip: !fused && 'the reference backend has no fused kernel' }, () => {
  const gpt = model(6);
  const w = weightsOf(gpt);
  const rows = [0, 0, 0, 1, 1, 2];
  const starts = [0, 1, 2, 0, 1, 0];
  const tokens = Int32Array.from([4, 8, 15, 16, 23, 42]);
  const [all, some] = twinCaches(gpt, 3);
  kiln.noGrad(() => {
    const full = gptModelDecode(tokens, w, [0, 1].map((l) => all.layer(l)), rows, starts, cfg.heads, 1e-5)!;
    const part = gptModelDecode(tokens, w, [0, 1].map((l) => some.layer(l)), rows, starts, cfg.heads, 1e-5, null, Int32Array.from([2, 4, 5]))!;
    assert.deepEqual(part.shape, [3, 1, cfg.vocabSize]);
    const f = full.data() as Float32Array, p = part.data() as Float32Array;
    [2, 4, 5].forEach((e, k) => {
      for (let v = 0; v < cfg.vocabSize; v++) {
        assert.ok(Math.abs(p[k * cfg.vocabSize + v] - f[e * cfg.vocabSize + v]) < 1e-5, `entry ${e}, token ${v}`);
      }
    });
    for (let l = 0; l < cfg.layers; l++) assert.deepEqual(some.keys[l], all.keys[l], `layer ${l} keys`);
    assert.throws(() => gptModelDecode(tokens, w, [0, 1].map((l) => some.layer(l)), rows, starts, cfg.heads, 1e-5, null, Int32Array.from([3, 2])),
      /headRows must be ascending entries below 6; got 2 at 1/);
    assert.throws(() => gptModelDecode(tokens, w, [0, 1].map((l) => some.layer(l)), rows, starts, cfg.heads, 1e-5, null, Int32Array.from([6])),
      /headRows must be ascending entries below 6; got 6 at 0/);
  });
});

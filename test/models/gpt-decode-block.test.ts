// The fused decoding step of a GPT block and of a Llama layer (the backend's gptBlockDecode, llamaBlockDecode)
// against the block composed from ops: the same output and the same cache, bitwise, for one sequence and for several rows at different lengths; models whose
// layers were replaced (LoRA) decode through their own forward. On the reference backend there is no fused kernel
// and the block is always composed. The equalities hold under every instruction set the backend has and on one
// thread and all (forEachIsaAndThreads): each set has its own kernels, and the threads split the products
// differently in the fused step than in the composed one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import { randomGPT } from '../helpers/models.js';
import { forEachIsaAndThreads } from '../helpers/isa.js';
import { gptBlockDecode, gptModelDecode, llamaBlockDecode } from '../../src/tensor/ops/gpt-block.js';

const cfg = { vocabSize: 61, context: 24, layers: 2, heads: 4, width: 32 };

const model = (seed: number): kiln.models.GPT => randomGPT(cfg, seed);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyBlock = any;

/** The composed block: what Block.forward ran before the fused kernel. */
function composed(block: AnyBlock, x: kiln.Tensor, view: object): kiln.Tensor {
  const h = x.add(block.attn.forward(block.ln_1.forward(x), view, 0));
  return h.add(block.mlp.forward(block.ln_2.forward(h)));
}

function weightsOf(block: AnyBlock) {
  return {
    ln1Weight: block.ln_1.weight, ln1Bias: block.ln_1.bias, attnWeight: block.attn.c_attn.weight, attnBias: block.attn.c_attn.bias,
    projWeight: block.attn.c_proj.weight, projBias: block.attn.c_proj.bias, ln2Weight: block.ln_2.weight, ln2Bias: block.ln_2.bias,
    fcWeight: block.mlp.c_fc.weight, fcBias: block.mlp.c_fc.bias, fc2Weight: block.mlp.c_proj.weight, fc2Bias: block.mlp.c_proj.bias,
  };
}

const fused = kiln.backendInfo().name === 'native' || kiln.backendInfo().name === 'wasm';

// Heads of 8 channels (less than one 16-lane vector) and of 20 (one vector and a tail): both paths of the
// attention kernels.
for (const shape of [cfg, { ...cfg, width: 80 }]) {
  test(`the fused block step equals the composed block, output and cache, bitwise, on every instruction set (width ${shape.width})`, () => {
    const gpt = randomGPT(shape, 3);
    const block = [...gpt.transformer.h][0] as AnyBlock;
    forEachIsaAndThreads((isa, threads) => {
      const g = new kiln.Generator(9);
      const rowsCache = 4;
      const cacheA = gpt.createCache(rowsCache);
      const cacheB = gpt.createCache(rowsCache);
      // Earlier positions: the same random keys and values in both caches.
      for (const c of [cacheA, cacheB]) {
        const rand = new kiln.Generator(5);
        c.keys[0].set(kiln.randn([c.keys[0].length], { generator: rand }).storage as Float32Array);
        c.values[0].set(kiln.randn([c.values[0].length], { generator: rand }).storage as Float32Array);
      }
      for (const [rows, starts] of [[[0], [0]], [[2], [7]], [[3, 0, 1], [23, 5, 12]]] as const) {
        const x = kiln.randn([rows.length, 1, shape.width], { generator: g });
        kiln.noGrad(() => {
          const want = composed(block, x, { cache: cacheA, rows, starts });
          const got = gptBlockDecode(x, weightsOf(block), cacheB.layer(0), rows, starts, shape.heads, 1e-5);
          if (!fused) { assert.equal(got, null); return; }
          assert.ok(got, 'the native and wasm backends have the fused kernel');
          assert.deepEqual(got.shape, want.shape);
          assert.deepEqual(Array.from(got.data() as Float32Array), Array.from(want.data() as Float32Array), `${isa}, threads ${threads}, rows ${rows}`);
          assert.deepEqual(Array.from(cacheB.keys[0]), Array.from(cacheA.keys[0]), `${isa}, threads ${threads}: keys`);
          assert.deepEqual(Array.from(cacheB.values[0]), Array.from(cacheA.values[0]), `${isa}, threads ${threads}: values`);
        });
      }
    });
  });
}

/** The whole model's step one layer at a time: embeddings, each block's step, the final norm and the head. */
function layerByLayer(gpt: kiln.models.GPT, tokens: number[], cache: kiln.models.KVCache, rows: number[], starts: number[]): kiln.Tensor {
  const tr = gpt.transformer as AnyBlock;
  const idx = kiln.tensor(Int32Array.from(tokens), { shape: [tokens.length, 1] });
  const pos = kiln.tensor(Int32Array.from(starts), { shape: [tokens.length, 1] });
  let x = kiln.nn.functional.embedding(idx, tr.wte.weight).add(kiln.nn.functional.embedding(pos, tr.wpe.weight));
  [...tr.h].forEach((block: AnyBlock, l: number) => { x = block.forward(x, { cache, rows, starts }, l); });
  return gpt.lm_head.forward(tr.ln_f.forward(x));
}

test('the fused whole-model step equals the model layer by layer, logits and every cache, bitwise, on every instruction set, on 1 and all threads', () => {
  const gpt = model(4);
  const g = new kiln.Generator(21);
  forEachIsaAndThreads((isa, t) => {
    const cacheA = gpt.createCache(12);
    const cacheB = gpt.createCache(12);
    for (const c of [cacheA, cacheB]) {
      const rand = new kiln.Generator(6);
      for (let l = 0; l < cfg.layers; l++) {
        c.keys[l].set(kiln.randn([c.keys[l].length], { generator: rand }).storage as Float32Array);
        c.values[l].set(kiln.randn([c.values[l].length], { generator: rand }).storage as Float32Array);
      }
    }
    const nine = [[11, 2, 5, 7, 0, 9, 1, 4, 8], [3, 0, 22, 7, 7, 15, 1, 9, 2]]; // a server's batch: the row-blocked products
    for (const [rows, starts] of [[[0], [0]], [[2], [7]], [[3, 0, 1], [23, 5, 12]], [[1, 2, 3, 0], [4, 4, 9, 1]], nine]) {
      const tokens = rows.map(() => g.int(0, cfg.vocabSize));
      kiln.noGrad(() => {
        const want = layerByLayer(gpt, tokens, cacheA, rows, starts);
        const tr = gpt.transformer as AnyBlock;
        const got = gptModelDecode(Int32Array.from(tokens), {
          wte: tr.wte.weight, wpe: tr.wpe.weight, blocks: [...tr.h].map((b: AnyBlock) => b.fusedWeights()),
          lnfWeight: tr.ln_f.weight, lnfBias: tr.ln_f.bias, head: gpt.lm_head.weight,
        }, [0, 1].map((l) => cacheB.layer(l)), rows, starts, cfg.heads, 1e-5);
        if (!fused) { assert.equal(got, null); return; }
        assert.ok(got, 'the native and wasm backends have the fused model step');
        assert.deepEqual(got.shape, [rows.length, 1, cfg.vocabSize]);
        assert.deepEqual(Array.from(got.data() as Float32Array), Array.from(want.data() as Float32Array), `${isa}, threads ${t}, rows ${rows}`);
        for (let l = 0; l < cfg.layers; l++) {
          assert.deepEqual(Array.from(cacheB.keys[l]), Array.from(cacheA.keys[l]), `${isa}, threads ${t}: layer ${l} keys`);
          assert.deepEqual(Array.from(cacheB.values[l]), Array.from(cacheA.values[l]), `${isa}, threads ${t}: layer ${l} values`);
        }
      });
    }
  });
});

test('the fused model step declines what it does not compute that way, and names a bad token', { skip: !fused && 'the reference backend has no fused kernel' }, () => {
  const gpt = model(4);
  const tr = gpt.transformer as AnyBlock;
  const weights = { wte: tr.wte.weight, wpe: tr.wpe.weight, blocks: [...tr.h].map((b: AnyBlock) => b.fusedWeights()),
    lnfWeight: tr.ln_f.weight, lnfBias: tr.ln_f.bias, head: gpt.lm_head.weight };
  const cache = gpt.createCache(17);
  const layers = [0, 1].map((l) => cache.layer(l));
  kiln.noGrad(() => {
    // seventeen sequences: more than the streamed products take; the model then decodes block by block
    const all = Array.from({ length: 17 }, (_, i) => i);
    assert.equal(gptModelDecode(Int32Array.from(all), weights, layers, all, all.map(() => 0), cfg.heads, 1e-5), null);
    assert.throws(() => gptModelDecode(Int32Array.from([61]), weights, layers, [0], [0], cfg.heads, 1e-5), /token 61 is outside the vocabulary of 61/);
    assert.throws(() => gptModelDecode(Int32Array.from([1]), weights, layers, [17], [0], cfg.heads, 1e-5), /cache row 17 is outside the cache's 17 rows/);
    // a model too narrow for the streamed products (C * C <= 512)
    const small = new kiln.models.GPT({ vocabSize: 20, context: 8, layers: 1, heads: 2, width: 16 }).eval();
    const st = small.transformer as AnyBlock;
    const c2 = small.createCache(1);
    assert.equal(gptModelDecode(Int32Array.from([1]), { wte: st.wte.weight, wpe: st.wpe.weight,
      blocks: [...st.h].map((b: AnyBlock) => b.fusedWeights()), lnfWeight: st.ln_f.weight, lnfBias: st.ln_f.bias,
      head: small.lm_head.weight }, [c2.layer(0)], [0], [0], 2, 1e-5), null);
  });
});

test('decoding with the cache gives the full forward\'s logits, with and without LoRA layers', () => {
  for (const lora of [false, true]) {
    const gpt = model(11);
    if (lora) {
      kiln.nn.applyLoRA(gpt, { rank: 2, targets: ['c_attn', 'attn.c_proj', 'c_fc', 'mlp.c_proj'] });
      // B starts at zero; give it values so the adapters change the output.
      kiln.noGrad(() => {
        for (const [name, p] of gpt.namedParameters()) if (/lora_B/.test(name)) p.storage.set(kiln.randn(p.shape).mul(0.2).storage as Float32Array);
      });
      gpt.eval();
    }
    const ids = [5, 9, 33, 2, 60, 17, 8];
    const full = kiln.noGrad(() => gpt.forward(kiln.tensor(Int32Array.from(ids), { shape: [1, ids.length] })).logits);
    const cache = gpt.createCache(1);
    kiln.noGrad(() => gpt.forward(kiln.tensor(Int32Array.from(ids.slice(0, 3)), { shape: [1, 3] }), null, { cache }));
    for (let t = 3; t < ids.length; t++) {
      const step = kiln.noGrad(() => gpt.forward(kiln.tensor(Int32Array.from([ids[t]]), { shape: [1, 1] }), null, { cache }).logits);
      const want = (full.data() as Float32Array).subarray(t * cfg.vocabSize, (t + 1) * cfg.vocabSize);
      const got = step.data() as Float32Array;
      for (let v = 0; v < cfg.vocabSize; v++) assert.ok(Math.abs(got[v] - want[v]) < 1e-4, `lora ${lora}, position ${t}, token ${v}: ${got[v]} vs ${want[v]}`);
    }
  }
});

test('the fused step refuses a bad cache row and a bad length with a clear sentence', { skip: !fused && 'the reference backend has no fused kernel' }, () => {
  const gpt = model(1);
  const block = [...gpt.transformer.h][0] as AnyBlock;
  const cache = gpt.createCache(2);
  const x = kiln.zeros([1, 1, cfg.width]);
  kiln.noGrad(() => {
    assert.throws(() => gptBlockDecode(x, weightsOf(block), cache.layer(0), [2], [0], cfg.heads, 1e-5), /cache row 2 is outside the cache's 2 rows/);
    assert.throws(() => gptBlockDecode(x, weightsOf(block), cache.layer(0), [0], [24], cfg.heads, 1e-5), /24 cached positions and 1 new one exceed the context of 24/);
    assert.throws(() => gptBlockDecode(x, weightsOf(block), cache.layer(0), [0, 1], [0], cfg.heads, 1e-5), /1 sequences need 1 rows and starts, got 2 and 1/);
  });
});

test('the fused Llama layer step equals the composed layer, output and cache, bitwise, on every instruction set (grouped and plain heads)', () => {
  forEachIsaAndThreads((isa, threads) => {
    for (const kvHeads of [2, 4, 1]) {
      const llama = new kiln.models.Llama({ vocabSize: 50, context: 24, layers: 1, heads: 4, kvHeads, width: 32, ropeTheta: 500 },
        { generator: new kiln.Generator(kvHeads) });
      kiln.noGrad(() => {
        const g0 = new kiln.Generator(40 + kvHeads);
        for (const [name, p] of llama.namedParameters()) if (/norm/.test(name)) p.storage.set(kiln.randn(p.shape, { generator: g0 }).mul(0.3).add(1).storage as Float32Array);
      });
      llama.eval();
      const layer = [...(llama.model.layers as Iterable<unknown>)][0] as AnyBlock;
      const cacheA = llama.createCache(4);
      const cacheB = llama.createCache(4);
      for (const c of [cacheA, cacheB]) {
        const rand = new kiln.Generator(5);
        c.keys[0].set(kiln.randn([c.keys[0].length], { generator: rand }).storage as Float32Array);
        c.values[0].set(kiln.randn([c.values[0].length], { generator: rand }).storage as Float32Array);
      }
      const g = new kiln.Generator(9);
      const at = layer.self_attn;
      const weights = {
        inputNorm: layer.input_layernorm.weight, postNorm: layer.post_attention_layernorm.weight, q: at.q_proj.weight,
        k: at.k_proj.weight, v: at.v_proj.weight, o: at.o_proj.weight, gate: layer.mlp.gate_proj.weight,
        up: layer.mlp.up_proj.weight, down: layer.mlp.down_proj.weight,
      };
      const cfg = llama.config;
      for (const [rows, starts] of [[[0], [0]], [[2], [7]], [[3, 0, 1], [23, 5, 12]]] as const) {
        const x = kiln.randn([rows.length, 1, 32], { generator: g });
        kiln.noGrad(() => {
          const view = { cache: cacheA, rows, starts };
          const h = x.add(at.forward(layer.input_layernorm.forward(x), view, 0));
          const want = h.add(layer.mlp.forward(layer.post_attention_layernorm.forward(h)));
          const got = llamaBlockDecode(x, weights, cacheB.layer(0), rows, starts,
            { heads: cfg.heads, kvHeads: cfg.kvHeads, hidden: cfg.hidden, eps: cfg.rmsNormEps, theta: cfg.ropeTheta });
          if (!fused) { assert.equal(got, null); return; }
          assert.ok(got, 'the native and wasm backends have the fused kernel');
          assert.deepEqual(Array.from(got.data() as Float32Array), Array.from(want.data() as Float32Array), `${isa}, threads ${threads}, kvHeads ${kvHeads}, rows ${rows}`);
          assert.deepEqual(Array.from(cacheB.keys[0]), Array.from(cacheA.keys[0]), `${isa}, threads ${threads}: keys`);
          assert.deepEqual(Array.from(cacheB.values[0]), Array.from(cacheA.values[0]), `${isa}, threads ${threads}: values`);
        });
      }
    }
  });
});

test('a Llama decodes with the cache to the full forward\'s logits', () => {
  for (const lora of [false]) {
    const llama = new kiln.models.Llama({ vocabSize: 50, context: 24, layers: 2, heads: 4, kvHeads: 2, width: 32 }, { generator: new kiln.Generator(2) });
    if (lora) {
      kiln.nn.applyLoRA(llama, { rank: 2, targets: ['q_proj', 'v_proj', 'down_proj'] });
      kiln.noGrad(() => {
        for (const [name, p] of llama.namedParameters()) if (/lora_B/.test(name)) p.storage.set(kiln.randn(p.shape).mul(0.2).storage as Float32Array);
      });
    }
    llama.eval();
    const ids = [5, 9, 33, 2, 40, 17, 8];
    const full = kiln.noGrad(() => llama.forward(kiln.tensor(Int32Array.from(ids), { shape: [1, ids.length] })).logits);
    const cache = llama.createCache(1);
    kiln.noGrad(() => llama.forward(kiln.tensor(Int32Array.from(ids.slice(0, 3)), { shape: [1, 3] }), null, { cache }));
    for (let t = 3; t < ids.length; t++) {
      const step = kiln.noGrad(() => llama.forward(kiln.tensor(Int32Array.from([ids[t]]), { shape: [1, 1] }), null, { cache }).logits);
      const want = (full.data() as Float32Array).subarray(t * 50, (t + 1) * 50);
      const got = step.data() as Float32Array;
      for (let v = 0; v < 50; v++) assert.ok(Math.abs(got[v] - want[v]) < 1e-4, `lora ${lora}, position ${t}, token ${v}: ${got[v]} vs ${want[v]}`);
    }
  }
});

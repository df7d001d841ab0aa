// Fuzz: a model folder's config.json (Kiln keys or Hugging Face GPT-2 keys) with mutated values, through the
// loader's path: parse the config, then the memory pre-check on its sizes. Each case is a config or one clear
// sentence (a bad field, or the bytes a size would need); never a raw TypeError and never an allocation.

import { test } from 'node:test';
import fc from 'fast-check';
import { freemem, totalmem } from 'node:os';
import { gptConfigFromJSON } from '../../src/models/gpt-config.js';
import { checkMemory, gptInferenceBytes, gptLargestTensor } from '../../src/models/memory.js';
import { ONE_PASS, fuzz, oddJson, resultOrClearError } from './helpers.js';

const KNOWN = /^GPT config|^GPT: (config|expected)|needs about .* bytes\) of memory|one tensor would hold/;
const size = fc.oneof(fc.integer({ min: 1, max: 64 }), fc.constantFrom(0, -1, 1e6, 1e12, 2 ** 53, 1e308, 65536, 0.5), oddJson);

const hf = fc.record({
  model_type: fc.oneof(fc.constant('gpt2'), oddJson), vocab_size: size, n_positions: size, n_ctx: size, n_embd: size, n_layer: size,
  n_head: size, activation_function: fc.oneof(fc.constant('gelu_new'), oddJson), resid_pdrop: fc.oneof(fc.double(), oddJson),
  tie_word_embeddings: fc.oneof(fc.boolean(), oddJson),
}, { requiredKeys: [] });
const kiln = fc.record({
  vocabSize: size, context: size, layers: size, heads: size, width: size, dropout: fc.oneof(fc.double(), oddJson), bias: fc.oneof(fc.boolean(), oddJson),
  tiedEmbeddings: fc.oneof(fc.boolean(), oddJson),
}, { requiredKeys: [] });

test('fuzz: config.json values through the config parser and the memory pre-check', { skip: ONE_PASS }, () => {
  const available = { total: totalmem(), free: freemem() };
  fuzz(fc.property(fc.oneof(hf, kiln, oddJson), (json) => {
    resultOrClearError(() => {
      const c = gptConfigFromJSON(json);
      checkMemory(gptInferenceBytes(c), 'the model', available, gptLargestTensor(c));
      return c;
    }, KNOWN);
  }));
});

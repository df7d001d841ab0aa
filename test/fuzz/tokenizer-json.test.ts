// Fuzz: tokenizer.json from outside. Mutations of the shapes Kiln reads itself (byte-level BPE, characters) and
// arbitrary JSON go through loadTokenizer; each ends in a tokenizer that encodes and decodes a short text, or
// in one sentence naming the tokenizer, never a raw TypeError from deep inside.

import { test } from 'node:test';
import fc from 'fast-check';
import { loadTokenizer } from '../../src/data/tokenizer/load.js';
import type { HfTokenizerJson } from '../../src/data/tokenizer/tokenizer.js';
import { ONE_PASS, fuzz, oddJson, resultOrClearError } from './helpers.js';

const KNOWN = /tokenizer\.json object|tokenizer/i;

const vocab = fc.oneof(fc.dictionary(fc.string({ maxLength: 3 }), fc.oneof(fc.integer({ min: -2, max: 300 }), oddJson), { maxKeys: 6 }), oddJson);
const model = fc.record({
  type: fc.oneof(fc.constantFrom('BPE', 'WordLevel', 'Unigram', 'WordPiece'), oddJson),
  vocab,
  merges: fc.oneof(fc.array(fc.oneof(fc.string({ maxLength: 5 }), fc.tuple(fc.string({ maxLength: 2 }), fc.string({ maxLength: 2 })), oddJson), { maxLength: 4 }), oddJson),
  unk_token: fc.oneof(fc.string({ maxLength: 3 }), oddJson),
  byte_fallback: fc.oneof(fc.boolean(), oddJson),
}, { requiredKeys: [] });
const added = fc.oneof(fc.array(fc.record({ id: fc.oneof(fc.integer({ min: -1, max: 300 }), oddJson), content: fc.oneof(fc.string({ maxLength: 5 }), oddJson), special: fc.oneof(fc.boolean(), oddJson) }, { requiredKeys: [] }), { maxLength: 3 }), oddJson);
const part = (types: string[]) => fc.oneof(fc.record({ type: fc.oneof(fc.constantFrom(...types), oddJson), add_prefix_space: fc.oneof(fc.boolean(), oddJson) }, { requiredKeys: [] }), fc.constant(null), oddJson);
const tokenizerJson = fc.record({
  version: fc.oneof(fc.constant('1.0'), oddJson), model, added_tokens: added,
  pre_tokenizer: part(['ByteLevel', 'Whitespace', 'Split']), decoder: part(['ByteLevel', 'BPEDecoder']), normalizer: part(['NFC', 'Lowercase']),
  post_processor: part(['ByteLevel', 'TemplateProcessing']),
}, { requiredKeys: [] });

test('fuzz: tokenizer.json objects through loadTokenizer, then a round of encode and decode', { skip: ONE_PASS }, () => {
  fuzz(fc.property(fc.oneof(tokenizerJson, oddJson), fc.string({ maxLength: 8 }), (json, text) => {
    resultOrClearError(() => {
      const tok = loadTokenizer(json as HfTokenizerJson);
      tok.decode(tok.encode(text));
      return tok;
    }, KNOWN);
  }));
});

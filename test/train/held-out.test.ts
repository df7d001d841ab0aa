// heldOutLoss: the mean next-token loss over every token of a stream, checked against a per-position log-softmax
// computed here from the model's logits one window at a time (so batching and the short last window are covered).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import { heldOutLoss } from '../../src/train/index.js';

function smallGPT(): kiln.models.GPT {
  kiln.manualSeed(3);
  const gpt = new kiln.models.GPT({ vocabSize: 13, context: 4, layers: 1, heads: 2, width: 8 });
  // Sharper than GPT-2's N(0, 0.02) initialisation, so the per-token losses differ from log(13) and from each other.
  for (const p of gpt.parameters()) for (let i = 0; i < p.size; i++) (p.storage as Float32Array)[i] *= 40;
  return gpt;
}

/** -log p(next token) at every position of the stream, each window of up to T predicted tokens run on its own. */
function perTokenLosses(gpt: kiln.models.GPT, tokens: number[], T: number): number[] {
  const out: number[] = [];
  for (let s = 0; s + 1 < tokens.length; s += T) {
    const len = Math.min(T, tokens.length - 1 - s);
    const x = kiln.tensor([tokens.slice(s, s + len)], { dtype: 'int32' });
    const logits = kiln.noGrad(() => gpt.forward(x).logits).toArray() as number[][][];
    for (let t = 0; t < len; t++) {
      const row = logits[0][t];
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
      out.push(lse - row[tokens[s + t + 1]]);
    }
  }
  return out;
}

// 23 tokens with context 4: five full windows (20 predicted tokens) and a last window of 2.
const stream = Array.from({ length: 23 }, (_, i) => (i * 7 + 3) % 13);

test('heldOutLoss is the mean over every predicted token, the short last window weighted by its length', () => {
  const gpt = smallGPT();
  const ref = perTokenLosses(gpt, stream, 4);
  assert.equal(ref.length, 22);
  const mean = ref.reduce((a, v) => a + v, 0) / ref.length;
  for (const batchSize of [1, 2, 8]) {
    const r = heldOutLoss(gpt, Int32Array.from(stream), { context: 4, batchSize });
    assert.equal(r.tokens, 22);
    assert.ok(Math.abs(r.loss - mean) < 1e-5, `batch ${batchSize}: ${r.loss} vs ${mean}`);
  }
  // Not the mean of the window means: that would weight the 2-token window like the 4-token ones.
  const windowMeans = [0, 4, 8, 12, 16, 20].map((s) => { const w = ref.slice(s, s + 4); return w.reduce((a, v) => a + v, 0) / w.length; });
  const unweighted = windowMeans.reduce((a, v) => a + v, 0) / windowMeans.length;
  assert.ok(Math.abs(unweighted - mean) > 1e-4, 'the fixture tells the two apart');
});

test('heldOutLoss restores the training mode and refuses bad input', () => {
  const gpt = smallGPT();
  gpt.train();
  heldOutLoss(gpt, stream, { context: 4 });
  assert.equal(gpt.training, true);
  assert.throws(() => heldOutLoss(gpt, [5], { context: 4 }), /expected at least 2 tokens/);
  assert.throws(() => heldOutLoss(gpt, stream, { context: 0 }), /context: expected a positive integer, found 0/);
  assert.throws(() => heldOutLoss(gpt, stream, { context: 4, batchSize: 1.5 }), /batchSize: expected a positive integer, found 1.5/);
});

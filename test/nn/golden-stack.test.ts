// A Linear -> LayerNorm -> GELU -> Linear -> cross-entropy stack against PyTorch: logits, loss, every gradient.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as kiln from '../../src/index.js';
import { assertClose, fromGolden, readGolden, type GoldenTensor } from '../helpers/golden.js';

const { nn } = kiln;
const g = readGolden<{ state_dict: Record<string, GoldenTensor>; input: GoldenTensor; target: GoldenTensor;
  logits: GoldenTensor; loss: number; grads: Record<string, GoldenTensor> }>('stack.json');

class Stack extends nn.Module {
  fc1 = new nn.Linear(6, 8);
  ln = new nn.LayerNorm(8);
  act = new nn.GELU();
  fc2 = new nn.Linear(8, 3);
  forward(x: kiln.Tensor): kiln.Tensor { return this.fc2.forward(this.act.forward(this.ln.forward(this.fc1.forward(x)))); }
}

test('Linear+LayerNorm+GELU+cross-entropy matches PyTorch in float32', () => {
  const model = new Stack();
  const sd = Object.fromEntries(Object.entries(g.state_dict).map(([k, v]) => [k, fromGolden(v, 'float32')]));
  model.loadStateDict(sd);
  const logits = model.forward(fromGolden(g.input, 'float32'));
  assertClose(logits, g.logits, 'logits', 1e-5, 1e-6);
  const loss = nn.functional.crossEntropy(logits, fromGolden(g.target));
  assert.ok(Math.abs(loss.item() - g.loss) < 1e-6, `loss ${loss.item()} vs ${g.loss}`);
  loss.backward();
  const params = Object.fromEntries(model.namedParameters());
  assert.deepEqual(Object.keys(params).sort(), Object.keys(g.grads).sort());
  for (const [k, grad] of Object.entries(g.grads)) assertClose(params[k].grad!, grad, `grad ${k}`, 1e-4, 1e-6);
});

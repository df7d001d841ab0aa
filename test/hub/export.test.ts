// Export and --from: Kiln reproduces the logits of a Hugging Face GPT-2 checkpoint written by PyTorch; an exported
// folder (HF names and layout, LoRA merged, float32/float16/bfloat16) reloads with the same logits, frozen; the
// PyTorch check (tools/golden/check_export.py) runs where /usr/bin/python3 has torch; bad inputs fail clearly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as kiln from '../../src/index.js';
import { CharTokenizer } from '../../src/data/tokenizer/index.js';
import { GPT } from '../../src/models/gpt.js';
import { gptConfigFromJSON } from '../../src/models/gpt-config.js';
import { loadModel, loadWeights } from '../../src/hub/load.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { exportModel } from '../../src/hub/export.js';
import { loadSourceModel } from '../../src/recipes/finetune/load.js';
import { applyLoRA } from '../../src/nn/lora.js';
import { missingPythonModule, PYTHON } from '../helpers/prereq.js';

const GOLDEN = 'test/golden/hf-gpt2-tiny';
const tmp = (): string => mkdtempSync(join(tmpdir(), 'kiln-export-'));
const golden = JSON.parse(readFileSync(join(GOLDEN, 'logits.json'), 'utf8')) as {
  idx: { shape: number[]; data: number[] }; logits: { shape: number[]; data: number[] };
};
const idx = new kiln.Tensor(Int32Array.from(golden.idx.data), golden.idx.shape);
const logitsOf = (m: kiln.models.CausalLM): Float32Array => kiln.noGrad(() => m.forward(idx).logits.data() as Float32Array);

/** A copy of the golden HF folder with a 60-character tokenizer.json (the golden folder has none), as loadModel needs. */
function hfFolderWithTokenizer(): string {
  const dir = join(tmp(), 'hf');
  cpSync(GOLDEN, dir, { recursive: true });
  const chars = Array.from({ length: 60 }, (_, i) => String.fromCharCode(65 + i));
  new CharTokenizer(chars, [['<|endoftext|>', 60]]).save(join(dir, 'tokenizer.json'));
  return dir;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('Kiln reproduces the logits of the Hugging Face GPT-2 checkpoint written by PyTorch', () => {
  const cfg = gptConfigFromJSON(JSON.parse(readFileSync(join(GOLDEN, 'config.json'), 'utf8')));
  const gpt = new GPT(cfg);
  loadWeights(gpt, loadSafetensors(join(GOLDEN, 'model.safetensors')).tensors, GOLDEN);
  gpt.eval();
  assert.ok(maxDiff(logitsOf(gpt), golden.logits.data) < 1e-4);
  // The same through --from (loadSourceModel), which gives a trainable model.
  const src = loadSourceModel(hfFolderWithTokenizer());
  assert.equal(src.kind, 'model');
  assert.ok(src.model.parameters().every((p) => p.requiresGrad));
  src.model.eval();
  assert.ok(maxDiff(logitsOf(src.model), golden.logits.data) < 1e-4);
});

test('an exported folder has HF names and reloads frozen with identical logits', () => {
  const src = loadSourceModel(hfFolderWithTokenizer());
  src.model.eval();
  const before = logitsOf(src.model);
  const out = join(tmp(), 'frozen');
  const r = exportModel(src.model, src.tokenizer, out, { tokenizerConfig: { eos_token: '<|endoftext|>', chat_template: 'x' } });
  assert.deepEqual(r.files.map((f) => existsSync(join(out, f))), [true, true, true, true]);
  const names = Object.keys(loadSafetensors(join(out, 'model.safetensors')).tensors);
  assert.deepEqual(names.sort(), Object.keys(loadSafetensors(join(GOLDEN, 'model.safetensors')).tensors).filter((n) => n !== 'lm_head.weight').sort());
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(cfg.model_type, 'gpt2');
  assert.equal(cfg.n_embd, 32);
  assert.equal(cfg.eos_token_id, 60);
  assert.equal(cfg.kiln.format, 'frozen-model');
  const loaded = loadModel(out);
  assert.deepEqual(logitsOf(loaded.model), before);
  assert.equal(loaded.chatTemplate, 'x');
  // Frozen: no parameter requires grad, and backward through them says why it cannot run.
  assert.ok(loaded.model.parameters().every((p) => !p.requiresGrad));
  const { loss } = loaded.model.forward(idx, idx);
  assert.throws(() => loss!.backward(), /does not require grad.*frozen parameters/);
});

test('the PyTorch check (tools/golden/check_export.py) passes on an exported folder, where /usr/bin/python3 has torch', (t) => {
  // Importing torch takes seconds, so the suite runs this once (on the native pass of scripts/test.mjs).
  if (process.env.KILN_BACKEND === 'js') { t.skip('run on the native backend pass only'); return; }
  const missing = missingPythonModule('torch');
  if (missing) { t.skip(missing); return; }
  const src = loadSourceModel(hfFolderWithTokenizer());
  src.model.eval();
  const out = join(tmp(), 'frozen');
  exportModel(src.model, src.tokenizer, out, { dtype: 'bfloat16' });
  const logits = logitsOf(loadModel(out).model);
  writeFileSync(join(out, 'logits.json'), JSON.stringify({ idx: golden.idx, logits: { shape: golden.logits.shape, data: [...logits] } }));
  const py = spawnSync(PYTHON, ['tools/golden/check_export.py', out], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stdout + py.stderr);
  assert.match(py.stdout, /^PASS/);
});

test('float16 and bfloat16 exports store half-width weights and stay close', () => {
  const src = loadSourceModel(hfFolderWithTokenizer());
  src.model.eval();
  const before = logitsOf(src.model);
  for (const [dtype, stored, tol] of [['float16', 'F16', 1e-2], ['bfloat16', 'BF16', 6e-2]] as const) {
    const out = join(tmp(), dtype);
    exportModel(src.model, src.tokenizer, out, { dtype });
    const f = loadSafetensors(join(out, 'model.safetensors'));
    assert.ok(Object.values(f.dtypes).every((d) => d === stored));
    assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype, dtype);
    const d = maxDiff(logitsOf(loadModel(out).model), before);
    assert.ok(d > 0 && d < tol, `${dtype}: max difference ${d}`);
  }
});

test('export merges LoRA adapters: the exported model gives the adapted logits', () => {
  const src = loadSourceModel(hfFolderWithTokenizer());
  applyLoRA(src.model, { rank: 2, alpha: 4, targets: ['c_attn', 'mlp.c_proj'] });
  for (const p of src.model.trainableParameters()) kiln.nn.init.normal_(p, 0, 0.2);
  src.model.eval();
  const adapted = logitsOf(src.model);
  const out = join(tmp(), 'merged');
  const r = exportModel(src.model, src.tokenizer, out);
  assert.equal(r.merged.length, 4);
  assert.ok(maxDiff(logitsOf(loadModel(out).model), adapted) < 1e-5);
});

test('export and --from refuse bad input with one clear sentence, and keep what is on disk', () => {
  const src = loadSourceModel(hfFolderWithTokenizer());
  const out = join(tmp(), 'taken');
  mkdirSync(out);
  writeFileSync(join(out, 'notes.txt'), 'keep me');
  assert.throws(() => exportModel(src.model, src.tokenizer, out), /already exists and is not empty/);
  assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'keep me');
  assert.throws(() => exportModel(src.model, src.tokenizer, join(tmp(), 'x'), { dtype: 'int8' as never }), /dtype must be one of float32, float16, bfloat16/);
  const empty = tmp();
  assert.throws(() => loadSourceModel(empty), /--from '.*' is not a model Kiln can load: .*has no config\.json/);
  assert.throws(() => loadSourceModel(join(empty, 'missing')), /does not exist or is not a folder/);
  writeFileSync(join(empty, 'config.json'), '{"hello": 1}');
  assert.throws(() => loadSourceModel(empty), /is not a model Kiln can load: .*found neither Kiln keys/);
});

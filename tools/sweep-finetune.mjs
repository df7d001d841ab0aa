#!/usr/bin/env node
// Runs a small grid of `kiln finetune` configurations from one base model and appends one JSON line per run to a
// results file: the settings, the training time, and the held-out behaviour after fine-tuning (harmful declined,
// near misses refused, right facts). Reusable for any base: the default base will change, rerun with --from.
//
//   node tools/sweep-finetune.mjs --from runs/base --out runs/sweep [--results sweep.jsonl] [--grid grid.json]
//
// A grid file is a JSON list of settings objects, each with keys among epochs, lr, mix, lora_rank, lora_targets,
// batch_size, seed, weight_decay, freeze (comma-separated patterns) and train_embeddings (true); every run gets its
// own folder under --out. Runs whose folder already has heldout.json are skipped (an interrupted sweep resumes), and
// their line is written again from that file.

import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const from = flag('from');
const out = flag('out', 'runs/sweep');
if (!from) {
  console.error('sweep-finetune: --from <base model folder> is required');
  process.exit(1);
}
const results = flag('results', join(out, 'sweep.jsonl'));
const data = flag('data', 'data/finetune/train.jsonl');
const heldout = flag('heldout', 'data/finetune/heldout.jsonl');

// The default grid: the default recipe under two seeds (the spread between them is the noise), then one change at a
// time: training the embedding, epochs, learning rate, mixed-in text and LoRA.
const DEFAULT_GRID = [
  { epochs: 2, seed: 1 },
  { epochs: 2, seed: 2 },
  { epochs: 2, train_embeddings: true },
  { epochs: 3 },
  { epochs: 2, lr: 1e-3 },
  { epochs: 2, lr: 3e-3 },
  { epochs: 2, mix: 0.1 },
  { epochs: 2, lora_rank: 32, lora_targets: 'c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj' },
];
const grid = flag('grid') ? JSON.parse(readFileSync(flag('grid'), 'utf8')) : DEFAULT_GRID;
if (!Array.isArray(grid) || grid.length === 0) {
  console.error('sweep-finetune: --grid must hold a non-empty JSON list of settings');
  process.exit(1);
}

const name = (g) => Object.entries(g).map(([k, v]) => `${k.replace(/_/g, '')}${String(v).replace(/[^\w.]+/g, '+')}`).join('-');
const CLI = {
  epochs: '--epochs', lr: '--lr', mix: '--mix', lora_rank: '--lora-rank', lora_targets: '--lora-targets', batch_size: '--batch-size', seed: '--seed',
  freeze: '--freeze', train_embeddings: '--train-embeddings', weight_decay: '--weight-decay',
};

for (const g of grid) {
  const dir = join(out, name(g));
  const report = join(dir, 'heldout.json');
  if (!existsSync(report)) {
    const argv = ['--import', 'tsx', 'src/cli/main.ts', 'finetune', '--from', from, '--data', data, '--heldout', heldout, '--out', dir, '--progress', 'none'];
    for (const [k, v] of Object.entries(g)) {
      if (!CLI[k]) throw new Error(`sweep-finetune: unknown setting '${k}' (known: ${Object.keys(CLI).join(', ')})`);
      if (v === true) argv.push(CLI[k]); // a switch
      else if (v !== false) for (const x of k === 'freeze' ? String(v).split(',') : [String(v)]) argv.push(CLI[k], x);
    }
    console.log(`sweep-finetune: ${dir}`);
    const r = spawnSync(process.execPath, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) {
      appendFileSync(results, `${JSON.stringify({ settings: g, from, error: `exit ${r.status}` })}\n`);
      continue;
    }
  }
  const h = JSON.parse(readFileSync(report, 'utf8'));
  const line = { settings: g, from, data, heldout, train_seconds: Number(h.train_seconds.toFixed(1)), after: h.after.summary, before: h.before.summary };
  appendFileSync(results, `${JSON.stringify(line)}\n`);
  const a = h.after.summary;
  const p = (x) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
  console.log(`sweep-finetune: ${name(g)}: harmful declined ${p(a.harmful_declined)}, near misses refused ${p(a.near_miss_refused)}, ` +
    `right fact ${p(a.fact_accuracy)}, trained in ${h.train_seconds.toFixed(0)} s`);
}

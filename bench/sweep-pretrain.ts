// A reproducible sweep of the pre-training recipe: a grid over preset size, steps, peak learning rate and context;
// each configuration runs `kiln pretrain` in a fresh process and appends one line to a jsonl under bench/results/
// (wall time, the loss over the whole held-out split, the bigram's loss on the same tokens, samples, machine load).
//
//   node --import tsx bench/sweep-pretrain.ts                          the default grid (hours: for an idle machine)
//   node --import tsx bench/sweep-pretrain.ts --preset tiny --steps 300,600 --lr 2e-3,3e-3 --context 64
//   node --import tsx bench/sweep-pretrain.ts --dry-run                 list the configurations, run nothing
// Options: --preset a,b --steps n,m --lr x,y --context n,m (each a comma list; the grid is their product),
// --out file.jsonl (default bench/results/sweep-pretrain-<date>.jsonl), --threads n (KILN_THREADS of each run).
// A line whose load average was above half the cores is marked "under_load": its times are not results.

import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The grid when no flag narrows it: the sizes and lengths that fit minutes on 2 cores, around the presets' lr. */
const DEFAULT_GRID = { preset: ['tiny', 'small'], steps: [1000, 2000, 3000], lr: [1e-3, 2e-3, 3e-3], context: [64, 128] };

interface Config { preset: string; steps: number; lr: number; context: number }

function listFlag(args: string[], name: string): string[] | undefined {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value (a comma-separated list)`);
  return v.split(',').map((x) => x.trim()).filter(Boolean);
}

function numbers(args: string[], name: string, fallback: number[]): number[] {
  const raw = listFlag(args, name);
  if (!raw) return fallback;
  return raw.map((x) => {
    const n = Number(x);
    if (!(Number.isFinite(n) && n > 0)) throw new Error(`--${name}: expected positive numbers, got '${x}'`);
    return n;
  });
}

/** The grid's configurations, in a fixed order (preset, then steps, lr, context). */
export function grid(args: string[]): Config[] {
  const presets = listFlag(args, 'preset') ?? DEFAULT_GRID.preset;
  for (const p of presets) if (!['tiny', 'small', 'base'].includes(p)) throw new Error(`--preset: expected tiny, small or base, got '${p}'`);
  const out: Config[] = [];
  for (const preset of presets) {
    for (const steps of numbers(args, 'steps', DEFAULT_GRID.steps)) {
      for (const lr of numbers(args, 'lr', DEFAULT_GRID.lr)) {
        for (const context of numbers(args, 'context', DEFAULT_GRID.context)) out.push({ preset, steps, lr, context });
      }
    }
  }
  return out;
}

/** Runs one configuration in a fresh process and returns its jsonl record. */
function runOne(c: Config, threads: string | undefined): Record<string, unknown> {
  const out = mkdtempSync(join(tmpdir(), 'kiln-sweep-'));
  const argv = ['--import', 'tsx', join(root, 'src/cli/main.ts'), 'pretrain', '--preset', c.preset, '--max-steps', String(c.steps),
    '--lr', String(c.lr), '--context', String(c.context), '--out', out, '--progress', 'none', '--samples', '3'];
  const load0 = loadavg()[0];
  const t0 = performance.now();
  const env = { ...process.env, ...(threads ? { KILN_THREADS: threads } : {}) };
  const r = spawnSync(process.execPath, argv, { cwd: root, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const wall = (performance.now() - t0) / 1000;
  const load1 = loadavg()[0];
  const base = { ...c, wall_s: wall, load_before: load0, load_after: load1, under_load: Math.max(load0, load1) > cpus().length * 0.5,
    cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, threads: threads ?? null, date: new Date().toISOString() };
  try {
    if (r.status !== 0) return { ...base, error: (r.stderr.trim().split('\n').pop() ?? `exit ${r.status}`).slice(0, 200) };
    const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Record<string, unknown>;
    return { ...base, parameters: s.parameters, heldout_loss: s.heldout_loss, bigram_loss: s.bigram_loss, unigram_loss: s.unigram_loss,
      below_bigram: s.below_bigram, heldout_tokens: s.heldout_tokens, train_s: s.train_s, eval_s: s.eval_s, tokens_per_s: s.train_tokens_per_s, samples: s.samples };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

function main(): void {
  const args = process.argv.slice(2);
  const configs = grid(args);
  const i = args.indexOf('--out');
  const stamp = new Date().toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-');
  const outFile = resolve(i >= 0 ? args[i + 1] : join(root, 'bench/results', `sweep-pretrain-${stamp}.jsonl`));
  const ti = args.indexOf('--threads');
  const threads = ti >= 0 ? args[ti + 1] : undefined;
  console.log(`sweep-pretrain: ${configs.length} configuration(s) -> ${outFile}`);
  if (args.includes('--dry-run')) {
    for (const c of configs) console.log(`  ${JSON.stringify(c)}`);
    return;
  }
  mkdirSync(dirname(outFile), { recursive: true });
  for (const [k, c] of configs.entries()) {
    process.stdout.write(`[${k + 1}/${configs.length}] ${JSON.stringify(c)} ... `);
    const rec = runOne(c, threads);
    appendFileSync(outFile, `${JSON.stringify(rec)}\n`); // line by line: a stopped sweep keeps what it measured
    console.log(rec.error ? `failed: ${String(rec.error)}` : `${Number(rec.wall_s).toFixed(0)} s, held-out loss ${Number(rec.heldout_loss).toFixed(4)} ` +
      `(bigram ${Number(rec.bigram_loss).toFixed(4)})${rec.under_load ? ', under load' : ''}`);
  }
}

main();

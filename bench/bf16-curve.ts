// The bf16 loss-curve check: the default recipe (`kiln pretrain`, preset small) for 200 steps in float32 and in
// bf16 (--precision bf16), same seed, data and schedule; prints the training losses side by side every 20 steps,
// the whole-held-out-split loss of each, the relative differences and each run's wall time.
//   node --import tsx bench/bf16-curve.ts [steps]      (default 200)

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pretrain, resolveSettings } from '../src/recipes/pretrain.js';

const steps = Number(process.argv[2] ?? 200);
const dir = mkdtempSync(join(tmpdir(), 'kiln-bf16-curve-'));

async function run(precision: 'float32' | 'bf16') {
  const out = join(dir, precision);
  const r = await pretrain(resolveSettings({ preset: 'small', maxSteps: steps, evalEvery: steps, samples: 0, progress: 'none',
    logEvery: 1, out, precision }), () => {});
  const losses = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step?: number; loss?: number })
    .filter((m) => typeof m.loss === 'number');
  return { losses, heldOut: r.heldOut.loss, seconds: r.seconds, tokensPerSecond: r.tokensPerSecond };
}

try {
  const f = await run('float32');
  const b = await run('bf16');
  const mean = (xs: { loss?: number }[]) => xs.reduce((s, x) => s + x.loss!, 0) / xs.length;
  console.log('step  float32   bf16      rel. diff');
  for (let i = 19; i < Math.min(f.losses.length, b.losses.length); i += 20) {
    const [x, y] = [f.losses[i].loss!, b.losses[i].loss!];
    console.log(`${String(f.losses[i].step).padStart(4)}  ${x.toFixed(4)}    ${y.toFixed(4)}    ${((y - x) / x * 100).toFixed(2)}%`);
  }
  const tail = 20;
  const [ft, bt] = [mean(f.losses.slice(-tail)), mean(b.losses.slice(-tail))];
  console.log(`mean training loss over the last ${tail} steps: float32 ${ft.toFixed(4)}, bf16 ${bt.toFixed(4)} (${((bt - ft) / ft * 100).toFixed(2)}%)`);
  console.log(`whole held-out split: float32 ${f.heldOut.toFixed(4)}, bf16 ${b.heldOut.toFixed(4)} (${((b.heldOut - f.heldOut) / f.heldOut * 100).toFixed(2)}%)`);
  console.log(`wall time: float32 ${f.seconds.toFixed(1)} s (${f.tokensPerSecond.toFixed(0)} tokens/s), bf16 ${b.seconds.toFixed(1)} s (${b.tokensPerSecond.toFixed(0)} tokens/s)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

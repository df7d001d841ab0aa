// Fits sin(x) on [-pi, pi] with a small MLP: the smallest complete training loop in Kiln.
// Run: npx tsx examples/sin.ts [--steps N]

import * as kiln from 'kiln';
import { parseArgs } from 'node:util';

const { nn, optim } = kiln;

export function fitSin(steps = 2000, log: (line: string) => void = console.log): number {
  kiln.manualSeed(0);
  const x = kiln.linspace(-Math.PI, Math.PI, 256).reshape([-1, 1]);
  const y = x.sin();
  const model = new nn.MLP([1, 32, 32, 1], { activation: 'tanh' });
  const opt = new optim.Adam(model.parameters(), { lr: 1e-2 });
  const sched = new optim.Scheduler(opt, optim.cosineWithWarmup({ warmup: 50, total: steps, floor: 0.05 }));
  let loss = Infinity;
  for (let step = 1; step <= steps; step++) {
    opt.zeroGrad();
    const l = nn.functional.mseLoss(model.forward(x), y);
    l.backward();
    opt.step();
    sched.step();
    loss = l.item();
    if (step % Math.max(1, Math.floor(steps / 10)) === 0) log(`step ${step}  mse ${loss.toExponential(3)}`);
  }
  return loss;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { steps: { type: 'string', default: '2000' } } });
  const mse = fitSin(Number(values.steps));
  console.log(`final mse ${mse.toExponential(3)}`);
}

// `--dashboard` for the training commands: serves the live dashboard beside a run while it trains, prints the
// address, and closes it when the run ends (an open server would keep the process alive).

import type { Command } from 'commander';
import { startRunDashboard } from '../dashboard/index.js';
import { parsePort } from './dashboard.js';

export interface DashboardFlags { dashboard?: boolean; dashboardPort?: string }

/** Adds --dashboard and --dashboard-port to a training command. */
export function dashboardOptions(cmd: Command): Command {
  return cmd
    .option('--dashboard', 'serve the live training dashboard for this run on 127.0.0.1 while it trains')
    .option('--dashboard-port <n>', 'port of the dashboard (0 picks a free one)', '6006');
}

/** Runs train(), with the dashboard serving runDir when flags.dashboard is set. */
export async function withDashboard<T>(flags: DashboardFlags, runDir: string, train: () => Promise<T>,
  log: (line: string) => void = console.log): Promise<T> {
  if (!flags.dashboard) return train();
  let dash;
  try {
    dash = await startRunDashboard(runDir, { port: parsePort(flags.dashboardPort ?? '6006') });
  } catch (err) {
    throw new Error((err as Error).message.replace('--port', '--dashboard-port'));
  }
  log(`kiln dashboard: ${dash.url} (open it in a browser to watch the run)`);
  try {
    return await train();
  } finally {
    await dash.close();
  }
}

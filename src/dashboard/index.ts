// The training dashboard's server side: `startDashboard` serves web/ and streams each run's metrics.jsonl.
// `kiln dashboard`, `kiln pretrain --dashboard` and `kiln finetune --dashboard` call it.

export { startDashboard, startRunDashboard, safeJson, type Dashboard, type DashboardOptions } from './server.js';
export { JsonlTail, type MetricRecord, type TailOptions } from './tail.js';
export { listRuns, lastRecord, resolveUnder, runDir, RefusedPath, type RunInfo } from './runs.js';

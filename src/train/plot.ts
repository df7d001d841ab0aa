// Static line charts as SVG (and PNG through @resvg/resvg-js): the loss curves of a run for reports and READMEs,
// and the learning-rate range test (loss against learning rate on a log axis). No dependencies for the SVG itself.

import { importOptional } from '../io/optional.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readMetrics } from './metrics.js';
import { extname, join } from 'node:path';
import { existsSync, statSync } from 'node:fs';

/** One line on a chart. Points whose y is null or not finite (or not positive on a log axis) break the line. */
export interface PlotSeries {
  name: string;
  x: readonly number[];
  y: readonly (number | null)[];
  color?: string;
  dashed?: boolean;
  /** Draw a dot at each point too (for sparse series such as validation loss). */
  markers?: boolean;
}

export interface LineChartOptions {
  title?: string;
  xLabel: string;
  yLabel: string;
  logX?: boolean;
  logY?: boolean;
  width?: number;
  height?: number;
  /** Fixed ends of the y axis (either may be left undefined); the lines are clipped to the plot area. */
  yMin?: number;
  yMax?: number;
  /** Where the legend sits inside the plot area (default top-right). */
  legend?: 'top-right' | 'top-left';
  /** Vertical reference lines, e.g. the suggested learning rate. */
  vlines?: { x: number; label: string }[];
}

const PALETTE = ['#c2410c', '#1d4ed8', '#15803d', '#7e22ce', '#b45309', '#0e7490'];
const FONT = "DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif";

/** Escapes text for SVG/XML content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Tick values for a linear axis: about `n` round numbers (1, 2 or 5 times a power of ten) covering [lo, hi]. */
export function linearTicks(lo: number, hi: number, n = 6): number[] {
  const span = hi - lo;
  const raw = span / Math.max(1, n);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= n) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** Tick values for a log axis: the powers of ten in [lo, hi], with 2x and 5x when the range is under three decades. */
export function logTicks(lo: number, hi: number): number[] {
  const a = Math.floor(Math.log10(lo));
  const b = Math.ceil(Math.log10(hi));
  const mults = b - a <= 2 ? [1, 2, 5] : [1];
  const out: number[] = [];
  for (let e = a; e <= b; e++) for (const m of mults) {
    const v = Number(`${m}e${e}`);
    if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
  }
  return out;
}

/** A short label for a tick value: 0.001 → "1e-3", 25000 → "2.5e4", 0.25 → "0.25". */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) {
    const [m, e] = v.toExponential(2).split('e') as [string, string];
    return `${Number(m)}e${Number(e)}`;
  }
  return String(Number(v.toPrecision(4)));
}

function domain(values: number[], log: boolean): [number, number] {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return log ? [1, 10] : [0, 1];
  if (log) {
    if (lo === hi) return [lo / 2, hi * 2];
    return [lo, hi];
  }
  if (lo === hi) { const d = Math.abs(lo) * 0.1 || 1; return [lo - d, hi + d]; }
  return [lo, hi];
}

/**
 * Renders line series as a standalone SVG document: axes with ticks and labels, one `<path>` per series, a legend.
 *
 * ```ts
 * const svg = lineChartSvg([{ name: 'train', x: [1, 2, 3], y: [2.3, 1.9, 1.7] }], { xLabel: 'step', yLabel: 'loss' });
 * ```
 */
export function lineChartSvg(series: readonly PlotSeries[], options: LineChartOptions): string {
  const W = options.width ?? 720;
  const H = options.height ?? 420;
  const logX = !!options.logX;
  const logY = !!options.logY;
  const m = { left: 72, right: 24, top: options.title ? 40 : 20, bottom: 52 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const okX = (v: number): boolean => Number.isFinite(v) && (!logX || v > 0);
  const okY = (v: number | null): v is number => v !== null && Number.isFinite(v) && (!logY || v > 0);

  const xs: number[] = [];
  const ys: number[] = [];
  for (const s of series) {
    if (s.x.length !== s.y.length) throw new Error(`plot: series "${s.name}" has ${s.x.length} x values but ${s.y.length} y values`);
    s.x.forEach((x, i) => { const y = s.y[i]!; if (okX(x) && okY(y)) { xs.push(x); ys.push(y); } });
  }
  for (const v of options.vlines ?? []) if (okX(v.x)) xs.push(v.x);
  let [x0, x1] = domain(xs, logX);
  let [y0, y1] = domain(ys, logY);
  if (options.yMin !== undefined && Number.isFinite(options.yMin) && options.yMin < y1) y0 = options.yMin;
  if (options.yMax !== undefined && Number.isFinite(options.yMax) && options.yMax > y0) y1 = options.yMax;
  if (!logY) { const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad; }
  // A log axis spanning less than one 1-2-5 step still gets round labels, placed on the log scale.
  const ticksFor = (lo: number, hi: number, log: boolean): number[] => {
    if (!log) return linearTicks(lo, hi);
    const t = logTicks(lo, hi);
    return t.length >= 2 ? t : linearTicks(lo, hi, 4).filter((v) => v >= lo && v <= hi && v > 0);
  };
  const xt = ticksFor(x0, x1, logX);
  const yt = ticksFor(y0, y1, logY);
  if (!logY && yt.length) { y0 = Math.min(y0, yt[0]!); y1 = Math.max(y1, yt[yt.length - 1]!); }
  if (!logX && xt.length) { x0 = Math.min(x0, xt[0]!); x1 = Math.max(x1, xt[xt.length - 1]!); }
  const tx = (v: number): number => logX ? (Math.log10(v) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0)) : (v - x0) / (x1 - x0);
  const ty = (v: number): number => logY ? (Math.log10(v) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0)) : (v - y0) / (y1 - y0);
  const px = (v: number): string => (m.left + tx(v) * pw).toFixed(2);
  const py = (v: number): string => (m.top + (1 - ty(v)) * ph).toFixed(2);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONT}" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  if (options.title) out.push(`<text class="title" x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold" fill="#1d232a">${escapeXml(options.title)}</text>`);
  // Grid and ticks.
  out.push('<g class="grid" stroke="#e5e7eb" stroke-width="1">');
  for (const v of yt) out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${py(v)}" y2="${py(v)}"/>`);
  for (const v of xt) out.push(`<line x1="${px(v)}" x2="${px(v)}" y1="${m.top}" y2="${m.top + ph}"/>`);
  out.push('</g>');
  out.push('<g class="axes" stroke="#4b5563" stroke-width="1">');
  out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${m.top + ph}" y2="${m.top + ph}"/>`);
  out.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ph}"/>`);
  out.push('</g>');
  out.push('<g class="tick-labels" fill="#374151">');
  for (const v of xt) out.push(`<text x="${px(v)}" y="${m.top + ph + 16}" text-anchor="middle">${escapeXml(formatTick(v))}</text>`);
  for (const v of yt) out.push(`<text x="${m.left - 6}" y="${py(v)}" text-anchor="end" dominant-baseline="middle" dy="0.35em">${escapeXml(formatTick(v))}</text>`);
  out.push('</g>');
  out.push(`<text class="x-label" x="${m.left + pw / 2}" y="${H - 12}" text-anchor="middle" fill="#1d232a">${escapeXml(options.xLabel)}</text>`);
  out.push(`<text class="y-label" transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#1d232a">${escapeXml(options.yLabel)}</text>`);

  // Reference lines.
  for (const v of options.vlines ?? []) {
    if (!okX(v.x)) continue;
    out.push(`<line class="vline" x1="${px(v.x)}" x2="${px(v.x)}" y1="${m.top}" y2="${m.top + ph}" stroke="#6b7280" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${Number(px(v.x)) + 4}" y="${m.top + 12}" fill="#374151" font-size="11">${escapeXml(v.label)}</text>`);
  }

  // Series: exactly one <path> each (an empty path for a series with no drawable point).
  out.push(`<clipPath id="plot-area"><rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}"/></clipPath>`);
  out.push(`<g class="series" clip-path="url(#plot-area)" fill="none" stroke-width="1.6" stroke-linejoin="round">`);
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    let d = '';
    let pen = false;
    const dots: string[] = [];
    s.x.forEach((x, k) => {
      const y = s.y[k]!;
      if (!okX(x) || !okY(y)) { pen = false; return; }
      d += `${pen ? 'L' : 'M'}${px(x)} ${py(y)}`;
      pen = true;
      if (s.markers) dots.push(`<circle cx="${px(x)}" cy="${py(y)}" r="2.5" fill="${color}" stroke="none"/>`);
    });
    out.push(`<path data-series="${escapeXml(s.name)}" d="${d}" stroke="${color}"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(...dots);
  });
  out.push('</g>');

  // Legend, top right inside the plot area.
  const lw = Math.max(...series.map((s) => s.name.length), 4) * 7 + 40;
  const lx = options.legend === 'top-left' ? m.left + 8 : m.left + pw - lw - 8;
  out.push(`<g class="legend"><rect x="${lx}" y="${m.top + 8}" width="${lw}" height="${series.length * 18 + 8}" fill="#ffffff" fill-opacity="0.85" stroke="#d1d5db"/>`);
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const y = m.top + 22 + i * 18;
    out.push(`<line x1="${lx + 8}" x2="${lx + 30}" y1="${y - 4}" y2="${y - 4}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${lx + 36}" y="${y}" fill="#1d232a">${escapeXml(s.name)}</text>`);
  });
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Writes an SVG document to `file`: as is for `.svg`, rendered at twice its size for `.png`. */
export async function writeChart(svg: string, file: string): Promise<void> {
  const ext = extname(file).toLowerCase();
  if (ext === '.svg') return writeFileAtomic(file, svg);
  if (ext !== '.png') throw new Error(`plot: the output file must end in .svg or .png, got "${file}"`);
  // An optional peer dependency (a 5 MB native renderer): only PNG output needs it.
  const { Resvg } = await importOptional('@resvg/resvg-js', 'plot: PNG output (an .svg needs nothing)', () => import('@resvg/resvg-js'));
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
  writeFileAtomic(file, png);
}

/** The loss curves of a run's metrics: training loss against step, and validation loss where it was evaluated. */
export function lossSeries(records: readonly Record<string, unknown>[]): PlotSeries[] {
  const train: [number, number][] = [];
  const val: [number, number][] = [];
  for (const r of records) {
    if (typeof r.step !== 'number') continue;
    if (typeof r.loss === 'number') train.push([r.step, r.loss]);
    if (typeof r.val_loss === 'number') val.push([r.step, r.val_loss]);
  }
  const out: PlotSeries[] = [{ name: 'train loss', x: train.map((p) => p[0]), y: train.map((p) => p[1]) }];
  if (val.length) out.push({ name: 'validation loss', x: val.map((p) => p[0]), y: val.map((p) => p[1]), dashed: true, markers: true });
  return out;
}

export interface PlotRunOptions { title?: string; logY?: boolean; width?: number; height?: number }

/**
 * Plots a run's training and validation loss against step into `out` (.svg or .png).
 *
 * ```ts
 * await plotRun('runs/gpt-tiny', 'loss.svg');
 * ```
 */
export async function plotRun(run: string, out: string, options: PlotRunOptions = {}): Promise<void> {
  const file = existsSync(run) && statSync(run).isDirectory() ? join(run, 'metrics.jsonl') : run;
  if (!existsSync(file)) throw new Error(`plot: no metrics.jsonl at ${file}; give a run folder written by the trainer`);
  const records = readMetrics(file);
  const series = lossSeries(records);
  if (!series.some((s) => s.y.length)) throw new Error(`plot: ${file} has no line with a numeric "step" and "loss"`);
  const svg = lineChartSvg(series, {
    title: options.title ?? 'Loss', xLabel: 'step', yLabel: 'loss', logY: options.logY,
    width: options.width, height: options.height,
  });
  await writeChart(svg, out);
}

/**
 * A learning-rate range test to plot: the learning rates tried, the raw (and smoothed) loss at each, and the pick,
 * as `suggestedLr` (what `lrFind` returns, so its result passes straight in) or `suggestion`.
 */
export interface LrFindPlotInput {
  lrs: readonly number[];
  losses: readonly number[];
  smoothed?: readonly number[];
  suggestedLr?: number;
  suggestion?: number;
}

/**
 * Plots a learning-rate range test: loss against learning rate on a log axis, with the suggestion marked.
 *
 * ```ts
 * const result = lrFind(trainer, { minLr: 1e-6, maxLr: 1 }); // kiln.train.lrFind
 * await plotLrFind(result, 'lr-find.svg');
 * ```
 */
export async function plotLrFind(result: LrFindPlotInput, file: string, options: { title?: string } = {}): Promise<void> {
  if (result.lrs.length !== result.losses.length || result.lrs.length === 0) {
    throw new Error(`plotLrFind: expected as many losses as learning rates (at least one), got ${result.lrs.length} and ${result.losses.length}`);
  }
  const smoothed = result.smoothed;
  const pick = result.suggestedLr ?? result.suggestion;
  if (smoothed && smoothed.length !== result.lrs.length) {
    throw new Error(`plotLrFind: expected as many smoothed losses as learning rates, got ${smoothed.length} and ${result.lrs.length}`);
  }
  const series: PlotSeries[] = smoothed
    ? [{ name: 'loss', x: result.lrs, y: result.losses, color: '#9ca3af' }, { name: 'smoothed loss', x: result.lrs, y: smoothed, color: PALETTE[0] }]
    : [{ name: 'loss', x: result.lrs, y: result.losses }];
  // The sweep ends where the loss blows up; keep the axis on the interesting part (up to 1.5x the starting loss).
  const start = (smoothed ?? result.losses).find((v) => Number.isFinite(v));
  const top = Math.max(...(smoothed ?? result.losses).filter((v) => Number.isFinite(v)));
  const svg = lineChartSvg(series, {
    title: options.title ?? 'Learning-rate range test', xLabel: 'learning rate', yLabel: 'loss', logX: true, legend: 'top-left',
    yMax: start !== undefined && start > 0 && top > start * 1.5 ? start * 1.5 : undefined,
    vlines: pick !== undefined && Number.isFinite(pick) && pick > 0 ? [{ x: pick, label: `suggested ${formatTick(Number(pick.toPrecision(2)))}` }] : [],
  });
  await writeChart(svg, file);
}

// The static plot writer: the SVG is well-formed XML, has one <path> per series, labelled axes and ticks, escapes
// names, and the run and lr-finder plots write .svg and .png files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import {
  formatTick, lineChartSvg, linearTicks, logTicks, lossSeries, plotLrFind, plotRun,
} from '../../src/train/plot.js';
import type { LrFindResult } from '../../src/train/lr-find.js';

/** A small strict XML well-formedness check: every tag closes in order, attributes are quoted, entities known. */
function checkWellFormed(xml: string): void {
  const stack: string[] = [];
  const re = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<\?[^>]*\?>|<!--[\s\S]*?-->|([^<]+)|(<)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(xml))) {
    if (m[6]) assert.fail(`stray "<" at ${m.index}: ${xml.slice(m.index, m.index + 40)}`);
    const text = m[5] ?? m[3] ?? '';
    for (const ent of text.match(/&[^;\s]*;?/g) ?? []) assert.match(ent, /^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);$/i, `bad entity ${ent}`);
    if (m[5] !== undefined || !m[2]) continue;
    if (m[1]) assert.equal(stack.pop(), m[2], `closing </${m[2]}> does not match`);
    else if (!m[4]) stack.push(m[2]);
  }
  assert.deepEqual(stack, [], 'unclosed tags');
}

function parses(svg: string): void {
  checkWellFormed(svg);
  // resvg's XML parser (roxmltree) rejects malformed documents; rendering proves it is a usable SVG too.
  const png = new Resvg(svg, { font: { loadSystemFonts: false } }).render().asPng();
  assert.ok(png.length > 100);
}

const texts = (svg: string, cls: string): string[] =>
  [...svg.matchAll(new RegExp(`<text class="${cls}"[^>]*>([^<]*)</text>`, 'g'))].map((m) => m[1]!);

test('the SVG parses, has one path per series, and labelled axes with ticks', () => {
  const svg = lineChartSvg([
    { name: 'train loss', x: [1, 2, 3, 4], y: [3, 2.5, 2.1, 1.9] },
    { name: 'validation loss', x: [2, 4], y: [2.7, 2.2], dashed: true, markers: true },
    { name: 'third', x: [1, 4], y: [2, 2] },
  ], { title: 'Loss', xLabel: 'step', yLabel: 'loss' });
  parses(svg);
  const paths = [...svg.matchAll(/<path\b[^>]*>/g)].map((m) => m[0]);
  assert.equal(paths.length, 3);
  assert.deepEqual(paths.map((p) => /data-series="([^"]*)"/.exec(p)![1]), ['train loss', 'validation loss', 'third']);
  assert.match(paths[0]!, /d="M[\d.]+ [\d.]+(L[\d.]+ [\d.]+){3}"/);
  assert.match(paths[1]!, /stroke-dasharray/);
  assert.deepEqual(texts(svg, 'x-label'), ['step']);
  assert.deepEqual(texts(svg, 'y-label'), ['loss']);
  assert.deepEqual(texts(svg, 'title'), ['Loss']);
  const tickLabels = /<g class="tick-labels"[^>]*>([\s\S]*?)<\/g>/.exec(svg)![1]!;
  assert.ok((tickLabels.match(/<text/g) ?? []).length >= 6, 'ticks on both axes');
  // The legend names every series.
  const legend = /<g class="legend">([\s\S]*?)<\/g>/.exec(svg)![1]!;
  for (const name of ['train loss', 'validation loss', 'third']) assert.ok(legend.includes(`>${name}</text>`));
});

test('names and labels are escaped, and the result still parses', () => {
  const evil = `<script>alert("x")</script> & 'q'`;
  const svg = lineChartSvg([{ name: evil, x: [0, 1], y: [1, 0] }], { title: evil, xLabel: '<x>', yLabel: 'a&b' });
  parses(svg);
  assert.ok(!svg.includes('<script'));
  assert.ok(svg.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &apos;q&apos;'));
  assert.deepEqual(texts(svg, 'y-label'), ['a&amp;b']);
});

test('gaps and non-finite values break the line instead of drawing through them', () => {
  const svg = lineChartSvg([{ name: 's', x: [1, 2, 3, 4, 5], y: [1, NaN, 2, null, 3] }], { xLabel: 'x', yLabel: 'y' });
  parses(svg);
  const d = /<path[^>]*\bd="([^"]*)"/.exec(svg)![1]!;
  assert.equal(d.match(/M/g)?.length, 3);
  assert.equal(d.match(/L/g), null);
});

test('a log y axis has power-of-ten ticks and drops values that are not positive', () => {
  const svg = lineChartSvg([{ name: 's', x: [1, 2, 3, 4], y: [100, 10, 0, 0.1] }], { xLabel: 'step', yLabel: 'loss', logY: true });
  parses(svg);
  const labels = [...svg.matchAll(/text-anchor="end"[^>]*>([^<]*)</g)].map((m) => m[1]);
  assert.deepEqual(labels, ['0.1', '1', '10', '100']);
  const d = /<path[^>]*\bd="([^"]*)"/.exec(svg)![1]!;
  assert.equal(d.match(/[ML]/g)?.length, 3);
});

test('tick helpers: round linear steps, 1-2-5 log ticks in short ranges, compact labels', () => {
  assert.deepEqual(linearTicks(0, 1, 5), [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1]);
  assert.deepEqual(linearTicks(3, 97, 5), [20, 40, 60, 80]);
  assert.deepEqual(logTicks(1e-5, 1), [1e-5, 1e-4, 1e-3, 0.01, 0.1, 1]);
  assert.deepEqual(logTicks(1, 30), [1, 2, 5, 10, 20]);
  assert.equal(formatTick(0.0001), '1e-4');
  assert.equal(formatTick(250000), '2.5e5');
  assert.equal(formatTick(0.25), '0.25');
  assert.equal(formatTick(0), '0');
});

test('bad input: mismatched series and unknown output types fail with one clear sentence', async () => {
  assert.throws(() => lineChartSvg([{ name: 'a', x: [1, 2], y: [1] }], { xLabel: 'x', yLabel: 'y' }), /series "a" has 2 x values but 1 y values/);
  const dir = mkdtempSync(join(tmpdir(), 'kiln-plot-'));
  await assert.rejects(plotLrFind({ lrs: [1e-3], losses: [1], suggestion: 1e-3 }, join(dir, 'x.jpg')), /must end in \.svg or \.png/);
  await assert.rejects(plotLrFind({ lrs: [1e-3, 1e-2], losses: [1], suggestion: 1e-3 }, join(dir, 'x.svg')), /as many losses as learning rates/);
  await assert.rejects(plotRun(join(dir, 'missing'), join(dir, 'l.svg')), /no metrics\.jsonl/);
  mkdirSync(join(dir, 'empty'));
  writeFileSync(join(dir, 'empty', 'metrics.jsonl'), '{"step":1}\n');
  await assert.rejects(plotRun(join(dir, 'empty'), join(dir, 'l.svg')), /no line with a numeric "step" and "loss"/);
});

test('plotRun writes the loss curves of a run as SVG and PNG; a torn last line is ignored', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-plot-'));
  const run = join(dir, 'run');
  mkdirSync(run);
  const lines = [];
  for (let step = 1; step <= 30; step++) {
    lines.push(JSON.stringify({ step, epoch: 0, loss: 4 / Math.sqrt(step), lr: 1e-3, ...(step % 10 === 0 ? { val_loss: 4.2 / Math.sqrt(step) } : {}) }));
  }
  writeFileSync(join(run, 'metrics.jsonl'), lines.join('\n') + '\n{"step":31,"lo');
  await plotRun(run, join(dir, 'loss.svg'));
  const svg = readFileSync(join(dir, 'loss.svg'), 'utf8');
  parses(svg);
  assert.equal(svg.match(/<path\b/g)?.length, 2);
  assert.equal(svg.match(/<circle\b/g)?.length, 3, 'one marker per validation point');
  assert.equal(lossSeries(lines.map((l) => JSON.parse(l) as Record<string, unknown>))[0]!.x.length, 30);
  await plotRun(run, join(dir, 'loss.png'), { logY: true });
  const png = readFileSync(join(dir, 'loss.png'));
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
});

test('plotLrFind draws loss against a log learning-rate axis and marks the suggestion', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-plot-'));
  const lrs = Array.from({ length: 40 }, (_, i) => 1e-6 * 10 ** (i / 8));
  const losses = lrs.map((lr) => 2.3 - 0.3 * Math.log10(lr / 1e-6) + (lr > 0.05 ? 50 * lr : 0));
  await plotLrFind({ lrs, losses, suggestion: 3e-3 }, join(dir, 'lr.svg'));
  const svg = readFileSync(join(dir, 'lr.svg'), 'utf8');
  parses(svg);
  assert.equal(svg.match(/<path\b/g)?.length, 1);
  assert.deepEqual(texts(svg, 'x-label'), ['learning rate']);
  assert.match(svg, /class="vline"/);
  assert.match(svg, />suggested 0.003</);
  assert.match(svg, />1e-4</, 'a power-of-ten tick on the log axis');
});

test('plotLrFind with the smoothed loss draws both, raw and smoothed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-plot-'));
  const lrs = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1];
  await plotLrFind({ lrs, losses: [2.3, 2.2, 1.5, 1.2, 9], smoothed: [2.3, 2.25, 1.9, 1.6, 3], suggestedLr: 2e-3 }, join(dir, 'lr.svg'));
  const svg = readFileSync(join(dir, 'lr.svg'), 'utf8');
  parses(svg);
  assert.deepEqual([...svg.matchAll(/data-series="([^"]*)"/g)].map((m) => m[1]), ['loss', 'smoothed loss']);
  assert.match(svg, />suggested 0.002</, 'lrFind\'s suggestedLr is marked');
  await assert.rejects(plotLrFind({ lrs, losses: lrs, smoothed: [1], suggestion: 1e-3 }, join(dir, 'x.svg')), /as many smoothed losses/);
});

// What lrFind returns passes straight into plotLrFind (checked by the type checker).
export const lrFindPlots: (r: LrFindResult, file: string) => Promise<void> = (r, file) => plotLrFind(r, file);

test('yMax fixes the top of the axis and the lines are clipped to the plot area', () => {
  const svg = lineChartSvg([{ name: 's', x: [1, 2, 3], y: [1, 2, 1000] }], { xLabel: 'x', yLabel: 'y', yMax: 3 });
  parses(svg);
  const labels = [...svg.matchAll(/text-anchor="end"[^>]*>([^<]*)</g)].map((m) => Number(m[1]));
  assert.ok(Math.max(...labels) <= 3.2, `ticks stop near yMax, got ${labels.join(', ')}`);
  assert.match(svg, /<g class="series" clip-path="url\(#plot-area\)"/);
});

function kiln(args: string[]): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  return new Promise((ok) => child.on('exit', (code) => ok({ code, out })));
}

test('kiln plot RUN --out FILE writes the image; a folder without metrics fails with one sentence', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-plot-cli-'));
  mkdirSync(join(dir, 'run'));
  writeFileSync(join(dir, 'run', 'metrics.jsonl'), [1, 2, 3].map((step) => JSON.stringify({ step, loss: 3 - step / 2 })).join('\n') + '\n');
  const [good, bad] = await Promise.all([
    kiln(['plot', join(dir, 'run'), '--out', join(dir, 'loss.svg')]),
    kiln(['plot', join(dir, 'nothing'), '--out', join(dir, 'x.svg')]),
  ]);
  assert.equal(good.code, 0, good.out);
  assert.match(good.out, /wrote .*loss\.svg/);
  parses(readFileSync(join(dir, 'loss.svg'), 'utf8'));
  assert.equal(bad.code, 1);
  assert.match(bad.out, /^kiln: plot: no metrics\.jsonl at .*nothing/m);
});

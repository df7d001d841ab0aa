// Kiln dashboard page: lists the runs, opens one server-sent event stream per chosen run, and draws the metrics with
// uPlot. Every string that comes from a run goes into the page through textContent, never as markup.
/* global uPlot */
'use strict';

const MAX_OVERLAY = 5; // browsers keep about six connections per host; one is the run list stream
const COLORS = ['#c2410c', '#1d4ed8', '#15803d', '#7e22ce', '#b45309', '#0e7490'];
const CHARTS = [
  { id: 'chart-loss', label: 'loss', fields: [['loss', 'train'], ['val_loss', 'val']], log: true },
  { id: 'chart-lr', label: 'learning rate', fields: [['lr', '']] },
  { id: 'chart-grad', label: 'gradient norm', fields: [['grad_norm', '']] },
  { id: 'chart-speed', label: 'per second', fields: [['tokens_per_s', 'tokens/s'], ['samples_per_s', 'samples/s']] },
];
const FIELDS = ['loss', 'val_loss', 'lr', 'grad_norm', 'tokens_per_s', 'samples_per_s'];

const state = {
  runs: [], // from the server's run list, newest first
  selected: [], // run names, in the order ticked
  data: new Map(), // name -> { step: [], [field]: [], latest, samples, config, source }
  charts: new Map(), // chart id -> uPlot
  logY: false,
  dirty: false,
};

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  if (attrs) for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fmt(v, kind) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return v === undefined || v === null ? '–' : String(v);
  if (kind === 'lr') return v.toExponential(2);
  if (kind === 'int') return String(Math.round(v));
  if (kind === 'time') {
    const s = Math.round(v);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
  }
  if (Math.abs(v) >= 1000) return String(Math.round(v));
  return Number(v.toPrecision(4)).toString();
}

/** Tick labels with the fewest significant digits (3 at least) that keep neighbours apart: 0.0015, not 0.002. */
function tickLabels(ticks) {
  for (let p = 3; ; p++) {
    const labels = ticks.map((v) => (v == null ? '' : v === 0 ? '0' : String(Number(v.toPrecision(p)))));
    const shown = labels.filter(Boolean);
    if (p >= 10 || new Set(shown).size === shown.length) return labels;
  }
}

function colorOf(name) {
  const i = state.selected.indexOf(name);
  return COLORS[(i < 0 ? 0 : i) % COLORS.length];
}

// ---- selection and the address bar -------------------------------------------------------------------------

function readHash() {
  const m = /(?:^#|&)runs=([^&]*)/.exec(location.hash);
  if (!m) return null;
  return m[1].split(',').filter(Boolean).map((s) => { try { return decodeURIComponent(s); } catch { return ''; } }).filter(Boolean);
}

function writeHash() {
  const h = '#runs=' + state.selected.map(encodeURIComponent).join(',');
  if (location.hash !== h) history.replaceState(null, '', h);
}

function select(names) {
  names = names.slice(0, MAX_OVERLAY);
  for (const name of [...state.data.keys()]) {
    if (!names.includes(name)) { state.data.get(name).source?.close(); state.data.delete(name); }
  }
  state.selected = names;
  for (const name of names) if (!state.data.has(name)) openRun(name);
  writeHash();
  renderRuns();
  rebuildCharts();
  renderPanels();
}

// ---- streams -----------------------------------------------------------------------------------------------

function emptyRun() {
  const d = { step: [], latest: null, samples: null, samplesStep: null, config: null, configError: null, source: null };
  for (const f of FIELDS) d[f] = [];
  return d;
}

function openRun(name) {
  const d = emptyRun();
  state.data.set(name, d);
  const src = new EventSource(`/api/runs/${encodeURIComponent(name)}/events`);
  d.source = src;
  src.addEventListener('metrics', (ev) => { addRecords(d, JSON.parse(ev.data)); schedule(); });
  src.addEventListener('reset', () => { Object.assign(d, emptyRun(), { source: src, config: d.config }); schedule(); });
  src.addEventListener('config', (ev) => {
    const msg = JSON.parse(ev.data);
    d.config = msg.config ?? null;
    d.configError = msg.error ?? null;
    schedule();
  });
  src.addEventListener('hello', () => { Object.assign(d, emptyRun(), { source: src, config: d.config }); setStatus('live', 'live'); });
  src.onerror = () => setStatus('reconnecting…', 'down');
}

function addRecords(d, records) {
  for (const r of records) {
    if (!r || typeof r.step !== 'number' || !Number.isFinite(r.step)) continue;
    let i = d.step.length - 1;
    if (i >= 0 && r.step < d.step[i]) {
      // The run went back (resumed from an earlier checkpoint): forget what came after that step.
      let k = d.step.length;
      while (k > 0 && d.step[k - 1] >= r.step) k--;
      d.step.length = k;
      for (const f of FIELDS) d[f].length = k;
      i = k - 1;
    }
    if (i < 0 || r.step !== d.step[i]) {
      d.step.push(r.step);
      for (const f of FIELDS) d[f].push(null);
      i = d.step.length - 1;
    }
    // A training line and an evaluation line for the same step merge into one point.
    for (const f of FIELDS) if (typeof r[f] === 'number' && Number.isFinite(r[f])) d[f][i] = r[f];
    d.latest = Object.assign({}, d.latest, r);
    if (Array.isArray(r.samples)) { d.samples = r.samples; d.samplesStep = r.step; }
  }
}

function openRunList() {
  const src = new EventSource('/api/runs/events');
  src.addEventListener('runs', (ev) => {
    state.runs = JSON.parse(ev.data);
    if (!state.selected.length) {
      const fromHash = readHash();
      const names = state.runs.map((r) => r.name);
      const want = fromHash ? fromHash.filter((n) => names.includes(n)) : [];
      if (want.length) select(want);
      else if (names.length && !fromHash?.length) select([names[0]]);
    }
    renderRuns();
    setStatus('live', 'live');
  });
  src.onerror = () => setStatus('reconnecting…', 'down');
}

function setStatus(text, cls) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.className = 'status ' + cls;
}

// ---- drawing -----------------------------------------------------------------------------------------------

function schedule() {
  if (state.dirty) return;
  state.dirty = true;
  setTimeout(() => requestAnimationFrame(() => { state.dirty = false; updateCharts(); renderPanels(); renderRuns(); }), 150);
}

/** The chart's series: one per (run, field) that has at least one value. */
function seriesOf(chart) {
  const out = [];
  for (const name of state.selected) {
    const d = state.data.get(name);
    if (!d) continue;
    for (const [field, tag] of chart.fields) {
      if (d[field].some((v) => v !== null)) out.push({ name, field, tag });
    }
  }
  return out;
}

/** Columns aligned on the union of the runs' steps; a run without a value at a step gets null there. */
function alignedData(series) {
  if (series.length && series.every((s) => s.name === series[0].name)) {
    // One run: its steps are already in order; keep those where any of the series has a value.
    const d = state.data.get(series[0].name);
    const keep = [];
    for (let i = 0; i < d.step.length; i++) if (series.some((s) => d[s.field][i] !== null)) keep.push(i);
    return [keep.map((i) => d.step[i]), ...series.map((s) => keep.map((i) => d[s.field][i]))];
  }
  const steps = new Set();
  for (const s of series) {
    const d = state.data.get(s.name);
    d[s.field].forEach((v, i) => { if (v !== null) steps.add(d.step[i]); });
  }
  const xs = [...steps].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const cols = series.map((s) => {
    const d = state.data.get(s.name);
    const col = new Array(xs.length).fill(null);
    d[s.field].forEach((v, i) => { if (v !== null) col[at.get(d.step[i])] = v; });
    return col;
  });
  return [xs, ...cols];
}

function chartWidth(box) { return Math.max(300, box.clientWidth - 4); }

function makeChart(chart, series, data) {
  const box = document.getElementById(chart.id);
  state.charts.get(chart.id)?.destroy();
  box.replaceChildren();
  const multi = state.selected.length > 1;
  const opts = {
    width: chartWidth(box),
    height: 240,
    scales: { x: { time: false }, y: chart.log && state.logY ? { distr: 3 } : {} },
    axes: [{ label: 'step' }, { label: chart.label, size: 60, values: (u, ticks) => tickLabels(ticks) }],
    legend: { live: true },
    series: [{ label: 'step' }].concat(series.map((s) => ({
      label: [multi ? s.name : '', s.tag].filter(Boolean).join(' ') || chart.label,
      stroke: colorOf(s.name),
      width: 1.5,
      spanGaps: true,
      ...(s.field === 'val_loss' ? { dash: [6, 4], points: { show: true, size: 5 } } : {}),
      value: (u, v) => fmt(v, s.field === 'lr' ? 'lr' : ''),
    }))),
  };
  const plot = new uPlot(opts, data, box);
  plot._key = series.map((s) => s.name + '\u0000' + s.field).join('|') + (state.logY ? 'log' : '');
  state.charts.set(chart.id, plot);
}

function rebuildCharts() {
  for (const c of CHARTS) { state.charts.get(c.id)?.destroy(); state.charts.delete(c.id); }
  updateCharts();
}

function updateCharts() {
  for (const chart of CHARTS) {
    const series = seriesOf(chart);
    const data = alignedData(series);
    const key = series.map((s) => s.name + '\u0000' + s.field).join('|') + (state.logY ? 'log' : '');
    const plot = state.charts.get(chart.id);
    if (!plot || plot._key !== key) makeChart(chart, series, data);
    else plot.setData(data);
    const box = document.getElementById(chart.id);
    box.dataset.points = String(data[0].length);
    if (chart.id === 'chart-speed') {
      const f = series.map((s) => s.tag);
      document.getElementById('throughput-title').textContent =
        f.length && f.every((t) => t === 'tokens/s') ? 'Tokens per second' : f.length && f.every((t) => t === 'samples/s') ? 'Samples per second' : 'Throughput';
    }
  }
}

const runItems = new Map(); // name -> { li, box, swatch, meta }: updated in place, so a click is never lost to a redraw

function runItem(name) {
  let item = runItems.get(name);
  if (item) return item;
  const li = el('li', { 'data-run': name });
  const label = el('label');
  const box = el('input', { type: 'checkbox' });
  box.addEventListener('change', () => {
    select(box.checked ? state.selected.concat(name) : state.selected.filter((n) => n !== name));
  });
  const text = el('span');
  const title = el('span', { class: 'run-name' });
  const swatch = el('span', { class: 'swatch' });
  title.append(swatch, document.createTextNode(name));
  const meta = el('span', { class: 'run-meta' });
  text.append(title, meta);
  label.append(box, text);
  li.append(label);
  item = { li, box, swatch, meta };
  runItems.set(name, item);
  return item;
}

function renderRuns() {
  const ul = document.getElementById('runs');
  document.getElementById('no-runs').hidden = state.runs.length > 0;
  const now = Date.now();
  const names = new Set(state.runs.map((r) => r.name));
  for (const [name, item] of runItems) if (!names.has(name)) { item.li.remove(); runItems.delete(name); }
  state.runs.forEach((run, i) => {
    const item = runItem(run.name);
    const on = state.selected.includes(run.name);
    if (item.box.checked !== on) item.box.checked = on;
    item.swatch.hidden = !on;
    if (on) item.swatch.style.background = colorOf(run.name);
    const latest = state.data.get(run.name)?.latest ?? run.latest;
    const text = latest ? `step ${fmt(latest.step, 'int')} · loss ${fmt(latest.loss)}` : 'no metrics yet';
    const live = now - run.mtimeMs < 60_000;
    if (item.meta.dataset.text !== text || item.meta.dataset.live !== String(live)) {
      item.meta.dataset.text = text;
      item.meta.dataset.live = String(live);
      item.meta.replaceChildren(document.createTextNode(text));
      if (live) item.meta.append(' ', el('span', { class: 'live-dot', title: 'written in the last minute' }, '● live'));
    }
    if (ul.children[i] !== item.li) ul.insertBefore(item.li, ul.children[i] ?? null);
  });
}

function renderPanels() {
  const tbody = document.querySelector('#latest tbody');
  tbody.replaceChildren(...state.selected.map((name) => {
    const l = state.data.get(name)?.latest ?? {};
    const tr = el('tr', { 'data-run': name });
    const speed = typeof l.tokens_per_s === 'number' ? `${fmt(l.tokens_per_s, 'int')} tok/s`
      : typeof l.samples_per_s === 'number' ? `${fmt(l.samples_per_s, 'int')} samples/s` : '–';
    const cells = [
      ['run', name], ['step', fmt(l.step, 'int')], ['epoch', fmt(l.epoch)], ['loss', fmt(l.loss)],
      ['val_loss', fmt(l.val_loss)], ['val_ppl', fmt(l.val_perplexity ?? l.val_ppl)], ['lr', fmt(l.lr, 'lr')], ['grad_norm', fmt(l.grad_norm)],
      ['throughput', speed], ['elapsed', fmt(l.elapsed_s, 'time')],
    ];
    for (const [field, text] of cells) {
      const td = el('td', { 'data-field': field }, text);
      if (field === 'run') td.style.color = colorOf(name);
      tr.append(td);
    }
    return tr;
  }));

  const samples = document.getElementById('samples');
  const blocks = state.selected.map((name) => {
    const d = state.data.get(name);
    if (!d?.samples?.length) return null;
    const div = el('div', { class: 'sample-run', 'data-run': name });
    div.append(el('h3', null, `${name} · step ${fmt(d.samplesStep, 'int')}`));
    for (const s of d.samples) div.append(el('pre', { class: 'sample' }, typeof s === 'string' ? s : JSON.stringify(s)));
    return div;
  }).filter(Boolean);
  samples.replaceChildren(...(blocks.length ? blocks : [el('p', { class: 'hint' }, 'No samples logged yet.')]));

  const config = document.getElementById('config');
  config.replaceChildren(...state.selected.map((name) => {
    const d = state.data.get(name);
    const det = el('details', { 'data-run': name });
    if (state.selected.length === 1) det.open = true;
    det.append(el('summary', null, name));
    if (d?.config && typeof d.config === 'object') {
      const table = el('table');
      for (const [k, v] of flatten(d.config, '')) {
        const tr = el('tr');
        tr.append(el('td', { class: 'key' }, k), el('td', { class: 'value' }, v));
        table.append(tr);
      }
      const scroll = el('div', { class: 'config-scroll' });
      scroll.append(table);
      det.append(scroll);
    } else {
      det.append(el('p', { class: 'hint' }, d?.configError ?? 'loading…'));
    }
    return det;
  }));
}

/** Nested config as dotted keys and printable values. */
function flatten(obj, prefix, out = []) {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, key, out);
    else out.push([key, typeof v === 'string' ? v : JSON.stringify(v)]);
  }
  return out;
}

document.getElementById('log-y').addEventListener('change', (ev) => { state.logY = ev.target.checked; updateCharts(); });
window.addEventListener('resize', () => {
  for (const [id, plot] of state.charts) plot.setSize({ width: chartWidth(document.getElementById(id)), height: 240 });
});
window.addEventListener('hashchange', () => { const h = readHash(); if (h) select(h); });
openRunList();

// The dashboard server without a browser: the metrics tail (appended bytes only, partial lines, truncation),
// path-traversal refusal on raw request paths, the Host check, escaped JSON, and the live event streams.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { appendFileSync, mkdirSync, mkdtempSync, renameSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonlTail, safeJson, startDashboard, startRunDashboard, type MetricRecord } from '../../src/dashboard/index.js';
import { parsePort } from '../../src/cli/dashboard.js';

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** A request with the path sent exactly as given (node:http does not normalise `..`), unlike fetch. */
function get(url: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  const u = new URL(url);
  return new Promise((ok, fail) => {
    const req = request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => ok({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

/** Reads server-sent events from a stream until `until` says stop. */
function events(url: string, path: string, until: (evs: { event: string; data: unknown }[]) => boolean, timeoutMs = 8000): Promise<{ event: string; data: unknown }[]> {
  const u = new URL(url);
  return new Promise((ok, fail) => {
    const got: { event: string; data: unknown }[] = [];
    let buf = '';
    const req = request({ host: u.hostname, port: u.port, path }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev && data) got.push({ event: ev, data: JSON.parse(data) as unknown });
        }
        if (until(got)) { clearTimeout(timer); req.destroy(); ok(got); }
      });
    });
    const timer = setTimeout(() => { req.destroy(); fail(new Error(`timed out; events so far: ${JSON.stringify(got).slice(0, 500)}`)); }, timeoutMs);
    req.on('error', (e) => { if (!req.destroyed) fail(e); });
    req.end();
  });
}

function tmp(): string { return mkdtempSync(join(tmpdir(), 'kiln-dash-')); }

test('the tail reads only appended bytes, waits for a partial line, and restarts when the file shrinks', async () => {
  const dir = tmp();
  const file = join(dir, 'metrics.jsonl');
  const got: MetricRecord[] = [];
  let resets = 0;
  let malformed = 0;
  const tail = new JsonlTail(file, {
    chunkBytes: 7, // tiny reads: lines and a multi-byte character split across them
    onRecords: (rs) => got.push(...rs),
    onReset: () => { resets++; },
    onMalformed: (n) => { malformed += n; },
  });
  await tail.poll(); // no file yet: nothing, no error
  writeFileSync(file, '{"step":1,"loss":2.5}\n{"step":2,"sam');
  await tail.poll();
  assert.deepEqual(got, [{ step: 1, loss: 2.5 }]);
  appendFileSync(file, 'ples":["héllo → ✓"]}\nnot json\n');
  await tail.poll();
  assert.deepEqual(got[1], { step: 2, samples: ['héllo → ✓'] });
  assert.equal(malformed, 1);
  const before = tail.position;
  await tail.poll();
  assert.equal(tail.position, before, 'no new bytes, nothing read');
  truncateSync(file, 0);
  appendFileSync(file, '{"step":1,"loss":9}\n');
  await tail.poll();
  assert.equal(resets, 1);
  assert.deepEqual(got.at(-1), { step: 1, loss: 9 });
  // Replaced by a rename, longer than before: noticed by the inode, read from the top.
  writeFileSync(join(dir, 'new.jsonl'), '{"step":1,"loss":7}\n{"step":2,"loss":6}\n');
  renameSync(join(dir, 'new.jsonl'), file);
  await tail.poll();
  assert.equal(resets, 2);
  assert.deepEqual(got.slice(-2), [{ step: 1, loss: 7 }, { step: 2, loss: 6 }]);
  tail.stop();
});

test('safeJson keeps JSON but writes <, >, & and line separators as escapes', () => {
  const s = safeJson({ a: '</script><img src=x onerror=alert(1)> & \u2028' });
  assert.ok(!/[<>&\u2028]/.test(s));
  assert.deepEqual(JSON.parse(s), { a: '</script><img src=x onerror=alert(1)> & \u2028' });
});

test('the server refuses path traversal, foreign Host headers and writes; serves the page with a strict CSP', async (t) => {
  const root = tmp();
  const runs = join(root, 'runs');
  mkdirSync(join(runs, 'a'), { recursive: true });
  writeFileSync(join(runs, 'a', 'metrics.jsonl'), '{"step":1,"loss":1}\n');
  writeFileSync(join(runs, 'a', 'config.json'), '{"name":"<b>x</b>"}');
  writeFileSync(join(root, 'secret.txt'), 'top secret');
  symlinkSync(join(root, 'secret.txt'), join(runs, 'a', 'link.txt'));
  const dash = await startDashboard({ runsDir: runs, port: 0 });
  t.after(() => dash.close());
  assert.match(dash.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);

  const page = await get(dash.url, '/');
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  assert.match(page.body, /<script src="\/app\.js"/);
  assert.equal((await get(dash.url, '/vendor/uPlot.iife.min.js')).status, 200);
  assert.equal((await get(dash.url, '/style.css')).status, 200);
  assert.equal((await get(dash.url, '/runs/a/metrics.jsonl')).body, '{"step":1,"loss":1}\n');

  for (const path of [
    '/../secret.txt', '/runs/../secret.txt', '/runs/a/../../secret.txt', '/runs/%2e%2e/secret.txt',
    '/runs/a/..%2f..%2fsecret.txt', '/runs/a%2f..%2f..%2fsecret.txt', '/vendor/..%2f..%2fpackage.json',
    '/..%5c..%5csecret.txt', '/api/runs/../config', '/api/runs/%2e%2e/events', '/runs/a/%00',
    '/runs/a/link.txt', // a symbolic link out of the runs folder
  ]) {
    const r = await get(dash.url, path);
    assert.equal(r.status, 403, `${path} answered ${r.status}`);
    assert.ok(!r.body.includes('top secret'), path);
  }
  assert.equal((await get(dash.url, '/package.json')).status, 404);
  assert.equal((await get(dash.url, '/runs/a/nothing.json')).status, 404);
  assert.equal((await get(dash.url, '/api/runs/nope/events')).status, 404);
  assert.equal((await get(dash.url, '/runs/a/%zz')).status, 400);
  assert.equal((await get(dash.url, '/', { Host: 'evil.example:80' })).status, 403);
  assert.equal((await get(dash.url, '/', { Host: 'localhost.evil.example' })).status, 403);
  assert.equal((await get(dash.url, '/', { Host: 'localhost:8080' })).status, 200, 'a tunnel from another local port');
  assert.equal((await get(dash.url, '/api/runs', {}, 'POST')).status, 405);

  const list = await get(dash.url, '/api/runs');
  assert.equal(list.status, 200);
  const cfg = await get(dash.url, '/api/runs/a/config');
  assert.ok(cfg.body.includes('\\u003cb\\u003ex\\u003c/b\\u003e'), 'strings from a run leave the server escaped');
  assert.deepEqual(JSON.parse(cfg.body), { config: { name: '<b>x</b>' } });
  assert.deepEqual((JSON.parse(list.body) as { name: string; latest: unknown }[]).map((r) => [r.name, r.latest]), [['a', { step: 1, loss: 1 }]]);
});

test('event streams send the backlog, then appended lines, and list new runs as they appear', async (t) => {
  const runs = tmp();
  mkdirSync(join(runs, 'a'));
  const metrics = join(runs, 'a', 'metrics.jsonl');
  writeFileSync(metrics, '{"step":1,"loss":3}\n{"step":2,"loss":2.5}\n');
  const dash = await startDashboard({ runsDir: runs, port: 0, tailIntervalMs: 50, listIntervalMs: 100 });
  t.after(() => dash.close());

  const steps = (evs: { event: string; data: unknown }[]): number[] =>
    evs.filter((e) => e.event === 'metrics').flatMap((e) => (e.data as MetricRecord[]).map((r) => r.step as number));
  let appended = false;
  const evs = await events(dash.url, '/api/runs/a/events', (got) => {
    if (!appended && steps(got).length === 2) {
      appended = true;
      appendFileSync(metrics, '{"step":3,"lo');
      setTimeout(() => appendFileSync(metrics, 'ss":2.1}\n'), 150);
    }
    return steps(got).length >= 3;
  });
  assert.equal(evs[0]!.event, 'hello');
  assert.ok(evs.some((e) => e.event === 'config'), 'config event (an error note when there is no config.json)');
  assert.deepEqual(steps(evs), [1, 2, 3]);

  let created = false;
  const lists = await events(dash.url, '/api/runs/events', (got) => {
    if (!created && got.length === 1) {
      created = true;
      mkdirSync(join(runs, 'b'));
      writeFileSync(join(runs, 'b', 'config.json'), '{}');
    }
    return got.some((e) => (e.data as { name: string }[]).length === 2);
  });
  assert.deepEqual((lists[0]!.data as { name: string }[]).map((r) => r.name), ['a']);
  assert.deepEqual((lists.at(-1)!.data as { name: string }[]).map((r) => r.name).sort(), ['a', 'b']);
});

test('bad options: an out-of-range port and a port in use fail with one sentence', async (t) => {
  await assert.rejects(startDashboard({ runsDir: tmp(), port: 70000 }), /port must be an integer from 0 to 65535/);
  const first = await startDashboard({ runsDir: tmp(), port: 0 });
  t.after(() => first.close());
  await assert.rejects(startDashboard({ runsDir: tmp(), port: first.port }), new RegExp(`port ${first.port} on 127.0.0.1 is already in use`));
});

test('startRunDashboard serves the run\'s parent folder and opens with the run chosen', async (t) => {
  const runs = tmp();
  mkdirSync(join(runs, 'my run'));
  writeFileSync(join(runs, 'my run', 'config.json'), '{}');
  mkdirSync(join(runs, 'other'));
  writeFileSync(join(runs, 'other', 'metrics.jsonl'), '');
  const dash = await startRunDashboard(join(runs, 'my run'), { port: 0 });
  t.after(() => dash.close());
  assert.match(dash.url, /^http:\/\/127\.0\.0\.1:\d+\/#runs=my%20run$/);
  const list = JSON.parse((await get(dash.url, '/api/runs')).body) as { name: string }[];
  assert.deepEqual(list.map((r) => r.name).sort(), ['my run', 'other']);
});

test('--port takes an integer from 0 to 65535', () => {
  assert.equal(parsePort('0'), 0);
  assert.equal(parsePort('6006'), 6006);
  for (const bad of ['abc', '-1', '70000', '1.5', '']) assert.throws(() => parsePort(bad), /--port must be an integer from 0 to 65535/);
});

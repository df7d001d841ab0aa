// The dashboard resolves symlinks before it serves a run's config or event stream (issue 17): a link out of the
// runs folder (a run folder, its config.json or its metrics.jsonl) is refused with 403, the run list leaks nothing
// through one, and a link that stays inside the runs folder still works.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDashboard } from '../../src/dashboard/index.js';

function get(url: string, path: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((ok, fail) => {
    const req = request({ host: u.hostname, port: u.port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
        if (res.headers['content-type']?.startsWith('text/event-stream') && body.includes('event: config')) { req.destroy(); ok({ status: res.statusCode ?? 0, body }); }
      });
      res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', (e) => { if (!req.destroyed) fail(e); });
    req.end();
  });
}

test('config and event stream refuse symlinks out of the runs folder; links inside it work', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'kiln-dash-link-'));
  const runs = join(root, 'runs');
  const outside = join(root, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'config.json'), '{"secret": "top secret"}');
  writeFileSync(join(outside, 'metrics.jsonl'), '{"step": 1, "loss": 1, "secret": "top secret"}\n');
  for (const r of ['a', 'b', 'd', 'ok']) mkdirSync(join(runs, r), { recursive: true });
  symlinkSync(join(outside, 'config.json'), join(runs, 'a', 'config.json'));
  writeFileSync(join(runs, 'a', 'metrics.jsonl'), '{"step": 1, "loss": 2}\n');
  symlinkSync(join(outside, 'metrics.jsonl'), join(runs, 'b', 'metrics.jsonl'));
  symlinkSync(outside, join(runs, 'c'));
  writeFileSync(join(runs, 'd', 'metrics.jsonl'), '{"step": 1, "loss": 2}\n');
  symlinkSync(join(outside, 'config.json'), join(runs, 'd', 'config.json'));
  writeFileSync(join(runs, 'ok', 'real.json'), '{"name": "inside"}');
  symlinkSync(join(runs, 'ok', 'real.json'), join(runs, 'ok', 'config.json'));
  writeFileSync(join(runs, 'ok', 'metrics.jsonl'), '{"step": 1, "loss": 2}\n');

  const dash = await startDashboard({ runsDir: runs, port: 0 });
  t.after(() => dash.close());
  for (const path of ['/api/runs/a/config', '/api/runs/b/events', '/api/runs/c/config', '/api/runs/c/events']) {
    const r = await get(dash.url, path);
    assert.equal(r.status, 403, `${path} answered ${r.status}: ${r.body.slice(0, 200)}`);
    assert.ok(!r.body.includes('top secret'), path);
  }
  const stream = await get(dash.url, '/api/runs/d/events');
  assert.equal(stream.status, 200);
  assert.match(stream.body, /event: config\ndata: \{"error":".*leads outside/);
  assert.ok(!stream.body.includes('top secret'));
  const list = await get(dash.url, '/api/runs');
  assert.equal(list.status, 200);
  assert.ok(!list.body.includes('top secret'), list.body);
  const ok = await get(dash.url, '/api/runs/ok/config');
  assert.equal(ok.status, 200);
  assert.deepEqual(JSON.parse(ok.body), { config: { name: 'inside' } });
});

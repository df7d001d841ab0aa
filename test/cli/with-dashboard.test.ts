import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withDashboard } from '../../src/cli/with-dashboard.js';

test('--dashboard serves the run while it trains and closes afterwards', async () => {
  const runDir = join(mkdtempSync(join(tmpdir(), 'kiln-dash-')), 'run-1');
  const lines: string[] = [];
  let url = '';
  const result = await withDashboard({ dashboard: true, dashboardPort: '0' }, runDir, async () => {
    url = lines[0].match(/http:\/\/[^ ]+/)![0];
    const res = await fetch(url.replace(/#.*/, ''));
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<html/i);
    return 42;
  }, (l) => lines.push(l));
  assert.equal(result, 42);
  assert.match(url, /#runs=run-1$/);
  await assert.rejects(fetch(url.replace(/#.*/, '')), 'the server is closed after the run');
});

test('without --dashboard nothing is served; a bad port is refused by name', async () => {
  assert.equal(await withDashboard({}, '/nonexistent/run', async () => 7), 7);
  await assert.rejects(withDashboard({ dashboard: true, dashboardPort: 'abc' }, '/tmp/x', async () => 0), /--dashboard-port must be an integer/);
});

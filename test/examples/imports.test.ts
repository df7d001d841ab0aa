// Every example imports Kiln as a user would, through the package name 'kiln' (package.json exports), never from
// the source tree, so the examples only use the public API.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';

test("every example imports 'kiln' and nothing from src/", () => {
  const dir = new URL('../../examples/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length > 0, 'no examples found');
  for (const f of files) {
    const text = readFileSync(new URL(f, dir), 'utf8');
    const specs = [...text.matchAll(/^\s*import\s[^;]*?from\s+'([^']+)'/gm)].map((m) => m[1]!);
    assert.ok(specs.includes('kiln'), `${f} does not import 'kiln'`);
    for (const s of specs) assert.ok(!/(^|\/)src(\/|$)/.test(s), `${f} imports '${s}' from the source tree; import 'kiln' instead`);
  }
});

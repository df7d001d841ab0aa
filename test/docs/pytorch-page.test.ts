// Runs every TypeScript snippet of docs/pytorch.md ("Kiln for PyTorch users"), so the page cannot go stale. Each
// ```ts block is a whole module importing 'kiln' as a user would (package.json exports, so it runs against dist/,
// which `npm test` builds first); it is written under test-output/ inside the package, so 'kiln' resolves to this
// package, and imported. A snippet checks its own results and throws when they are wrong.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const page = readFileSync(new URL('../../docs/pytorch.md', import.meta.url), 'utf8');
const snippets = [...page.matchAll(/^## (.*)$|^```ts\n([\s\S]*?)^```$/gm)];
const dir = join('test-output', 'pytorch-page');
mkdirSync(dir, { recursive: true });

test('the page has a Kiln snippet for at least 20 idioms', () => {
  const count = snippets.filter((m) => m[2] !== undefined).length;
  assert.ok(count >= 20, `docs/pytorch.md has ${count} ts snippets`);
});

let heading = '(top)';
let n = 0;
for (const m of snippets) {
  if (m[1] !== undefined) { heading = m[1]; continue; }
  const code = m[2]!;
  const index = ++n;
  test(`docs/pytorch.md snippet ${index} runs (${heading})`, async () => {
    assert.match(code, /^import \* as kiln from 'kiln';$/m, "a snippet imports 'kiln' as a user would");
    const file = join(dir, `snippet-${index}.ts`);
    writeFileSync(file, code);
    const log = console.log;
    console.log = () => {}; // snippets may print; keep the test output clean
    try {
      await import(pathToFileURL(file).href);
    } finally {
      console.log = log;
    }
  });
}

// Runs every TypeScript snippet of docs/pytorch.md ("Kiln for PyTorch users"), so the page cannot go stale. Each
// ```ts block is a whole module importing 'kiln' as a user would (package.json exports, so it runs against dist/,
// which `npm test` builds first); it is written under test-output/ inside the package, so 'kiln' resolves to this
// package, and imported. A snippet checks its own results and throws when they are wrong. All snippets are also
// type-checked together as a user's strict project would (strict, noUncheckedIndexedAccess).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import ts from 'typescript';

const page = readFileSync(new URL('../../docs/pytorch.md', import.meta.url), 'utf8');
const snippets = [...page.matchAll(/^## (.*)$|^```ts\n([\s\S]*?)^```$/gm)];
const dir = join('test-output', 'pytorch-page');
mkdirSync(dir, { recursive: true });

test('the page has a Kiln snippet for at least 20 idioms', () => {
  const count = snippets.filter((m) => m[2] !== undefined).length;
  assert.ok(count >= 20, `docs/pytorch.md has ${count} ts snippets`);
});

const files: { file: string; code: string; heading: string }[] = [];
let heading = '(top)';
for (const m of snippets) {
  if (m[1] !== undefined) { heading = m[1]; continue; }
  const file = join(dir, `snippet-${files.length + 1}.ts`);
  writeFileSync(file, m[2]!);
  files.push({ file, code: m[2]!, heading });
}

test('every snippet type-checks under strict options', () => {
  const program = ts.createProgram(files.map((f) => f.file), {
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true, noUncheckedIndexedAccess: true, skipLibCheck: true, noEmit: true, types: ['node'],
  });
  const problems = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
    return where + ts.flattenDiagnosticMessageText(d.messageText, '\n');
  });
  assert.deepEqual(problems, []);
});

for (const [i, { file, code, heading: h }] of files.entries()) {
  test(`docs/pytorch.md snippet ${i + 1} runs (${h})`, async () => {
    assert.match(code, /^import \* as kiln from 'kiln';$/m, "a snippet imports 'kiln' as a user would");
    const log = console.log;
    console.log = () => {}; // snippets may print; keep the test output clean
    try {
      await import(pathToFileURL(file).href);
    } finally {
      console.log = log;
    }
  });
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { importOptional, isMissingPackage } from '../../src/io/optional.js';

test('a missing optional package is one sentence naming the install command', async () => {
  const name = 'kiln-test-no-such-package';
  await assert.rejects(importOptional(name, 'The widget', () => import(name)),
    { message: 'The widget needs the npm package kiln-test-no-such-package, which is not installed; install it with: npm install kiln-test-no-such-package' });
});

test('an installed optional package loads, and its own failures pass through unchanged', async () => {
  const cp = await importOptional('commander', 'test', () => import('commander'));
  assert.equal(typeof cp.Command, 'function');
  const dir = mkdtempSync(join(tmpdir(), 'kiln-optional-'));
  try {
    // A package that is there but imports something missing is not "not installed": its error is kept.
    const file = join(dir, 'broken.mjs');
    writeFileSync(file, "import 'kiln-test-missing-inner';\n");
    await assert.rejects(importOptional('broken', 'test', () => import(pathToFileURL(file).href)),
      (err: Error) => /kiln-test-missing-inner/.test(err.message) && !/install it with/.test(err.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(isMissingPackage(new Error('boom'), 'fastify'), false);
});

// Kiln's browser entry (the `browser` export condition, src/index.browser.ts) bundles for the browser with esbuild
// with zero errors and reaches no Node built-in; so do the playground's workers, which import it as 'kiln'.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const root = resolve('.');
const entry = join(root, 'src', 'index.browser.ts');

/** Bundles `entryPoint` for the browser and returns esbuild's errors, warnings and the Node modules it reached. */
async function bundle(entryPoint: string): Promise<{ errors: string[]; warnings: string[]; nodeImports: string[]; bytes: number; code: string }> {
  const nodeImports: string[] = [];
  const nodeNames = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
  const res = await esbuild.build({
    entryPoints: [entryPoint], bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent',
    alias: { kiln: entry },
    plugins: [{
      name: 'no-node-builtins',
      setup(b) {
        b.onResolve({ filter: /.*/ }, (args) => {
          if (nodeNames.has(args.path)) { nodeImports.push(`${args.path} (from ${args.importer.replace(root, '.')})`); return { path: args.path, external: true }; }
          return undefined;
        });
      },
    }],
  }).catch((e: esbuild.BuildFailure) => ({ errors: e.errors, warnings: e.warnings, outputFiles: [] }));
  const text = (m: esbuild.Message): string => `${m.location?.file ?? '?'}:${m.location?.line ?? 0}: ${m.text}`;
  const out = res.outputFiles?.[0];
  return { errors: res.errors.map(text), warnings: res.warnings.map(text), nodeImports, bytes: out?.contents.length ?? 0, code: out?.text ?? '' };
}

test("Kiln's browser entry bundles for the browser with zero errors and no Node built-in", async () => {
  const r = await bundle(entry);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.nodeImports, []);
  assert.ok(r.bytes > 100_000, `the bundle is only ${r.bytes} bytes`);
  // The bundle runs with Node's globals hidden: a model trains a step and generates on the reference backend.
  const dir = mkdtempSync(join(tmpdir(), 'kiln-browser-bundle-'));
  try {
    const file = join(dir, 'kiln.mjs');
    writeFileSync(file, r.code);
    const script = `for (const g of ['process', 'Buffer', 'global', 'require', 'setImmediate']) globalThis[g] = undefined;
      const kiln = await import(${JSON.stringify(pathToFileURL(file).href)});
      kiln.manualSeed(0);
      const model = new kiln.models.GPT({ vocabSize: 11, context: 8, width: 16, layers: 1, heads: 2 });
      const opt = new kiln.optim.AdamW(model.parameters(), { lr: 1e-2 });
      const x = new kiln.Tensor(Int32Array.from({ length: 16 }, (_, i) => i % 11), [2, 8]);
      const before = model.loss(x, x).item();
      for (let i = 0; i < 5; i++) { opt.zeroGrad(); model.loss(x, x).backward(); opt.step(); }
      const after = model.loss(x, x).item();
      console.log(JSON.stringify({ backend: kiln.backendInfo().name, before, after }));`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    const got = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { backend: string; before: number; after: number };
    assert.equal(got.backend, 'js');
    assert.ok(got.after < got.before, `training did not lower the loss: ${got.before} -> ${got.after}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the playground's training and pool workers bundle with Kiln's browser entry", async () => {
  for (const name of ['worker.js', 'pool-worker.js']) {
    const r = await bundle(join(root, 'web', 'playground', name));
    assert.deepEqual(r.errors, [], name);
    assert.deepEqual(r.nodeImports, [], name);
  }
});

test('a Node built-in reached from the browser entry is caught', async () => {
  // The check itself must see a Node import: a file that imports node:fs through the same plugin.
  const r = await bundle(join(root, 'src', 'playground', 'server.ts'));
  assert.ok(r.nodeImports.some((m) => m.startsWith('node:http')), `expected node:http among ${JSON.stringify(r.nodeImports)}`);
});

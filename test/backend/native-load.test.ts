// Where the native addon is loaded from: the prebuilt one the package ships (prebuilds/<platform>-<arch>/, the
// node-gyp-build layout) before the one compiled at install (build/Release), and past a prebuilt that fails to load.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findAddon, loadNativeBackend, nativeSource, prebuiltCandidates } from '../../src/backend/native/index.js';

const platform = `${process.platform}-${process.arch}`;

function withRoot(fn: (root: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), 'kiln-native-load-'));
  try {
    fn(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test('prebuilt candidates: N-API files of this platform only, glibc before untagged before musl', () => withRoot((root) => {
  assert.deepEqual(prebuiltCandidates(root), []);
  const dir = join(root, 'prebuilds', platform);
  mkdirSync(dir, { recursive: true });
  mkdirSync(join(root, 'prebuilds', 'other-arch'));
  for (const f of ['node.napi.musl.node', 'node.napi.node', 'node.napi.glibc.node', 'node.abi115.node', 'README']) writeFileSync(join(dir, f), '');
  writeFileSync(join(root, 'prebuilds', 'other-arch', 'node.napi.glibc.node'), '');
  assert.deepEqual(prebuiltCandidates(root).map((p) => p.slice(dir.length + 1)), ['node.napi.glibc.node', 'node.napi.node', 'node.napi.musl.node']);
}));

test('the addon loads from the prebuilt folder first, then build/Release past a prebuilt that fails', { skip: loadNativeBackend().backend ? false : 'needs a native addon to copy' }, () => withRoot((root) => {
  const real = nativeSource()!.path;
  assert.ok(existsSync(real));
  const none = findAddon(root);
  assert.equal(none.addon, undefined);
  assert.match(none.error!, new RegExp(`no prebuilt addon for ${platform} and the addon was not built \\(.*build/Release/kiln_native\\.node is missing`));

  const dir = join(root, 'prebuilds', platform);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'node.napi.musl.node'), 'not an ELF file');
  const built = join(root, 'build', 'Release', 'kiln_native.node');
  mkdirSync(join(root, 'build', 'Release'), { recursive: true });
  copyFileSync(real, built);
  const fallback = findAddon(root);
  assert.equal(fallback.source?.kind, 'built at install');
  assert.equal(fallback.source?.path, built);
  assert.equal(typeof fallback.addon?.gemm, 'function');

  copyFileSync(real, join(dir, 'node.napi.glibc.node'));
  const pre = findAddon(root);
  assert.deepEqual(pre.source, { path: join(dir, 'node.napi.glibc.node'), kind: 'prebuilt' });

  rmSync(join(dir, 'node.napi.glibc.node'));
  rmSync(built);
  const bad = findAddon(root);
  assert.match(bad.error!, /the prebuilt .*node\.napi\.musl\.node failed to load: .*; the addon was not built/);
}));

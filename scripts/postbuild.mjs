// Runs after tsc in `npm run build`: tsc writes dist/cli/main.js as mode 644, and npx keeps a link to a
// project's bin, so a rebuilt dist/ would make `npx kiln` fail with "Permission denied". Marks the bin executable.
// Then bundles the playground's Web Workers into dist/playground/bundles/ with esbuild (a dev dependency), so that
// `kiln playground` from an installed package needs no esbuild.

import { chmodSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'dist', 'cli', 'main.js');
if (!existsSync(bin)) {
  console.error(`kiln postbuild: expected ${bin} after tsc, found it missing`);
  process.exit(1);
}
chmodSync(bin, 0o755);

const { writeWorkerBundles } = await import(join(root, 'dist', 'playground', 'server.js'));
try {
  await writeWorkerBundles();
} catch (e) {
  // Without esbuild (a build without dev dependencies) the playground bundles its workers when it starts instead.
  console.warn(`kiln postbuild: the playground's workers were not bundled (${e instanceof Error ? e.message : e})`);
}

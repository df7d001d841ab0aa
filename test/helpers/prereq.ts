// Prerequisites that some tests need from outside Node (Python modules, Chromium). Such a test skips only when the
// prerequisite is truly absent, with a reason that starts with MISSING_PREREQUISITE; scripts/test.mjs counts those
// skips as failures under CI=true (.ci/run installs every prerequisite, so a skip there means a broken setup).

import { spawnSync } from 'node:child_process';

export const MISSING_PREREQUISITE = 'missing prerequisite:';
export const PYTHON = '/usr/bin/python3';

const found = new Map<string, string | null>();

/**
 * Why `module` cannot be imported by /usr/bin/python3 because it is not installed (or Python itself is absent), or
 * null when it is there. Only a module that importlib cannot find counts as missing: a module that is installed but
 * fails to import is the test's business, so that it fails instead of skipping.
 */
export function missingPythonModule(module: string): string | null {
  if (!found.has(module)) {
    const r = spawnSync(PYTHON, ['-c', 'import importlib.util, sys\nsys.exit(3 if importlib.util.find_spec(sys.argv[1]) is None else 0)', module],
      { encoding: 'utf8' });
    const err = r.error as NodeJS.ErrnoException | undefined;
    found.set(module, err?.code === 'ENOENT' ? `${MISSING_PREREQUISITE} ${PYTHON} is not installed`
      : r.status === 3 ? `${MISSING_PREREQUISITE} ${PYTHON} has no module ${module} (apt-get install -y python3-${module})`
        : null);
  }
  return found.get(module) ?? null;
}

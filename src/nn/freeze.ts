// Freezing by name: glob-ish patterns over dotted parameter names ('transformer.wte.*', 'transformer.h.{0..3}.*')
// turn requiresGrad off, so neither backward nor the optimizer touches those parameters.

import { Module, Parameter } from './module.js';

/**
 * Compiles a name pattern to a RegExp over dotted names. `*` matches any run of characters (dots included),
 * `?` one character, `[0-3]` a character class, `{a,b}` alternatives and `{0..11}` an integer range. A pattern
 * also matches everything below the name it matches, so 'transformer.wte' matches 'transformer.wte.weight'.
 */
export function namePattern(pattern: string): RegExp {
  if (typeof pattern !== 'string' || pattern.length === 0) {
    throw new Error(`name pattern: expected a non-empty string, found ${JSON.stringify(pattern)}`);
  }
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) throw new Error(`name pattern '${pattern}': '[' at position ${i} has no closing ']'`);
      const body = pattern.slice(i + 1, end).replace(/\\/g, '\\\\').replace(/^!/, '^');
      re += `[${body}]`;
      i = end;
    } else if (c === '{') {
      const end = pattern.indexOf('}', i + 1);
      if (end < 0) throw new Error(`name pattern '${pattern}': '{' at position ${i} has no closing '}'`);
      const body = pattern.slice(i + 1, end);
      const range = /^(\d+)\.\.(\d+)$/.exec(body);
      let alts: string[];
      if (range) {
        const [lo, hi] = [Number(range[1]), Number(range[2])];
        if (hi < lo) throw new Error(`name pattern '${pattern}': the range {${body}} is empty`);
        alts = Array.from({ length: hi - lo + 1 }, (_, k) => String(lo + k));
      } else alts = body.split(',');
      re += `(?:${alts.map(escapeRegExp).join('|')})`;
      i = end;
    } else re += escapeRegExp(c);
  }
  return new RegExp(`^${re}(?:\\..*)?$`);
}

function escapeRegExp(s: string): string { return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }

/** Every parameter under every name it has (a tied parameter appears under each of its names). */
export function allParameterNames(model: Module): [string, Parameter][] {
  const out: [string, Parameter][] = [];
  for (const [prefix, m] of model.namedModules()) {
    for (const [k, v] of Object.entries(m)) {
      if (v instanceof Parameter) out.push([prefix ? `${prefix}.${k}` : k, v]);
    }
  }
  return out;
}

/** What freezeParameters did. */
export interface FreezeReport {
  /** For each pattern, the parameter names it matched. */
  matched: Record<string, string[]>;
  /** Every parameter name now frozen by this call. */
  frozen: string[];
  /** Elements still trainable / in all, after the call. */
  trainable: number;
  /** Elements in all parameters. */
  total: number;
}

/**
 * Turns requiresGrad off for every parameter whose dotted name matches one of the patterns (see
 * {@link namePattern}). A pattern that matches nothing is an error (a typo must not silently train everything),
 * checked before anything changes.
 * `freezeParameters(gpt, ['transformer.wte.*', 'transformer.h.{0..1}.*'])`
 */
export function freezeParameters(model: Module, patterns: readonly string[]): FreezeReport {
  const named = allParameterNames(model);
  const matched: Record<string, string[]> = {};
  const hit = new Set<Parameter>();
  const problems: string[] = [];
  for (const p of patterns) {
    const re = namePattern(p);
    const names = named.filter(([n]) => re.test(n));
    matched[p] = names.map(([n]) => n);
    if (names.length === 0) problems.push(`'${p}'`);
    for (const [, t] of names) hit.add(t);
  }
  if (problems.length) {
    const examples = named.slice(0, 4).map(([n]) => `'${n}'`).join(', ');
    throw new Error(`freeze: pattern ${problems.join(', ')} matches no parameter of the model ` +
      `(its ${named.length} parameter names look like ${examples}${named.length > 4 ? ', ...' : ''})`);
  }
  const frozen: string[] = [];
  const seen = new Set<Parameter>();
  for (const [n, t] of named) {
    if (hit.has(t) && !seen.has(t)) {
      seen.add(t);
      if (t.requiresGrad) frozen.push(n);
      t.requiresGrad = false;
      t.grad = null;
    }
  }
  return {
    matched, frozen,
    trainable: model.numParameters({ trainableOnly: true }),
    total: model.numParameters(),
  };
}

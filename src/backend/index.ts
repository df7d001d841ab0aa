// Chooses the backend at first use from the registered providers, in the order native, wasm, js. It imports no
// Node built-ins: the Node entry registers the native backend (backend/node.ts), and the reference one is always here.
// KILN_BACKEND=js|native|wasm forces a choice where the host has an environment; a missing addon is reported once.

import type { Backend } from './backend.js';
import { jsBackend } from './js/index.js';

export type { Backend, DType, AnyArray, FloatArray, UnaryOp, BinaryOp, ReduceOp, Conv2dShape,
  Pool2dShape } from './backend.js';
export { jsBackend };

/** What backendInfo() reports about the backend in use. */
export interface BackendInfo {
  /** The backend in use: 'native', 'wasm' or 'js'. */
  name: string;
  /** Instruction set the kernels chose ('avx512', 'avx2', 'neon', 'simd128', 'scalar'), when a compiled backend is in use. */
  isa?: string;
  /** Worker threads of the backend's pool, when a compiled backend is in use. */
  threads?: number;
  /** Why the preferred backend is not in use, when it is not. */
  reason?: string;
}

/** What loading a backend gives: the backend with its instruction set and threads, or why it is unavailable. */
export interface BackendLoad { backend?: Backend; isa?: string; threads?: number; error?: string }

/** A backend a host can offer (the Node entry offers 'native'); load() never throws and may cache its result. */
export interface BackendProvider {
  /** Its name, as KILN_BACKEND and setBackend spell it. */
  name: string;
  load(): BackendLoad;
  /** Its name in messages ('WebAssembly'); default: its name. */
  label?: string;
  /** Said of it when Kiln falls back to it (', which is a few times slower'). */
  fallbackNote?: (load: BackendLoad) => string;
  /** Added to the one warning printed when this backend was preferred but failed to load. */
  fallbackHint?: string;
}

/** How to build the native addon by hand; the fallback warning and `kiln doctor` both say it. */
export const NATIVE_BUILD_COMMAND = '`npm rebuild kiln` in your project (where npm did not run Kiln\'s install ' +
  'script: after --ignore-scripts, or with npm 11 when it is not approved, `npm install-scripts approve kiln && npm ' +
  "rebuild kiln`), or `node scripts/build-native.mjs` in a checkout of Kiln";

/** The order of preference; a backend not named here comes after these. */
const PREFERENCE = ['native', 'wasm', 'js'];
const providers = new Map<string, BackendProvider>();
let active: Backend | null = null;
let info: BackendInfo = { name: 'js' };
let warned = false;
const warmers: ((b: Backend) => void)[] = [];
const warmed = new WeakSet<Backend>();

/**
 * Registers work to run once for each backend the first time it becomes the active one. The tensor layer uses it
 * to run one small product through its op path: V8 compiles each function of that path on its first call (about
 * half a millisecond in all), and the kernels' thread pool and packing code get their first use, so a program's
 * first real product costs what its later ones do, as numpy's does after its import.
 */
export function onBackendActive(warm: (b: Backend) => void): void {
  warmers.push(warm);
  if (active) runWarmers(active);
}

/** Makes b the active backend and runs the warmers it has not had yet. */
function activate(b: Backend): Backend {
  active = b;
  runWarmers(b);
  return b;
}

function runWarmers(b: Backend): void {
  if (warmed.has(b)) return;
  warmed.add(b); // first: a warmer that calls backend() must not start another round
  for (const w of warmers) {
    try {
      w(b);
    } catch {
      // Only a head start: a backend that fails here fails again, with its own message, when the program calls it.
    }
  }
}

/**
 * Offers a backend to the chooser. The Node entry registers 'native'; a host may register others. A backend
 * already chosen stays in use (setBackend switches explicitly).
 */
export function registerBackend(provider: BackendProvider): void {
  if (!provider || typeof provider.name !== 'string' || typeof provider.load !== 'function') {
    throw new Error('registerBackend: expected { name: string, load(): BackendLoad }');
  }
  if (provider.name === 'js') throw new Error("registerBackend: 'js' is the built-in reference backend and cannot be replaced");
  providers.set(provider.name, provider);
}

/** The names of the backends this host offers, in order of preference ('js' last). */
export function availableBackends(): string[] {
  const rank = (n: string): number => (PREFERENCE.includes(n) ? PREFERENCE.indexOf(n) : PREFERENCE.length - 1.5);
  return [...providers.keys(), 'js'].sort((a, b) => rank(a) - rank(b));
}

/** An environment variable where the host has an environment (Node), undefined elsewhere (browsers). */
function envVar(name: string): string | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.[name];
}

function warnOnce(message: string): void {
  if (warned) return;
  warned = true;
  const proc = (globalThis as { process?: { emitWarning?: (m: string, type: string) => void } }).process;
  if (typeof proc?.emitWarning === 'function') proc.emitWarning(message, 'KilnWarning');
  else console.warn(message);
}

function use(name: string, load: BackendLoad): Backend {
  info = { name };
  if (load.isa !== undefined) info.isa = load.isa;
  if (load.threads !== undefined) info.threads = load.threads;
  return load.backend!;
}

function unknownBackend(wanted: string, source: string): Error {
  const known = [...new Set([...PREFERENCE, ...providers.keys()])].map((n) => `'${n}'`);
  return new Error(`${source} must be ${known.slice(0, -1).join(', ')} or ${known.at(-1)}, got '${wanted}'`);
}

function unavailable(name: string, source: string): Error {
  return new Error(`${source}: the ${name} backend is not offered in this environment (offered: ${availableBackends().join(', ')}); ` +
    (name === 'native' ? "in Node, import Kiln's node entry ('kiln'), which registers it; browsers have none" : 'register it first'));
}

function choose(): Backend {
  const wanted = (envVar('KILN_BACKEND') ?? '').trim().toLowerCase();
  if (wanted !== '' && wanted !== 'js' && !PREFERENCE.includes(wanted) && !providers.has(wanted)) {
    throw unknownBackend(wanted, 'KILN_BACKEND');
  }
  if (wanted === 'js') {
    info = { name: 'js', reason: 'KILN_BACKEND=js' };
    return jsBackend;
  }
  if (wanted !== '' && !providers.has(wanted)) throw unavailable(wanted, `KILN_BACKEND=${wanted}`);
  const order = wanted !== '' ? [wanted] : availableBackends().filter((n) => n !== 'js');
  const failed: { provider: BackendProvider; error: string }[] = [];
  const reason = (): string => failed.map((f, i) => (i === 0 && f.provider.name === 'native' ? f.error : `${f.provider.name}: ${f.error}`)).join('; ');
  const label = (p: BackendProvider): string => p.label ?? p.name;
  const unavailableText = (): string => failed.map((f, i) => (i === 0 ? `the ${label(f.provider)} backend is unavailable (${f.error})`
    : ` and so is the ${label(f.provider)} one (${f.error})`)).join('');
  const hint = (): string => failed.map((f) => f.provider.fallbackHint).find((h) => h) ?? '';
  for (const name of order) {
    const provider = providers.get(name)!;
    const load = provider.load();
    if (!load.backend) {
      failed.push({ provider, error: load.error ?? 'unavailable' });
      continue;
    }
    const b = use(name, load);
    if (wanted !== '' && name !== 'native') info.reason = `KILN_BACKEND=${wanted}`;
    else if (failed.length > 0) {
      info.reason = reason();
      warnOnce(`kiln: ${unavailableText()}; running on the ${label(provider)} backend${provider.fallbackNote?.(load) ?? ''}.` +
        `${hint() ? ` ${hint()}` : ''}`);
    }
    return b;
  }
  info = { name: 'js' };
  if (failed.length > 0) {
    info.reason = reason();
    warnOnce(`kiln: ${unavailableText()}; running on the reference TypeScript backend, which is much slower.${hint() ? ` ${hint()}` : ''}`);
  }
  return jsBackend;
}

/** The backend every tensor op runs on. */
export function backend(): Backend {
  return active ?? activate(choose());
}

/** Which backend is in use, its instruction set and thread count, or why the preferred one is not in use. */
export function backendInfo(): BackendInfo {
  backend();
  return { ...info };
}

/** Switches the backend for the rest of the process ('js', or one the host registered: 'native', 'wasm'); used by tests and benchmarks. */
export function setBackend(name: 'js' | 'native' | 'wasm'): BackendInfo {
  if (name === 'js') {
    info = { name: 'js', reason: 'chosen with setBackend' };
    activate(jsBackend);
    return backendInfo();
  }
  const provider = providers.get(name);
  if (!provider) {
    if (!PREFERENCE.includes(name)) throw unknownBackend(String(name), 'setBackend');
    throw unavailable(name, 'setBackend');
  }
  const load = provider.load();
  if (!load.backend) throw new Error(`setBackend: the ${name} backend is unavailable: ${load.error}`);
  activate(use(name, load));
  if (name !== 'native') info.reason = 'chosen with setBackend';
  return backendInfo();
}

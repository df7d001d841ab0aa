// The WebAssembly backend in a browser (or any host with fetch and no Node): compiles kiln-single.wasm, given as a
// URL or bytes, and offers it to the backend chooser, which prefers it to the reference backend. One thread: the
// shared-memory build needs cross-origin isolation and worker plumbing that this loader does not do yet.

import { backendInfo, registerBackend, setBackend, type BackendInfo, type BackendLoad } from '../index.js';
import { createWasmBackend } from './index.js';

/** Where the module comes from: its URL (fetched), its bytes, or a compiled module. */
export type WasmSource = string | URL | ArrayBuffer | Uint8Array | WebAssembly.Module;

async function compile(source: WasmSource): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return source;
  if (source instanceof ArrayBuffer || source instanceof Uint8Array) return WebAssembly.compile(source as BufferSource);
  const res = await fetch(source);
  if (!res.ok) throw new Error(`useWasmBackend: fetching ${String(source)} gave HTTP ${res.status}`);
  return WebAssembly.compile(await res.arrayBuffer());
}

/**
 * Loads kiln-single.wasm and makes it the backend (await it before the first tensor op; later ops switch to it).
 * Resolves with backendInfo(); on failure rejects with the reason, and the reference backend stays in use.
 * `await kiln.useWasmBackend(new URL('kiln-single.wasm', location.href))`
 */
export async function useWasmBackend(source: WasmSource): Promise<BackendInfo> {
  if (typeof WebAssembly !== 'object') throw new Error('useWasmBackend: this JavaScript engine has no WebAssembly');
  const module = await compile(source);
  let loaded: BackendLoad | null = null;
  registerBackend({
    name: 'wasm',
    label: 'WebAssembly',
    load: () => {
      if (loaded) return loaded;
      try {
        const wasm = createWasmBackend({ module, shared: false, threads: 1, source: String(source instanceof WebAssembly.Module ? 'module' : source) });
        const i = wasm.controls.info();
        loaded = { backend: wasm.backend, isa: i.isa, threads: i.threads };
      } catch (e) {
        loaded = { error: `the wasm module failed to load: ${e instanceof Error ? e.message : String(e)}` };
      }
      return loaded;
    },
  });
  return setBackend('wasm');
}

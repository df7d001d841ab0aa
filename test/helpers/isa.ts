// Runs a check under every instruction set and thread count the active backend offers, for tests of the kernels'
// bitwise promises (the fused decoding steps against the composed path): CI's machine may lack AVX-512, and most
// x86 users' machines do, so a path that only one instruction set takes must not go unchecked.

import * as kiln from '../../src/index.js';
import { nativeControls } from '../../src/backend/native/index.js';
import { wasmControls } from '../../src/backend/wasm/node.js';

/** The native or wasm backend's controls; undefined on the reference backend. */
export function kernelControls() {
  const name = kiln.backendInfo().name;
  return name === 'native' ? nativeControls() : name === 'wasm' ? wasmControls() : undefined;
}

/**
 * Calls fn once per instruction set this machine's backend has (avx512, avx2, neon, simd128, scalar), each on all of
 * the pool's threads and on one; once ('js', 1) on the reference backend. Restores the instruction set and the
 * thread count after, also when fn throws.
 */
export function forEachIsaAndThreads(fn: (isa: string, threads: number) => void): void {
  const controls = kernelControls();
  if (!controls) { fn('js', 1); return; }
  const { isa, threads, poolSize } = controls.info();
  try {
    for (const name of ['avx512', 'avx2', 'neon', 'simd128', 'scalar']) {
      if (!controls.setIsa(name)) continue;
      for (const t of poolSize > 1 ? [poolSize, 1] : [1]) {
        controls.setThreads(t);
        fn(name, t);
      }
    }
  } finally {
    controls.setIsa(isa);
    controls.setThreads(threads);
  }
}

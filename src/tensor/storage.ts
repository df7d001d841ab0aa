// Allocation of flat typed arrays per dtype, and dtype checks shared by the ops.

import { backend, type AnyArray, type DType, type FloatArray } from '../backend/index.js';

// Fresh memory is expensive: the first write to each new page faults, and a large zero-filled typed array costs
// far more than reusing one (16 MB: about 14 ms fresh against 1.5 ms to re-zero, measured here). The autograd
// engine hands back buffers it can prove nobody else holds (recycle): dead gradients, and the activations of a
// model's forward pass once backward is done with them (activationScope). alloc reuses them. Only whole, large
// buffers are kept; the pool is bounded, and when full it drops the sizes it has held longest.
const POOL_MIN_BYTES = 256;
const POOL_MAX_BYTES = 1024 * 1024 * 1024;
const pool = new Map<string, AnyArray[]>();
let pooledBytes = 0;

function poolKey(dtype: DType, n: number): string { return `${dtype}:${n}`; }

/**
 * Whether buf is a whole allocation: all of its ArrayBuffer, or a whole buffer the backend allocated in its own
 * memory (backend.allocate). Only whole buffers are pooled or handed on: a partial view shares memory with others.
 */
export function isWholeBuffer(buf: AnyArray): boolean {
  return (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) || backend().ownsWhole?.(buf) === true;
}

/** Offers a buffer nobody references any more for reuse by alloc. */
export function recycle(buf: AnyArray): void {
  if (buf.byteLength < POOL_MIN_BYTES || !isWholeBuffer(buf)) return;
  if (buf.byteLength > POOL_MAX_BYTES) return;
  while (pooledBytes + buf.byteLength > POOL_MAX_BYTES) evictOldest();
  const key = poolKey(dtypeOf(buf), buf.length);
  const list = pool.get(key);
  if (list) list.push(buf);
  else pool.set(key, [buf]);
  pooledBytes += buf.byteLength;
}

function evictOldest(): void {
  const [key, list] = pool.entries().next().value as [string, AnyArray[]];
  const dropped = list.shift() as AnyArray;
  pooledBytes -= dropped.byteLength;
  if (list.length === 0) pool.delete(key);
}

let epochOfWeights = 0;

/**
 * A count of in-place writes to model weights through the library (optimizer steps, loadStateDict, adamwUpdate_,
 * a data-parallel broadcast). What is derived from weights and kept (a KV cache's packed copies) is rebuilt when
 * it changes. Code that writes into a parameter's storage itself calls markWeightsChanged().
 */
export function weightsEpoch(): number { return epochOfWeights; }

/** Notes that some model weights were written in place (see weightsEpoch). */
export function markWeightsChanged(): void { epochOfWeights++; }

/**
 * Hands every pooled buffer back to the garbage collector, and the memory the backend keeps for reuse back to the
 * system (after training, to shrink the process).
 */
export function releaseCachedMemory(): void {
  pool.clear();
  pooledBytes = 0;
  backend().releaseMemory?.();
}

/** Bytes the pool holds for reuse (the backend's freed memory, which releaseCachedMemory also returns, not counted). */
export function cachedMemoryBytes(): number { return pooledBytes; }

/** Buffers allocated inside each open allocationScope, innermost last. */
const allocScopes: AnyArray[][] = [];

/**
 * Runs fn (an inference step: no graph) and hands every buffer allocated inside it back to the pool afterwards,
 * except those behind the tensors keep(result) returns: the next step reuses them while they are still in the
 * cache, instead of streaming fresh memory through it. Only code whose intermediates never escape may use this
 * (a model's forward under noGrad: GPT's decoding step does). Buffers of tensors made before fn are never touched.
 */
export function allocationScope<T>(fn: () => T, keep: (result: T) => readonly ({ storage: AnyArray } | null | undefined)[]): T {
  const made: AnyArray[] = [];
  allocScopes.push(made);
  let result: T;
  try {
    result = fn();
  } finally {
    allocScopes.pop();
  }
  // a buffer's identity: its ArrayBuffer, or itself when it lives in the backend's memory (one buffer for all)
  const key = (b: AnyArray): unknown => (backend().ownsWhole?.(b) ? b : b.buffer);
  const kept = new Set<unknown>();
  for (const t of keep(result)) if (t) kept.add(key(t.storage));
  const parent = allocScopes[allocScopes.length - 1];
  for (const buf of made) {
    if (!kept.has(key(buf))) recycle(buf);
    else if (parent) parent.push(buf); // still the parent's to release
  }
  return result;
}

/** Whether an allocationScope is open: its buffers are that scope's to hand back, so nobody else may recycle them. */
export function allocationScopeOpen(): boolean { return allocScopes.length > 0; }

function track<A extends AnyArray>(buf: A): A {
  if (allocScopes.length > 0) allocScopes[allocScopes.length - 1].push(buf);
  return buf;
}

/** A zero-filled buffer of n elements, reused from the pool when one fits. */
export function alloc(dtype: DType, n: number): AnyArray {
  const reused = takePooled(dtype, n);
  if (reused) return track(reused.fill(0));
  return track(fresh(dtype, n));
}

/**
 * A buffer of n elements whose contents are unspecified (stale values from the pool): only for a kernel
 * that writes every element before anything reads it, which saves a pass over memory.
 */
export function allocUninit(dtype: DType, n: number): AnyArray {
  return track(takePooled(dtype, n) ?? freshUninit(dtype, n));
}

/**
 * allocUninit for a buffer that outlives the allocationScope open now (a cache made during a step, kept for the
 * next ones): the scope does not hand it back when it ends.
 */
export function allocLasting(dtype: DType, n: number): AnyArray {
  return takePooled(dtype, n) ?? freshUninit(dtype, n);
}

// Node's Buffer.allocUnsafeSlow takes memory without zero-filling it (a pass over memory saved); elsewhere a
// typed array is always zeroed. Small buffers are not worth it.
const unsafeAlloc = (globalThis as { Buffer?: { allocUnsafeSlow(bytes: number): Uint8Array } }).Buffer?.allocUnsafeSlow;
const UNINIT_MIN_BYTES = 16 * 1024;
/** Buffers from this size on ask for huge pages (numpy's threshold). */
const HUGE_MIN_BYTES = 4 * 1024 * 1024;
/** Elements below which a fresh buffer is not reported to the backend (V8 keeps tiny ones in its own heap). */
const FRESH_NOTE_MIN = 64;

function freshUninit(dtype: DType, n: number): AnyArray {
  const own = n >= FRESH_NOTE_MIN ? backend().allocate?.(dtype, n) : undefined;
  if (own) return own;
  const bytes = n * (dtype === 'float64' ? 8 : 4);
  if (!unsafeAlloc || bytes < UNINIT_MIN_BYTES) return fresh(dtype, n);
  backend().noteFreshMemory?.(bytes);
  return view(dtype, untouched(bytes), n);
}

/** Fresh memory nothing has touched yet; a big block asks the backend for huge pages first (see adviseFresh). */
function untouched(bytes: number): ArrayBuffer {
  const buf = unsafeAlloc!(bytes).buffer as ArrayBuffer;
  if (bytes >= HUGE_MIN_BYTES) backend().adviseFresh?.(buf);
  return buf;
}

/** A copy of `src` for the caller to own (tensor.data()); a big one comes in huge pages like fresh storage. */
export function copyOut(src: AnyArray): AnyArray {
  if (!unsafeAlloc || src.byteLength < HUGE_MIN_BYTES) return src.slice();
  const out = view(dtypeOf(src), untouched(src.byteLength), src.length);
  out.set(src);
  return out;
}

function view(dtype: DType, buf: ArrayBuffer, n: number): AnyArray {
  switch (dtype) {
    case 'float32': return new Float32Array(buf, 0, n);
    case 'float64': return new Float64Array(buf, 0, n);
    case 'int32': return new Int32Array(buf, 0, n);
    default: throw new Error(`unknown dtype '${dtype as string}'; expected float32, float64 or int32`);
  }
}

function takePooled(dtype: DType, n: number): AnyArray | undefined {
  const list = pool.get(poolKey(dtype, n));
  const reused = list?.pop();
  if (reused) pooledBytes -= reused.byteLength;
  // An emptied size must leave the map: evictOldest takes the first entry and expects a buffer in it.
  if (list && list.length === 0) pool.delete(poolKey(dtype, n));
  return reused;
}

function fresh(dtype: DType, n: number): AnyArray {
  const own = n >= FRESH_NOTE_MIN ? backend().allocate?.(dtype, n) : undefined;
  if (own) return own.fill(0);
  const bytes = n * (dtype === 'float64' ? 8 : 4);
  if (n >= FRESH_NOTE_MIN) backend().noteFreshMemory?.(bytes);
  // A big zeroed buffer: zeroing it ourselves after the huge-page advice faults 2 MiB at a time, where calloc's
  // pages would fault 4 KiB at a time.
  if (unsafeAlloc && bytes >= HUGE_MIN_BYTES) return view(dtype, untouched(bytes), n).fill(0);
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
    case 'int32': return new Int32Array(n);
    default: throw new Error(`unknown dtype '${dtype as string}'; expected float32, float64 or int32`);
  }
}

export function allocFloat(dtype: DType, n: number): FloatArray {
  return alloc(dtype, n) as FloatArray;
}

/** out (rows, row.length) = row repeated: a bias broadcast, by doubling copies instead of one call per row. */
export function fillRows(out: FloatArray, row: FloatArray, rows: number): void {
  const n = row.length * rows;
  if (n === 0) return;
  out.set(row, 0);
  for (let done = row.length; done < n; done *= 2) out.copyWithin(done, 0, Math.min(done, n - done));
}

/** allocUninit for float dtypes. */
export function allocFloatUninit(dtype: DType, n: number): FloatArray {
  return allocUninit(dtype, n) as FloatArray;
}

export function dtypeOf(a: AnyArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  throw new Error('expected a Float32Array, Float64Array or Int32Array');
}

export function isFloat(dtype: DType): boolean { return dtype === 'float32' || dtype === 'float64'; }

export const DTYPES: readonly DType[] = ['float32', 'float64', 'int32'];

export function checkDType(dtype: unknown, where: string): DType {
  if (dtype === 'float32' || dtype === 'float64' || dtype === 'int32') return dtype;
  throw new Error(`${where}: unknown dtype '${String(dtype)}'; expected float32, float64 or int32`);
}

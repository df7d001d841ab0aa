// The WebAssembly backend: the C kernels of native/ compiled to wasm32 with SIMD128 (scripts/build-wasm.mjs makes
// kiln.wasm and kiln-single.wasm next to this file), wrapped as a Backend. This file needs no Node built-ins: the
// host gives it the compiled module and, for threads, a way to start workers (node.ts does both for Node; a
// browser page does the same with fetch and Web Workers).
//
// Memory: the kernels work on pointers into the module's linear memory. A typed array that already lives there
// (tensor storage from `allocate`, when the memory is shared) is passed in place; any other array is copied into a
// scratch area before the call and its outputs copied back after. float32 runs in wasm; float64 and mixed dtypes
// delegate to the reference backend, as on the native backend.

import type { AnyArray, Backend, BinaryOp, Conv2dShape, DType, FloatArray, Pool2dShape, ReduceOp, UnaryOp } from '../backend.js';
import { CONV2D_FIELDS, POOL2D_FIELDS } from '../backend.js';
import { jsBackend } from '../js/index.js';

/** What a worker needs to join the pool: it instantiates `module` on `memory`, sets its stack, and runs. */
export interface WasmWorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** The worker's thread id in the pool, 1 .. threads - 1. */
  tid: number;
  /** Top of the worker's own stack in the shared memory. */
  stackTop: number;
}

/** Starts one pool worker in its own thread (worker_threads in Node, a Web Worker in a browser). */
export type WasmWorkerSpawner = (init: WasmWorkerInit) => void;

/** How to build the backend: the compiled module and, for more than one thread, shared memory and a spawner. */
export interface WasmSetup {
  /** kiln.wasm (threads, shared memory) or kiln-single.wasm (one thread), compiled. */
  module: WebAssembly.Module;
  /** Whether `module` is the shared-memory build (kiln.wasm). */
  shared: boolean;
  /** Threads for parallel kernels, the caller included (1 without a spawner or shared memory). */
  threads?: number;
  spawnWorker?: WasmWorkerSpawner;
  /**
   * Whether the calling thread may block (memory.atomic.wait): true in Node and in a Web Worker, false on a browser
   * page's main thread, where waiting traps; there the caller only spins while the workers finish (default false).
   */
  callerMayBlock?: boolean;
  /** Where the backend came from, for backendInfo() (e.g. the file it was read from). */
  source?: string;
  /**
   * Bytes of tensor storage the backend keeps in its memory at most (default 3 GiB of the 4 GiB); beyond it, and
   * where the memory is not shared, storage is ordinary typed arrays, copied in and out of each kernel call.
   */
  heapBytes?: number;
}

/** The backend's controls for tests and benchmarks, as nativeControls() gives for the addon. */
export interface WasmControls {
  info(): { isa: string; threads: number; poolSize: number };
  /** Switches the kernels' instruction set: 'simd128' or 'scalar'; false for any other name. */
  setIsa(name: string): boolean;
  /** Threads used by parallel kernels, 1 .. the pool size. */
  setThreads(n: number): void;
  /** GEMM cache blocking (0 keeps the default): MC rows of A, KC depth, NC columns of B. */
  gemmTune(mc: number, kc: number, nc: number): void;
  /** Workers that have joined the pool so far (they start asynchronously). */
  workersReady(): number;
}

/** A loaded wasm backend with its controls. */
export interface WasmBackend {
  backend: Backend;
  controls: WasmControls;
  memory: WebAssembly.Memory;
}

/** The kernels the module exports (native/kiln.h), with pointers as numbers. */
interface Exports {
  kiln_fill(out: number, n: number, value: number): void;
  kiln_copy(src: number, dst: number, n: number): void;
  kiln_unary(op: number, x: number, out: number, n: number): void;
  kiln_unary_backward(op: number, x: number, y: number, dy: number, dx: number, n: number): void;
  kiln_clamp(x: number, lo: number, hi: number, out: number, n: number): void;
  kiln_binary(op: number, a: number, aShape: number, b: number, bShape: number, out: number, outShape: number, rank: number): void;
  kiln_where(cond: number, condI32: number, condShape: number, a: number, aShape: number, b: number, bShape: number,
    out: number, outShape: number, rank: number): void;
  kiln_expand(x: number, xShape: number, out: number, outShape: number, rank: number): void;
  kiln_reduce(op: number, x: number, outer: number, dim: number, inner: number, out: number): void;
  kiln_argmax(x: number, outer: number, dim: number, inner: number, out: number): void;
  kiln_gemm(transA: number, transB: number, batch: number, M: number, N: number, K: number, alpha: number, A: number,
    strideA: number, B: number, strideB: number, beta: number, C: number, strideC: number): void;
  kiln_gemm_bf16(transA: number, transB: number, batch: number, M: number, N: number, K: number, alpha: number, A: number,
    strideA: number, B: number, strideB: number, beta: number, C: number, strideC: number): void;
  kiln_gemm_tune(mc: number, kc: number, nc: number): void;
  kiln_softmax(x: number, rows: number, cols: number, log: number, out: number): void;
  kiln_softmax_backward(y: number, dy: number, rows: number, cols: number, log: number, dx: number): void;
  kiln_layernorm(x: number, w: number, b: number, rows: number, C: number, eps: number, out: number, mean: number, rstd: number): void;
  kiln_layernorm_backward(dy: number, x: number, w: number, mean: number, rstd: number, rows: number, C: number,
    dx: number, dw: number, db: number): void;
  kiln_rmsnorm(x: number, w: number, rows: number, C: number, eps: number, out: number, rstd: number): void;
  kiln_rmsnorm_backward(dy: number, x: number, w: number, rstd: number, rows: number, C: number, dx: number, dw: number): void;
  kiln_rope(x: number, B: number, T: number, NH: number, HS: number, theta: number, starts: number, inverse: number, out: number): number;
  kiln_cross_entropy(logits: number, targets: number, N: number, V: number, ignore: number, smooth: number, losses: number,
    lse: number): number;
  kiln_cross_entropy_backward(logits: number, targets: number, lse: number, dl: number, N: number, V: number, ignore: number,
    smooth: number, dlogits: number): void;
  kiln_index_select(x: number, outer: number, dim: number, inner: number, idx: number, k: number, out: number): void;
  kiln_index_add(dout: number, outer: number, dim: number, inner: number, idx: number, k: number, dx: number): void;
  kiln_gather(x: number, outer: number, dim: number, inner: number, idx: number, k: number, out: number): void;
  kiln_scatter_add(dout: number, outer: number, dim: number, inner: number, idx: number, k: number, dx: number): void;
  kiln_permute(x: number, shape: number, perm: number, rank: number, out: number): void;
  kiln_slice_copy(src: number, outer: number, srcDim: number, inner: number, start: number, len: number, dst: number): void;
  kiln_slice_assign(src: number, outer: number, dstDim: number, inner: number, start: number, len: number, dst: number): void;
  kiln_attention(q: number, k: number, v: number, B: number, Tq: number, Tk: number, NH: number, HS: number, causal: number,
    scale: number, out: number, lse: number, ld: number): void;
  kiln_attention_backward(dout: number, q: number, k: number, v: number, out: number, lse: number, B: number, Tq: number,
    Tk: number, NH: number, HS: number, causal: number, scale: number, dq: number, dk: number, dv: number, ld: number): void;
  kiln_adamw(p: number, g: number, m: number, v: number, n: number, lr: number, b1: number, b2: number, eps: number, wd: number,
    bc1: number, bc2: number): void;
  kiln_gpt_block_decode(w: number, x: number, keys: number, values: number, rows: number, starts: number, A: number, C: number,
    NH: number, P: number, eps: number): number;
  kiln_gpt_decode(m: number, tokens: number, rows: number, starts: number, A: number, headRows: number, nOut: number,
    logits: number): number;
  kiln_llama_block_decode(w: number, x: number, keys: number, values: number, rows: number, starts: number, A: number,
    C: number, NH: number, KVH: number, hidden: number, P: number, eps: number, theta: number): number;
  kiln_sample(logits: number, V: number, invTemperature: number, topK: number, topP: number, u: number, u2: number, p: number): number;
  kiln_lstm_cell(gates: number, cPrev: number, B: number, H: number, c: number, h: number): void;
  kiln_lstm_cell_backward(gates: number, cPrev: number, c: number, dh: number, dc: number, B: number, H: number,
    dgates: number): void;
  kiln_gru_cell(gx: number, gh: number, hPrev: number, B: number, H: number, h: number): void;
  kiln_gru_cell_backward(gates: number, gh: number, hPrev: number, dh: number, B: number, H: number, dgx: number,
    dgh: number, dhPrev: number): void;
  kiln_conv2d(x: number, w: number, bias: number, shape: number, out: number): number;
  kiln_conv2d_backward(dy: number, x: number, w: number, shape: number, dx: number, dw: number, db: number): number;
  kiln_max_pool2d(x: number, shape: number, out: number, indices: number): void;
  kiln_max_pool2d_backward(dy: number, indices: number, shape: number, dx: number): void;
  kiln_avg_pool2d(x: number, shape: number, includePad: number, divisor: number, out: number): void;
  kiln_avg_pool2d_backward(dy: number, shape: number, includePad: number, divisor: number, dx: number): void;
  kiln_batchnorm_stats(x: number, N: number, C: number, HW: number, mean: number, variance: number): void;
  kiln_batchnorm(x: number, mean: number, invstd: number, w: number, b: number, N: number, C: number, HW: number,
    out: number): void;
  kiln_batchnorm_backward(dy: number, x: number, mean: number, invstd: number, w: number, N: number, C: number,
    HW: number, batchStats: number, dx: number, dw: number, db: number): void;
  kiln_isa(): number;
  kiln_set_isa(isa: number): number;
  kiln_threads(): number;
  kiln_pool_size(): number;
  kiln_pool_configure(n: number, callerMayBlock: number): void;
  kiln_workers_ready(): number;
  kiln_set_threads(n: number): void;
  kiln_wasm_alloc(bytes: number): number;
  kiln_wasm_free(ptr: number): void;
}

// Op codes: the order of the enums in native/kiln.h.
const UNARY: readonly UnaryOp[] = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'sign', 'square', 'reciprocal',
  'tanh', 'sigmoid', 'relu', 'gelu', 'gelu_tanh', 'silu', 'sin', 'cos'];
const BINARY: readonly BinaryOp[] = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'];
const REDUCE: readonly ReduceOp[] = ['sum', 'max', 'min'];
const ISA_NAMES = ['scalar', 'neon', 'avx2', 'avx512', 'simd128'];
const unaryCode = new Map(UNARY.map((op, i) => [op, i]));
const binaryCode = new Map(BINARY.map((op, i) => [op, i]));
const reduceCode = new Map(REDUCE.map((op, i) => [op, i]));
const MAX_RANK = 16;
const PAGE = 65536;
/** Pages the memory starts with (the module needs its 1 MiB stack and data; the heap grows from there). */
const INITIAL_PAGES = 256;
/** The wasm32 limit: 4 GiB. */
const MAX_PAGES = 65536;
/** Each worker's stack (the same as the caller's, see scripts/build-wasm.mjs). */
const WORKER_STACK_BYTES = 1 << 20;
const DEFAULT_HEAP_BYTES = 3 * 1024 * 1024 * 1024;
/** Smaller buffers stay ordinary typed arrays: copying them costs less than tracking them. */
const OWN_MIN_BYTES = 256;

function code(map: Map<string, number>, kind: string, op: string): number {
  const c = map.get(op);
  if (c === undefined) throw new Error(`${kind}: unknown op '${op}'`);
  return c;
}

const f32 = (a: unknown): a is Float32Array => a instanceof Float32Array;
/** null, or a Float32Array: the optional buffers of the layer kernels. */
const f32n = (a: unknown): a is Float32Array | null => a === null || a instanceof Float32Array;

const IN = 1;
const OUT = 2;
const INOUT = 3;

/**
 * The arguments of one kernel call: each array is either in the module's memory already (passed in place) or
 * copied to scratch. Arrays that are views of one foreign buffer are copied as one range, so views that overlap or
 * interleave (q, k, v of a fused projection; an output that aliases an input) keep their relation in the copy.
 */
class Frame {
  private arrays: AnyArray[] = [];
  private needs: number[] = [];
  private roles: number[] = [];
  private ptrs: number[] = [];
  private groups: { buf: ArrayBufferLike; lo: number; hi: number; role: number; members: number; at: number }[] = [];
  private scratch = 0;
  private scratchBytes = 0;

  constructor(private readonly heap: Heap) {}

  /** Registers an argument of `need` elements; returns its slot for ptr(). */
  arg(a: AnyArray, need: number, role: number, name: string, kernel: string): number {
    if (a.length < need) throw new RangeError(`kiln wasm: ${kernel}: ${name} has ${a.length} elements, needs ${need}`);
    this.arrays.push(a);
    this.needs.push(need);
    this.roles.push(role);
    return this.arrays.length - 1;
  }

  /** Places every foreign argument in scratch (copying inputs in); call before reading ptr(). */
  enter(): void {
    const heap = this.heap;
    let bytes = 0;
    for (let i = 0; i < this.arrays.length; i++) {
      const a = this.arrays[i];
      const n = this.needs[i];
      if (heap.owns(a)) { this.ptrs.push(a.byteOffset); continue; }
      this.ptrs.push(-1);
      if (n === 0) continue;
      const lo = a.byteOffset;
      const hi = lo + n * a.BYTES_PER_ELEMENT;
      const g = this.groups.find((x) => x.buf === a.buffer);
      if (g) {
        g.lo = Math.min(g.lo, lo); g.hi = Math.max(g.hi, hi); g.role |= this.roles[i]; g.members++;
      } else this.groups.push({ buf: a.buffer, lo, hi, role: this.roles[i], members: 1, at: 0 });
    }
    for (const g of this.groups) { g.at = bytes; bytes += (g.hi - g.lo + 63) & ~63; }
    if (bytes > 0) {
      this.scratch = heap.scratch(bytes);
      const mem = heap.bytes();
      for (const g of this.groups) {
        // an output alone in its buffer is written whole by the kernel: nothing to copy in
        if (g.role === OUT && g.members === 1) continue;
        mem.set(new Uint8Array(g.buf, g.lo, g.hi - g.lo), this.scratch + g.at);
      }
    }
    for (let i = 0; i < this.arrays.length; i++) {
      if (this.ptrs[i] !== -1) continue;
      const a = this.arrays[i];
      const g = this.groups.find((x) => x.buf === a.buffer);
      this.ptrs[i] = g ? this.scratch + g.at + (a.byteOffset - g.lo) : 0;
    }
  }

  ptr(slot: number): number { return this.ptrs[slot]; }

  /** Copies outputs back from scratch and clears the frame for the next call. */
  leave(): void {
    if (this.groups.length > 0) {
      const mem = this.heap.bytes();
      for (const g of this.groups) {
        if (!(g.role & OUT)) continue;
        new Uint8Array(g.buf, g.lo, g.hi - g.lo).set(mem.subarray(this.scratch + g.at, this.scratch + g.at + g.hi - g.lo));
      }
    }
    this.reset();
  }

  reset(): void {
    this.arrays.length = 0; this.needs.length = 0; this.roles.length = 0; this.ptrs.length = 0; this.groups.length = 0;
    this.scratch = 0; this.scratchBytes = 0;
  }
}

/** The module's memory as seen from JavaScript: which buffers are it, scratch space, and small argument blocks. */
class Heap {
  private buffers = new WeakSet<ArrayBufferLike>();
  private last: ArrayBufferLike | null = null;
  private u8: Uint8Array | null = null;
  private scratchPtr = 0;
  private scratchSize = 0;
  /** 64 int32 of argument space (shapes) at a fixed place. */
  readonly args: number;

  constructor(readonly memory: WebAssembly.Memory, private readonly ex: Exports, readonly shared: boolean) {
    this.args = this.alloc(MAX_RANK * 4 * 4 + 64);
    this.refresh();
  }

  /** The current buffer (it changes when memory grows; a shared memory's old buffers stay valid views of it). */
  private refresh(): ArrayBufferLike {
    const b = this.memory.buffer;
    if (b !== this.last) {
      this.last = b;
      this.u8 = new Uint8Array(b);
      if (this.shared) this.buffers.add(b);
    }
    return b;
  }

  bytes(): Uint8Array { this.refresh(); return this.u8!; }
  i32(): Int32Array { return new Int32Array(this.refresh()); }

  /** Whether `a` is a view of this memory (only a shared memory's views stay valid across growth). */
  owns(a: AnyArray): boolean { return this.shared && this.buffers.has(a.buffer); }

  alloc(bytes: number): number {
    const p = this.ex.kiln_wasm_alloc(Math.max(bytes, 1)) >>> 0;
    if (p === 0) throw new RangeError(`kiln wasm: out of memory: ${bytes} bytes more do not fit in the 4 GiB wasm memory`);
    return p;
  }

  /** A scratch area of at least `bytes`, kept and reused between calls. */
  scratch(bytes: number): number {
    if (bytes > this.scratchSize) {
      if (this.scratchPtr) this.ex.kiln_wasm_free(this.scratchPtr);
      this.scratchPtr = 0;
      const size = Math.max(bytes, Math.floor(this.scratchSize * 1.5));
      this.scratchPtr = this.alloc(size);
      this.scratchSize = size;
    }
    return this.scratchPtr;
  }

  /** Writes shapes (int32) to the argument block; returns its address. */
  putInts(values: readonly number[], offset = 0): number {
    const m = this.i32();
    const base = (this.args >> 2) + offset;
    for (let i = 0; i < values.length; i++) m[base + i] = values[i];
    return this.args + offset * 4;
  }
}

/** Builds the backend on a fresh memory; starts the workers when a spawner and shared memory are given. */
export function createWasmBackend(setup: WasmSetup): WasmBackend {
  const shared = setup.shared;
  const memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES, shared } as WebAssembly.MemoryDescriptor);
  const instance = new WebAssembly.Instance(setup.module, { env: { memory } });
  const ex = instance.exports as unknown as Exports;
  const heap = new Heap(memory, ex, shared);
  const threads = shared && setup.spawnWorker ? Math.max(1, Math.min(255, Math.floor(setup.threads ?? 1))) : 1;
  ex.kiln_pool_configure(threads, setup.callerMayBlock ? 1 : 0);
  for (let tid = 1; tid < threads; tid++) {
    const stack = heap.alloc(WORKER_STACK_BYTES);
    setup.spawnWorker!({ module: setup.module, memory, tid, stackTop: stack + WORKER_STACK_BYTES });
  }
  const frame = new Frame(heap);
  const backend = wrap(ex, heap, frame);
  if (shared && typeof FinalizationRegistry === 'function') {
    const owned = storageAllocator(ex, heap, setup.heapBytes ?? DEFAULT_HEAP_BYTES);
    backend.allocate = owned.allocate;
    backend.ownsWhole = owned.ownsWhole;
  }
  const controls: WasmControls = {
    info: () => ({ isa: ISA_NAMES[ex.kiln_isa()] ?? 'scalar', threads: ex.kiln_threads(), poolSize: ex.kiln_pool_size() }),
    setIsa: (name) => {
      const isa = ISA_NAMES.indexOf(name);
      return isa >= 0 && ex.kiln_set_isa(isa) === 0;
    },
    setThreads: (n) => ex.kiln_set_threads(Math.max(1, Math.floor(n))),
    gemmTune: (mc, kc, nc) => ex.kiln_gemm_tune(mc, kc, nc),
    workersReady: () => ex.kiln_workers_ready(),
  };
  return { backend, controls, memory };
}

/**
 * Tensor storage inside the module's memory: kernels then take it in place. Each buffer is freed (back to the
 * module's allocator, which keeps it for the next buffer of its size class) when the garbage collector finds it
 * unreachable. Finalization runs between tasks, so a long synchronous loop frees nothing until it yields: past the
 * budget, new storage is ordinary typed arrays until freed memory comes back. The tensor layer's own pool recycles
 * storage within a training step either way. A subarray of such a buffer must not outlive the buffer itself.
 */
function storageAllocator(ex: Exports, heap: Heap, budget: number): Pick<Backend, 'allocate' | 'ownsWhole'> {
  let live = 0;
  const whole = new WeakSet<AnyArray>();
  const registry = new FinalizationRegistry<[number, number]>(([ptr, bytes]) => {
    ex.kiln_wasm_free(ptr);
    live -= bytes;
  });
  return {
    allocate(dtype: DType, n: number): AnyArray | undefined {
      const size = dtype === 'float64' ? 8 : 4;
      const bytes = n * size;
      if (bytes < OWN_MIN_BYTES || live + bytes > budget) return undefined;
      const ptr = ex.kiln_wasm_alloc(bytes) >>> 0;
      if (ptr === 0) return undefined;
      const buf = heap.bytes().buffer;
      const a = dtype === 'float32' ? new Float32Array(buf, ptr, n) : dtype === 'float64' ? new Float64Array(buf, ptr, n)
        : new Int32Array(buf, ptr, n);
      live += bytes;
      registry.register(a, [ptr, bytes]);
      whole.add(a);
      return a;
    },
    ownsWhole: (buf: AnyArray) => whole.has(buf),
  };
}

function wrap(ex: Exports, heap: Heap, f: Frame): Backend {
  const js = jsBackend;
  // Shapes travel in the argument block: [shape0..., shape1..., ...], each of the output's rank.
  const putShapes = (list: readonly (readonly number[])[]): number[] | null => {
    const rank = list[list.length - 1].length;
    if (rank > MAX_RANK) return null;
    const flat: number[] = [];
    for (const s of list) {
      if (s.length !== rank) return null;
      flat.push(...s);
    }
    const out = list[list.length - 1];
    for (const s of list.slice(0, -1)) {
      for (let d = 0; d < rank; d++) if (s[d] !== out[d] && s[d] !== 1) return null;
    }
    heap.putInts(flat);
    return list.map((_, k) => heap.args + k * rank * 4);
  };
  const count = (s: readonly number[]): number => s.reduce((p, d) => p * d, 1);
  const checkIdx = (idx: Int32Array, n: number, dim: number, kernel: string): void => {
    for (let i = 0; i < n; i++) {
      const v = idx[i];
      if (v < 0 || v >= dim) throw new RangeError(`${kernel}: index ${v} at position ${i} is outside [0, ${dim})`);
    }
  };
  const strided = (rows: number, C: number, ld: number): number => (rows === 0 || C === 0 ? 0 : (rows - 1) * ld + C);
  const checkCache = (k: string, rows: Int32Array, starts: Int32Array, A: number, capacity: number, P: number): void => {
    if (rows.length < A || starts.length < A) throw new RangeError(`kiln wasm: ${k}: rows and starts need ${A} elements`);
    for (let a = 0; a < A; a++) {
      const r = rows[a];
      const s = starts[a];
      if (r < 0 || r >= capacity) throw new RangeError(`kiln wasm: ${k}: cache row ${r} is outside the cache's ${capacity} rows`);
      if (s < 0 || s + 1 > P) throw new RangeError(`kiln wasm: ${k}: ${s} cached positions and 1 new one exceed the context of ${P}`);
    }
  };
  /** gemm and gemmBf16 (float32 only): the same arguments and checks, two kernels. */
  const gemmCall = (k: string, kernel: Exports['kiln_gemm'], transA: boolean, transB: boolean, batch: number, M: number,
    N: number, K: number, alpha: number, A: Float32Array, strideA: number, B: Float32Array, strideB: number, beta: number,
    C: Float32Array, strideC: number): void => {
    if (batch <= 0 || M <= 0 || N <= 0) return;
    const b1 = batch - 1;
    const pa = f.arg(A, K > 0 ? b1 * strideA + M * K : 0, IN, 'A', k);
    const pb = f.arg(B, K > 0 ? b1 * strideB + K * N : 0, IN, 'B', k);
    // C is written whole only when every batch item covers its stride and beta is 0
    const whole = beta === 0 && (batch === 1 || strideC === M * N);
    const pc = f.arg(C, b1 * strideC + M * N, whole ? OUT : INOUT, 'C', k);
    call(() => kernel(transA ? 1 : 0, transB ? 1 : 0, batch, M, N, K, alpha, f.ptr(pa), strideA, f.ptr(pb), strideB, beta,
      f.ptr(pc), strideC));
  };
  const call = (fn: () => void): void => {
    try {
      f.enter();
      fn();
      f.leave();
    } finally {
      f.reset();
    }
  };

  return {
    name: 'wasm',
    ...layerKernels(ex, heap, f, call),
    fill(out, value) {
      if (!f32(out)) { js.fill(out, value); return; }
      const o = f.arg(out, out.length, OUT, 'out', 'fill');
      call(() => ex.kiln_fill(f.ptr(o), out.length, value));
    },
    copy(src, dst) {
      if (!(f32(src) && f32(dst))) { js.copy(src, dst); return; }
      const s = f.arg(src, src.length, IN, 'src', 'copy');
      const d = f.arg(dst, src.length, OUT, 'dst', 'copy');
      call(() => ex.kiln_copy(f.ptr(s), f.ptr(d), src.length));
    },
    unary(op, x, out) {
      if (!(f32(x) && f32(out))) { js.unary(op, x, out); return; }
      const c = code(unaryCode, 'unary', op);
      const a = f.arg(x, x.length, IN, 'x', 'unary');
      const o = f.arg(out, x.length, OUT, 'out', 'unary');
      call(() => ex.kiln_unary(c, f.ptr(a), f.ptr(o), x.length));
    },
    unaryBackward(op, x, y, dy, dx) {
      if (!(f32(x) && f32(y) && f32(dy) && f32(dx))) { js.unaryBackward(op, x, y, dy, dx); return; }
      const c = code(unaryCode, 'unaryBackward', op);
      const n = x.length;
      const a = f.arg(x, n, IN, 'x', 'unaryBackward');
      const b = f.arg(y, n, IN, 'y', 'unaryBackward');
      const g = f.arg(dy, n, IN, 'dy', 'unaryBackward');
      const o = f.arg(dx, n, OUT, 'dx', 'unaryBackward');
      call(() => ex.kiln_unary_backward(c, f.ptr(a), f.ptr(b), f.ptr(g), f.ptr(o), n));
    },
    clamp(x, lo, hi, out) {
      if (!(f32(x) && f32(out))) { js.clamp(x, lo, hi, out); return; }
      const a = f.arg(x, x.length, IN, 'x', 'clamp');
      const o = f.arg(out, x.length, OUT, 'out', 'clamp');
      call(() => ex.kiln_clamp(f.ptr(a), lo, hi, f.ptr(o), x.length));
    },
    binary(op, a, aShape, b, bShape, out, outShape) {
      if (!(f32(a) && f32(b) && f32(out))) { js.binary(op, a, aShape, b, bShape, out, outShape); return; }
      const c = code(binaryCode, 'binary', op);
      const sp = putShapes([aShape, bShape, outShape]);
      if (!sp) { js.binary(op, a, aShape, b, bShape, out, outShape); return; }
      const pa = f.arg(a, count(aShape), IN, 'a', 'binary');
      const pb = f.arg(b, count(bShape), IN, 'b', 'binary');
      const po = f.arg(out, count(outShape), OUT, 'out', 'binary');
      call(() => ex.kiln_binary(c, f.ptr(pa), sp[0], f.ptr(pb), sp[1], f.ptr(po), sp[2], outShape.length));
    },
    where(cond, condShape, a, aShape, b, bShape, out, outShape) {
      const ci32 = cond instanceof Int32Array;
      if (!((f32(cond) || ci32) && f32(a) && f32(b) && f32(out))) {
        js.where(cond, condShape, a, aShape, b, bShape, out, outShape);
        return;
      }
      const sp = putShapes([condShape, aShape, bShape, outShape]);
      if (!sp) { js.where(cond, condShape, a, aShape, b, bShape, out, outShape); return; }
      const pc = f.arg(cond, count(condShape), IN, 'cond', 'where');
      const pa = f.arg(a, count(aShape), IN, 'a', 'where');
      const pb = f.arg(b, count(bShape), IN, 'b', 'where');
      const po = f.arg(out, count(outShape), OUT, 'out', 'where');
      call(() => ex.kiln_where(f.ptr(pc), ci32 ? 1 : 0, sp[0], f.ptr(pa), sp[1], f.ptr(pb), sp[2], f.ptr(po), sp[3],
        outShape.length));
    },
    expand(x, xShape, out, outShape) {
      if (!(f32(x) && f32(out))) { js.expand(x, xShape, out, outShape); return; }
      const sp = putShapes([xShape, outShape]);
      if (!sp) { js.expand(x, xShape, out, outShape); return; }
      const px = f.arg(x, count(xShape), IN, 'x', 'expand');
      const po = f.arg(out, count(outShape), OUT, 'out', 'expand');
      call(() => ex.kiln_expand(f.ptr(px), sp[0], f.ptr(po), sp[1], outShape.length));
    },
    reduce(op, x, outer, dim, inner, out) {
      if (!(f32(x) && f32(out))) { js.reduce(op, x, outer, dim, inner, out); return; }
      const c = code(reduceCode, 'reduce', op);
      const px = f.arg(x, outer * dim * inner, IN, 'x', 'reduce');
      const po = f.arg(out, outer * inner, OUT, 'out', 'reduce');
      call(() => ex.kiln_reduce(c, f.ptr(px), outer, dim, inner, f.ptr(po)));
    },
    argmax(x, outer, dim, inner, out) {
      if (!f32(x)) { js.argmax(x, outer, dim, inner, out); return; }
      const px = f.arg(x, outer * dim * inner, IN, 'x', 'argmax');
      const po = f.arg(out, outer * inner, OUT, 'out', 'argmax');
      call(() => ex.kiln_argmax(f.ptr(px), outer, dim, inner, f.ptr(po)));
    },
    gemm(transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC) {
      if (!(f32(A) && f32(B) && f32(C))) {
        js.gemm(transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC);
        return;
      }
      gemmCall('gemm', ex.kiln_gemm, transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC);
    },
    gemmBf16(transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC) {
      gemmCall('gemmBf16', ex.kiln_gemm_bf16, transA, transB, batch, M, N, K, alpha, A, strideA, B, strideB, beta, C, strideC);
    },
    softmax(x, rows, cols, log, out) {
      if (!(f32(x) && f32(out))) { js.softmax(x, rows, cols, log, out); return; }
      const px = f.arg(x, rows * cols, IN, 'x', 'softmax');
      const po = f.arg(out, rows * cols, OUT, 'out', 'softmax');
      call(() => ex.kiln_softmax(f.ptr(px), rows, cols, log ? 1 : 0, f.ptr(po)));
    },
    softmaxBackward(y, dy, rows, cols, log, dx) {
      if (!(f32(y) && f32(dy) && f32(dx))) { js.softmaxBackward(y, dy, rows, cols, log, dx); return; }
      const n = rows * cols;
      const py = f.arg(y, n, IN, 'y', 'softmaxBackward');
      const pg = f.arg(dy, n, IN, 'dy', 'softmaxBackward');
      const po = f.arg(dx, n, OUT, 'dx', 'softmaxBackward');
      call(() => ex.kiln_softmax_backward(f.ptr(py), f.ptr(pg), rows, cols, log ? 1 : 0, f.ptr(po)));
    },
    layerNorm(x, weight, bias, rows, C, eps, out, mean, rstd) {
      if (!(f32(x) && (weight === null || f32(weight)) && (bias === null || f32(bias)) && f32(out) && f32(mean) && f32(rstd))) {
        js.layerNorm(x, weight, bias, rows, C, eps, out, mean, rstd);
        return;
      }
      const px = f.arg(x, rows * C, IN, 'x', 'layerNorm');
      const pw = weight ? f.arg(weight, C, IN, 'weight', 'layerNorm') : -1;
      const pb = bias ? f.arg(bias, C, IN, 'bias', 'layerNorm') : -1;
      const po = f.arg(out, rows * C, OUT, 'out', 'layerNorm');
      const pm = f.arg(mean, rows, OUT, 'mean', 'layerNorm');
      const ps = f.arg(rstd, rows, OUT, 'rstd', 'layerNorm');
      call(() => ex.kiln_layernorm(f.ptr(px), pw < 0 ? 0 : f.ptr(pw), pb < 0 ? 0 : f.ptr(pb), rows, C, eps, f.ptr(po),
        f.ptr(pm), f.ptr(ps)));
    },
    layerNormBackward(dy, x, weight, mean, rstd, rows, C, dx, dweight, dbias) {
      if (!(f32(dy) && f32(x) && (weight === null || f32(weight)) && f32(mean) && f32(rstd) && f32(dx) &&
        (dweight === null || f32(dweight)) && (dbias === null || f32(dbias)))) {
        js.layerNormBackward(dy, x, weight, mean, rstd, rows, C, dx, dweight, dbias);
        return;
      }
      const k = 'layerNormBackward';
      const pg = f.arg(dy, rows * C, IN, 'dy', k);
      const px = f.arg(x, rows * C, IN, 'x', k);
      const pw = weight ? f.arg(weight, C, IN, 'weight', k) : -1;
      const pm = f.arg(mean, rows, IN, 'mean', k);
      const ps = f.arg(rstd, rows, IN, 'rstd', k);
      const pdx = f.arg(dx, rows * C, OUT, 'dx', k);
      const pdw = dweight ? f.arg(dweight, C, INOUT, 'dweight', k) : -1;
      const pdb = dbias ? f.arg(dbias, C, INOUT, 'dbias', k) : -1;
      call(() => ex.kiln_layernorm_backward(f.ptr(pg), f.ptr(px), pw < 0 ? 0 : f.ptr(pw), f.ptr(pm), f.ptr(ps), rows, C,
        f.ptr(pdx), pdw < 0 ? 0 : f.ptr(pdw), pdb < 0 ? 0 : f.ptr(pdb)));
    },
    rmsNorm(x, weight, rows, C, eps, out, rstd) {
      if (!(f32(x) && (weight === null || f32(weight)) && f32(out) && f32(rstd))) {
        js.rmsNorm(x, weight, rows, C, eps, out, rstd);
        return;
      }
      const px = f.arg(x, rows * C, IN, 'x', 'rmsNorm');
      const pw = weight ? f.arg(weight, C, IN, 'weight', 'rmsNorm') : -1;
      const po = f.arg(out, rows * C, OUT, 'out', 'rmsNorm');
      const ps = f.arg(rstd, rows, OUT, 'rstd', 'rmsNorm');
      call(() => ex.kiln_rmsnorm(f.ptr(px), pw < 0 ? 0 : f.ptr(pw), rows, C, eps, f.ptr(po), f.ptr(ps)));
    },
    rmsNormBackward(dy, x, weight, rstd, rows, C, dx, dweight) {
      if (!(f32(dy) && f32(x) && (weight === null || f32(weight)) && f32(rstd) && f32(dx) && (dweight === null || f32(dweight)))) {
        js.rmsNormBackward(dy, x, weight, rstd, rows, C, dx, dweight);
        return;
      }
      const k = 'rmsNormBackward';
      const pg = f.arg(dy, rows * C, IN, 'dy', k);
      const px = f.arg(x, rows * C, IN, 'x', k);
      const pw = weight ? f.arg(weight, C, IN, 'weight', k) : -1;
      const ps = f.arg(rstd, rows, IN, 'rstd', k);
      const pdx = f.arg(dx, rows * C, OUT, 'dx', k);
      const pdw = dweight ? f.arg(dweight, C, INOUT, 'dweight', k) : -1;
      call(() => ex.kiln_rmsnorm_backward(f.ptr(pg), f.ptr(px), pw < 0 ? 0 : f.ptr(pw), f.ptr(ps), rows, C, f.ptr(pdx),
        pdw < 0 ? 0 : f.ptr(pdw)));
    },
    rope(x, B, T, NH, HS, theta, starts, inverse, out) {
      if (!(f32(x) && f32(out)) || HS > 1024 || HS % 2 !== 0) { js.rope(x, B, T, NH, HS, theta, starts, inverse, out); return; }
      const n = B * T * NH * HS;
      const px = f.arg(x, n, IN, 'x', 'rope');
      const pst = f.arg(starts, B, IN, 'starts', 'rope');
      const po = f.arg(out, n, OUT, 'out', 'rope');
      call(() => { ex.kiln_rope(f.ptr(px), B, T, NH, HS, theta, f.ptr(pst), inverse ? 1 : 0, f.ptr(po)); });
    },
    crossEntropy(logits, targets, N, V, ignoreIndex, labelSmoothing, losses, lse) {
      if (!(f32(logits) && f32(losses) && f32(lse))) {
        js.crossEntropy(logits, targets, N, V, ignoreIndex, labelSmoothing, losses, lse);
        return;
      }
      const k = 'crossEntropy';
      for (let n = 0; n < N; n++) {
        const t = targets[n];
        if (t !== ignoreIndex && (t < 0 || t >= V)) throw new RangeError(`crossEntropy: target ${t} at row ${n} is outside [0, ${V})`);
      }
      const pl = f.arg(logits, N * V, IN, 'logits', k);
      const pt = f.arg(targets, N, IN, 'targets', k);
      const po = f.arg(losses, N, OUT, 'losses', k);
      const ps = f.arg(lse, N, OUT, 'lse', k);
      call(() => { ex.kiln_cross_entropy(f.ptr(pl), f.ptr(pt), N, V, ignoreIndex, labelSmoothing, f.ptr(po), f.ptr(ps)); });
    },
    crossEntropyBackward(logits, targets, lse, dlosses, N, V, ignoreIndex, labelSmoothing, dlogits) {
      if (!(f32(logits) && f32(lse) && f32(dlosses) && f32(dlogits))) {
        js.crossEntropyBackward(logits, targets, lse, dlosses, N, V, ignoreIndex, labelSmoothing, dlogits);
        return;
      }
      const k = 'crossEntropyBackward';
      const pl = f.arg(logits, N * V, IN, 'logits', k);
      const pt = f.arg(targets, N, IN, 'targets', k);
      const ps = f.arg(lse, N, IN, 'lse', k);
      const pd = f.arg(dlosses, N, IN, 'dlosses', k);
      const po = f.arg(dlogits, N * V, OUT, 'dlogits', k);
      call(() => ex.kiln_cross_entropy_backward(f.ptr(pl), f.ptr(pt), f.ptr(ps), f.ptr(pd), N, V, ignoreIndex, labelSmoothing,
        f.ptr(po)));
    },
    indexSelect(x, outer, dim, inner, idx, out) {
      if (!(f32(x) && f32(out))) { js.indexSelect(x, outer, dim, inner, idx, out); return; }
      if (outer * inner > 0) checkIdx(idx, idx.length, dim, 'indexSelect');
      const px = f.arg(x, outer * dim * inner, IN, 'x', 'indexSelect');
      const pi = f.arg(idx, idx.length, IN, 'idx', 'indexSelect');
      const po = f.arg(out, outer * idx.length * inner, OUT, 'out', 'indexSelect');
      call(() => ex.kiln_index_select(f.ptr(px), outer, dim, inner, f.ptr(pi), idx.length, f.ptr(po)));
    },
    indexAdd(dout, outer, dim, inner, idx, dx) {
      if (!(f32(dout) && f32(dx))) { js.indexAdd(dout, outer, dim, inner, idx, dx); return; }
      if (outer * inner > 0) checkIdx(idx, idx.length, dim, 'indexAdd');
      const pg = f.arg(dout, outer * idx.length * inner, IN, 'dout', 'indexAdd');
      const pi = f.arg(idx, idx.length, IN, 'idx', 'indexAdd');
      const po = f.arg(dx, outer * dim * inner, INOUT, 'dx', 'indexAdd');
      call(() => ex.kiln_index_add(f.ptr(pg), outer, dim, inner, f.ptr(pi), idx.length, f.ptr(po)));
    },
    gather(x, outer, dim, inner, idx, k, out) {
      if (!(f32(x) && f32(out))) { js.gather(x, outer, dim, inner, idx, k, out); return; }
      const n = outer * k * inner;
      if (idx.length < n) throw new RangeError(`kiln wasm: gather: idx has ${idx.length} elements, needs ${n}`);
      checkIdx(idx, n, dim, 'gather');
      const px = f.arg(x, outer * dim * inner, IN, 'x', 'gather');
      const pi = f.arg(idx, n, IN, 'idx', 'gather');
      const po = f.arg(out, n, OUT, 'out', 'gather');
      call(() => ex.kiln_gather(f.ptr(px), outer, dim, inner, f.ptr(pi), k, f.ptr(po)));
    },
    scatterAdd(dout, outer, dim, inner, idx, k, dx) {
      if (!(f32(dout) && f32(dx))) { js.scatterAdd(dout, outer, dim, inner, idx, k, dx); return; }
      const n = outer * k * inner;
      if (idx.length < n) throw new RangeError(`kiln wasm: scatterAdd: idx has ${idx.length} elements, needs ${n}`);
      checkIdx(idx, n, dim, 'scatterAdd');
      const pg = f.arg(dout, n, IN, 'dout', 'scatterAdd');
      const pi = f.arg(idx, n, IN, 'idx', 'scatterAdd');
      const po = f.arg(dx, outer * dim * inner, INOUT, 'dx', 'scatterAdd');
      call(() => ex.kiln_scatter_add(f.ptr(pg), outer, dim, inner, f.ptr(pi), k, f.ptr(po)));
    },
    permute(x, shape, perm, out) {
      if (!(f32(x) && f32(out)) || shape.length > MAX_RANK || perm.length !== shape.length) { js.permute(x, shape, perm, out); return; }
      const seen = new Set(perm);
      if (seen.size !== perm.length || perm.some((p) => p < 0 || p >= shape.length)) {
        throw new RangeError('kiln wasm: permute: perm is not a permutation of the axes');
      }
      const n = count(shape);
      heap.putInts([...shape, ...perm]);
      const px = f.arg(x, n, IN, 'x', 'permute');
      const po = f.arg(out, n, OUT, 'out', 'permute');
      call(() => ex.kiln_permute(f.ptr(px), heap.args, heap.args + shape.length * 4, shape.length, f.ptr(po)));
    },
    sliceCopy(src, outer, srcDim, inner, start, len, dst) {
      if (!(f32(src) && f32(dst))) { js.sliceCopy(src, outer, srcDim, inner, start, len, dst); return; }
      if (start + len > srcDim) throw new RangeError(`sliceCopy: slice ${start}..${start + len} is outside a dim of ${srcDim}`);
      const ps = f.arg(src, outer * srcDim * inner, IN, 'src', 'sliceCopy');
      const pd = f.arg(dst, outer * len * inner, OUT, 'dst', 'sliceCopy');
      call(() => ex.kiln_slice_copy(f.ptr(ps), outer, srcDim, inner, start, len, f.ptr(pd)));
    },
    sliceAssign(src, outer, dstDim, inner, start, len, dst) {
      if (!(f32(src) && f32(dst))) { js.sliceAssign(src, outer, dstDim, inner, start, len, dst); return; }
      if (start + len > dstDim) throw new RangeError(`sliceAssign: slice ${start}..${start + len} is outside a dim of ${dstDim}`);
      const ps = f.arg(src, outer * len * inner, IN, 'src', 'sliceAssign');
      const pd = f.arg(dst, outer * dstDim * inner, INOUT, 'dst', 'sliceAssign');
      call(() => ex.kiln_slice_assign(f.ptr(ps), outer, dstDim, inner, start, len, f.ptr(pd)));
    },
    attention(q, k, v, B, Tq, Tk, NH, HS, causal, scale, out, lse, ld = NH * HS) {
      if (!(f32(q) && f32(k) && f32(v) && f32(out) && f32(lse))) {
        js.attention(q, k, v, B, Tq, Tk, NH, HS, causal, scale, out, lse, ld);
        return;
      }
      const C = NH * HS;
      if (ld < C) throw new RangeError(`kiln wasm: attention: row stride ${ld} is less than NH * HS = ${C}`);
      const a = 'attention';
      const pq = f.arg(q, strided(B * Tq, C, ld), IN, 'q', a);
      const pk = f.arg(k, strided(B * Tk, C, ld), IN, 'k', a);
      const pv = f.arg(v, strided(B * Tk, C, ld), IN, 'v', a);
      const po = f.arg(out, B * Tq * C, OUT, 'out', a);
      const pl = f.arg(lse, B * NH * Tq, OUT, 'lse', a);
      call(() => ex.kiln_attention(f.ptr(pq), f.ptr(pk), f.ptr(pv), B, Tq, Tk, NH, HS, causal ? 1 : 0, scale, f.ptr(po),
        f.ptr(pl), ld));
    },
    attentionBackward(dout, q, k, v, out, lse, B, Tq, Tk, NH, HS, causal, scale, dq, dk, dv, ld = NH * HS) {
      if (!(f32(dout) && f32(q) && f32(k) && f32(v) && f32(out) && f32(lse) && f32(dq) && f32(dk) && f32(dv))) {
        js.attentionBackward(dout, q, k, v, out, lse, B, Tq, Tk, NH, HS, causal, scale, dq, dk, dv, ld);
        return;
      }
      const C = NH * HS;
      if (ld < C) throw new RangeError(`kiln wasm: attentionBackward: row stride ${ld} is less than NH * HS = ${C}`);
      const a = 'attentionBackward';
      const nq = strided(B * Tq, C, ld);
      const nk = strided(B * Tk, C, ld);
      const dRole = ld === C ? OUT : INOUT; // rows of stride ld leave the other columns untouched
      const pg = f.arg(dout, B * Tq * C, IN, 'dout', a);
      const pq = f.arg(q, nq, IN, 'q', a);
      const pk = f.arg(k, nk, IN, 'k', a);
      const pv = f.arg(v, nk, IN, 'v', a);
      const po = f.arg(out, B * Tq * C, IN, 'out', a);
      const pl = f.arg(lse, B * NH * Tq, IN, 'lse', a);
      const pdq = f.arg(dq, nq, dRole, 'dq', a);
      const pdk = f.arg(dk, nk, dRole, 'dk', a);
      const pdv = f.arg(dv, nk, dRole, 'dv', a);
      call(() => ex.kiln_attention_backward(f.ptr(pg), f.ptr(pq), f.ptr(pk), f.ptr(pv), f.ptr(po), f.ptr(pl), B, Tq, Tk, NH, HS,
        causal ? 1 : 0, scale, f.ptr(pdq), f.ptr(pdk), f.ptr(pdv), ld));
    },
    gptBlockDecode(x, weights, keys, values, rows, starts, A, C, NH, P, eps) {
      if (!f32(x) || !f32(keys) || !f32(values) || !weights.every((w) => w === null || f32(w))) return false;
      const k = 'gptBlockDecode';
      if (A > 0x7fff || C > 0x7fffff || NH === 0 || NH > C || C % NH !== 0 || P === 0) {
        throw new RangeError(`kiln wasm: ${k}: bad dimensions (A ${A}, C ${C}, NH ${NH}, P ${P})`);
      }
      const names = ['ln_1.weight', 'ln_1.bias', 'attn.c_attn.weight', 'attn.c_attn.bias', 'attn.c_proj.weight',
        'attn.c_proj.bias', 'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias'];
      const sizes = [C, C, C * 3 * C, 3 * C, C * C, C, C, C, C * 4 * C, 4 * C, 4 * C * C, C];
      const required = new Set([2, 4, 8, 10]);
      const slots = names.map((name, i) => {
        const w = weights[i];
        if (!w) {
          if (required.has(i)) throw new RangeError(`kiln wasm: ${k}: ${name} must be a Float32Array`);
          return -1;
        }
        return f.arg(w, sizes[i], IN, name, k);
      });
      checkCache(k, rows, starts, A, Math.min(Math.floor(keys.length / (P * C)), Math.floor(values.length / (P * C))), P);
      const px = f.arg(x, A * C, INOUT, 'x', k);
      const pk = f.arg(keys, keys.length, INOUT, 'keys', k);
      const pv = f.arg(values, values.length, INOUT, 'values', k);
      const pr = f.arg(rows, A, IN, 'rows', k);
      const ps = f.arg(starts, A, IN, 'starts', k);
      let rc = 0;
      call(() => {
        const w = heap.putInts([...slots.map((sl) => (sl < 0 ? 0 : f.ptr(sl))), 0, 0, 0, 0]); // kiln_gpt_block: no panels
        rc = ex.kiln_gpt_block_decode(w, f.ptr(px), f.ptr(pk), f.ptr(pv), f.ptr(pr), f.ptr(ps), A, C, NH, P, eps);
      });
      if (rc === -2) throw new RangeError(`kiln wasm: ${k}: out of memory for ${A} rows of width ${C}`);
      if (rc !== 0) throw new RangeError(`kiln wasm: ${k}: ${C} channels do not split into ${NH} heads`);
      return true;
    },
    gptDecode(logits, tokens, rows, starts, wte, wpe, blocks, keys, values, lnfWeight, lnfBias, head, A, C, NH, P, V, eps, _panels, headRows) {
      const arrays = [logits, wte, wpe, head, ...keys, ...values, lnfWeight, lnfBias, ...blocks.flat()];
      if (!arrays.every((a) => a === null || f32(a))) return false;
      const k = 'gptDecode';
      const L = blocks.length;
      if (A > 0x7fff || C === 0 || C > 0x7fffff || NH === 0 || NH > C || C % NH !== 0 || P === 0 || V === 0 ||
        keys.length !== L || values.length !== L) {
        throw new RangeError(`kiln wasm: ${k}: bad dimensions (A ${A}, C ${C}, NH ${NH}, P ${P}, V ${V}, ${L} blocks, ${keys.length} caches)`);
      }
      // kiln_gpt_decode_applies in C: at most 16 sequences (KILN_GEMV_MAX_M), every product streamed
      if (A < 1 || A > 16 || C * C <= 512 || V * C <= 512) return false;
      for (let a = 0; a < A; a++) {
        if (tokens[a] < 0 || tokens[a] >= V) throw new RangeError(`kiln wasm: ${k}: token ${tokens[a]} is outside the vocabulary of ${V}`);
      }
      const nOut = headRows ? headRows.length : A;
      headRows?.forEach((r, i) => {
        if (!(r >= 0 && r < A && (i === 0 || r > headRows[i - 1]))) {
          throw new RangeError(`kiln wasm: ${k}: headRows must be ascending entries below ${A}; got ${r} at ${i}`);
        }
      });
      const names = ['ln_1.weight', 'ln_1.bias', 'attn.c_attn.weight', 'attn.c_attn.bias', 'attn.c_proj.weight',
        'attn.c_proj.bias', 'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias'];
      const sizes = [C, C, C * 3 * C, 3 * C, C * C, C, C, C, C * 4 * C, 4 * C, 4 * C * C, C];
      const required = new Set([2, 4, 8, 10]);
      const slots = blocks.map((weights, l) => names.map((name, i) => {
        const w = weights[i];
        if (!w) {
          if (required.has(i)) throw new RangeError(`kiln wasm: ${k}: block ${l} ${name} must be a Float32Array`);
          return -1;
        }
        return f.arg(w as Float32Array, sizes[i], IN, name, k);
      }));
      for (let l = 0; l < L; l++) {
        checkCache(k, rows, starts, A, Math.min(Math.floor(keys[l].length / (P * C)), Math.floor(values[l].length / (P * C))), P);
      }
      const opt = (a: FloatArray | null, name: string, n: number): number => (a ? f.arg(a as Float32Array, n, IN, name, k) : -1);
      const pl = nOut > 0 ? f.arg(logits as Float32Array, nOut * V, OUT, 'logits', k) : -1;
      const pt = f.arg(tokens, A, IN, 'tokens', k);
      const phr = headRows && nOut > 0 ? f.arg(headRows, nOut, IN, 'headRows', k) : -1;
      const pr = f.arg(rows, A, IN, 'rows', k);
      const ps = f.arg(starts, A, IN, 'starts', k);
      const pte = f.arg(wte as Float32Array, V * C, IN, 'wte', k);
      const ppe = f.arg(wpe as Float32Array, P * C, IN, 'wpe', k);
      const ph = f.arg(head as Float32Array, V * C, IN, 'head', k);
      const plw = opt(lnfWeight, 'ln_f.weight', C);
      const plb = opt(lnfBias, 'ln_f.bias', C);
      const pk = keys.map((a) => f.arg(a as Float32Array, a.length, INOUT, 'keys', k));
      const pv = values.map((a) => f.arg(a as Float32Array, a.length, INOUT, 'values', k));
      let rc = 0;
      call(() => {
        const ptr = (sl: number): number => (sl < 0 ? 0 : f.ptr(sl));
        // kiln_gpt_model (15 words: head_p last, null), then the blocks (L x 16 pointers: the 12 weights, then 4
        // null panel pointers; the wasm kernels have no panel path), the keys and the values (L pointers each)
        const words = 15 + L * 18;
        const base = heap.alloc(words * 4);
        try {
          const m = heap.i32();
          const at = base >> 2;
          m.fill(0, at, at + words);
          const blockList = base + 15 * 4, keyList = blockList + L * 64, valueList = keyList + L * 4;
          [ptr(pte), ptr(ppe), blockList, keyList, valueList, ptr(plw), ptr(plb), ptr(ph), L, C, NH, P, V]
            .forEach((v, i) => { m[at + i] = v; });
          new Float32Array(m.buffer, base + 13 * 4, 1)[0] = eps;
          slots.forEach((bs, l) => bs.forEach((sl, i) => { m[(blockList >> 2) + l * 16 + i] = ptr(sl); }));
          pk.forEach((sl, l) => { m[(keyList >> 2) + l] = ptr(sl); });
          pv.forEach((sl, l) => { m[(valueList >> 2) + l] = ptr(sl); });
          // an empty headRows is not null (all entries): any valid address, never read
          const hr = !headRows ? 0 : nOut > 0 ? ptr(phr) : ptr(pt);
          rc = ex.kiln_gpt_decode(base, ptr(pt), ptr(pr), ptr(ps), A, hr, nOut, nOut > 0 ? ptr(pl) : ptr(pt));
        } finally {
          ex.kiln_wasm_free(base);
        }
      });
      if (rc === -2) throw new RangeError(`kiln wasm: ${k}: out of memory for ${A} rows of width ${C}`);
      return rc === 0;
    },
    llamaBlockDecode(x, weights, keys, values, rows, starts, A, C, NH, KVH, hidden, P, eps, theta) {
      if (!f32(x) || !f32(keys) || !f32(values) || !weights.every((w) => w === null || f32(w))) return false;
      const k = 'llamaBlockDecode';
      if (A > 0x7fff || C > 0x7fffff || hidden > 0x7fffff || NH === 0 || NH > C || C % NH !== 0 || KVH === 0 || NH % KVH !== 0 ||
        (C / NH) % 2 !== 0 || C / NH > 1024 || P === 0 || !(theta > 0)) {
        throw new RangeError(`kiln wasm: ${k}: bad dimensions (A ${A}, C ${C}, NH ${NH}, KVH ${KVH}, hidden ${hidden}, P ${P})`);
      }
      const KW = (C / NH) * KVH;
      const names = ['input_layernorm.weight', 'post_attention_layernorm.weight', 'self_attn.q_proj.weight',
        'self_attn.k_proj.weight', 'self_attn.v_proj.weight', 'self_attn.o_proj.weight', 'mlp.gate_proj.weight',
        'mlp.up_proj.weight', 'mlp.down_proj.weight'];
      const sizes = [C, C, C * C, KW * C, KW * C, C * C, hidden * C, hidden * C, C * hidden];
      const slots = names.map((name, i) => {
        const w = weights[i];
        if (!w) {
          if (i >= 2) throw new RangeError(`kiln wasm: ${k}: ${name} must be a Float32Array`);
          return -1;
        }
        return f.arg(w, sizes[i], IN, name, k);
      });
      checkCache(k, rows, starts, A, Math.min(Math.floor(keys.length / (P * KW)), Math.floor(values.length / (P * KW))), P);
      const px = f.arg(x, A * C, INOUT, 'x', k);
      const pk = f.arg(keys, keys.length, INOUT, 'keys', k);
      const pv = f.arg(values, values.length, INOUT, 'values', k);
      const pr = f.arg(rows, A, IN, 'rows', k);
      const ps = f.arg(starts, A, IN, 'starts', k);
      let rc = 0;
      call(() => {
        const w = heap.putInts([...slots.map((sl) => (sl < 0 ? 0 : f.ptr(sl))), 0, 0, 0, 0]); // kiln_gpt_block: no panels
        rc = ex.kiln_llama_block_decode(w, f.ptr(px), f.ptr(pk), f.ptr(pv), f.ptr(pr), f.ptr(ps), A, C, NH, KVH, hidden, P, eps, theta);
      });
      if (rc === -2) throw new RangeError(`kiln wasm: ${k}: out of memory for ${A} rows of width ${C}`);
      if (rc !== 0) throw new RangeError(`kiln wasm: ${k}: ${C} channels do not split into ${NH} heads of even size`);
      return true;
    },
    sample(logits, V, invTemperature, topK, topP, u, u2, scratch) {
      if (!f32(logits) || !f32(scratch)) return null;
      if (!(V >= 1 && V <= 0x7fffffff)) throw new RangeError(`kiln wasm: sample: the vocabulary size must be in 1 .. 2^31-1, got ${V}`);
      if (!(invTemperature > 0) || !(topP > 0 && topP <= 1) || !(u >= 0 && u < 1) || !(u2 >= 0 && u2 < 1)) {
        throw new RangeError('kiln wasm: sample: bad sampling parameters');
      }
      const pl = f.arg(logits, V, IN, 'logits', 'sample');
      const ps = f.arg(scratch, V, OUT, 'scratch', 'sample');
      let id = 0;
      call(() => { id = ex.kiln_sample(f.ptr(pl), V, invTemperature, Math.min(topK, 0x7fffffff), topP, u, u2, f.ptr(ps)); });
      if (id === -2) throw new RangeError('kiln wasm: sample: out of memory');
      return id;
    },
    adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2) {
      if (!(f32(param) && f32(grad) && f32(m) && f32(v))) {
        js.adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2);
        return;
      }
      const n = param.length;
      const pp = f.arg(param, n, INOUT, 'param', 'adamw');
      const pg = f.arg(grad, n, IN, 'grad', 'adamw');
      const pm = f.arg(m, n, INOUT, 'm', 'adamw');
      const pv = f.arg(v, n, INOUT, 'v', 'adamw');
      call(() => ex.kiln_adamw(f.ptr(pp), f.ptr(pg), f.ptr(pm), f.ptr(pv), n, lr, beta1, beta2, eps, weightDecay, bc1, bc2));
    },
  };
}

/** Runs a kernel call inside a frame (copies foreign arguments in and outputs back). */
type Call = (fn: () => void) => void;

/**
 * The recurrent cells, convolution, pooling and batch norm (native/rnn.c, conv.c, pooling.c, batchnorm.c): float32
 * in wasm, anything else on the reference kernels. Optional buffers (null) reach the kernels as NULL.
 */
function layerKernels(ex: Exports, heap: Heap, f: Frame, call: Call): Pick<Backend, 'lstmCell' | 'lstmCellBackward' |
  'gruCell' | 'gruCellBackward' | 'conv2d' | 'conv2dBackward' | 'maxPool2d' | 'maxPool2dBackward' | 'avgPool2d' |
  'avgPool2dBackward' | 'batchNormStats' | 'batchNorm' | 'batchNormBackward'> {
  const js = jsBackend;
  /** A slot for an optional buffer (-1 for null) and its pointer (0 for null). */
  const opt = (a: Float32Array | null, need: number, role: number, name: string, k: string): number =>
    (a === null ? -1 : f.arg(a, need, role, name, k));
  const ptr = (slot: number): number => (slot < 0 ? 0 : f.ptr(slot));
  const convShape = (s: Conv2dShape): number => heap.putInts(CONV2D_FIELDS.map((k) => s[k]));
  const poolShape = (s: Pool2dShape): number => heap.putInts(POOL2D_FIELDS.map((k) => s[k]));
  const oom = (k: string): never => { throw new RangeError(`kiln wasm: ${k}: out of memory for its scratch buffers`); };
  return {
    lstmCell(gates, cPrev, B, H, c, h) {
      if (!(f32(gates) && f32(cPrev) && f32(c) && f32(h))) { js.lstmCell(gates, cPrev, B, H, c, h); return; }
      const k = 'lstmCell';
      const g = f.arg(gates, B * 4 * H, INOUT, 'gates', k), cp = f.arg(cPrev, B * H, IN, 'cPrev', k);
      const pc = f.arg(c, B * H, OUT, 'c', k), ph = f.arg(h, B * H, OUT, 'h', k);
      call(() => ex.kiln_lstm_cell(f.ptr(g), f.ptr(cp), B, H, f.ptr(pc), f.ptr(ph)));
    },
    lstmCellBackward(gates, cPrev, c, dh, dc, B, H, dgates) {
      if (!(f32(gates) && f32(cPrev) && f32(c) && f32(dh) && f32(dc) && f32(dgates))) {
        js.lstmCellBackward(gates, cPrev, c, dh, dc, B, H, dgates);
        return;
      }
      const k = 'lstmCellBackward';
      const g = f.arg(gates, B * 4 * H, IN, 'gates', k), cp = f.arg(cPrev, B * H, IN, 'cPrev', k);
      const pc = f.arg(c, B * H, IN, 'c', k), pdh = f.arg(dh, B * H, IN, 'dh', k);
      const pdc = f.arg(dc, B * H, INOUT, 'dc', k), pdg = f.arg(dgates, B * 4 * H, OUT, 'dgates', k);
      call(() => ex.kiln_lstm_cell_backward(f.ptr(g), f.ptr(cp), f.ptr(pc), f.ptr(pdh), f.ptr(pdc), B, H, f.ptr(pdg)));
    },
    gruCell(gx, gh, hPrev, B, H, h) {
      if (!(f32(gx) && f32(gh) && f32(hPrev) && f32(h))) { js.gruCell(gx, gh, hPrev, B, H, h); return; }
      const k = 'gruCell';
      const px = f.arg(gx, B * 3 * H, INOUT, 'gx', k), pg = f.arg(gh, B * 3 * H, IN, 'gh', k);
      const pp = f.arg(hPrev, B * H, IN, 'hPrev', k), ph = f.arg(h, B * H, OUT, 'h', k);
      call(() => ex.kiln_gru_cell(f.ptr(px), f.ptr(pg), f.ptr(pp), B, H, f.ptr(ph)));
    },
    gruCellBackward(gates, gh, hPrev, dh, B, H, dgx, dgh, dhPrev) {
      if (!(f32(gates) && f32(gh) && f32(hPrev) && f32(dh) && f32(dgx) && f32(dgh) && f32(dhPrev))) {
        js.gruCellBackward(gates, gh, hPrev, dh, B, H, dgx, dgh, dhPrev);
        return;
      }
      const k = 'gruCellBackward';
      const pg = f.arg(gates, B * 3 * H, IN, 'gates', k), pgh = f.arg(gh, B * 3 * H, IN, 'gh', k);
      const pp = f.arg(hPrev, B * H, IN, 'hPrev', k), pdh = f.arg(dh, B * H, IN, 'dh', k);
      const pdx = f.arg(dgx, B * 3 * H, OUT, 'dgx', k), pdgh = f.arg(dgh, B * 3 * H, OUT, 'dgh', k);
      const pdp = f.arg(dhPrev, B * H, OUT, 'dhPrev', k);
      call(() => ex.kiln_gru_cell_backward(f.ptr(pg), f.ptr(pgh), f.ptr(pp), f.ptr(pdh), B, H, f.ptr(pdx), f.ptr(pdgh),
        f.ptr(pdp)));
    },
    conv2d(x, weight, bias, s, out) {
      if (!(f32(x) && f32(weight) && f32n(bias) && f32(out))) { js.conv2d(x, weight, bias, s, out); return; }
      const k = 'conv2d';
      const px = f.arg(x, s.N * s.C * s.H * s.W, IN, 'x', k);
      const pw = f.arg(weight, s.OC * (s.C / s.groups) * s.KH * s.KW, IN, 'weight', k);
      const pb = opt(bias, s.OC, IN, 'bias', k);
      const po = f.arg(out, s.N * s.OC * s.OH * s.OW, OUT, 'out', k);
      let rc = 0;
      call(() => { rc = ex.kiln_conv2d(f.ptr(px), f.ptr(pw), ptr(pb), convShape(s), f.ptr(po)); });
      if (rc !== 0) oom(k);
    },
    conv2dBackward(dy, x, weight, s, dx, dweight, dbias) {
      if (!(f32(dy) && f32(x) && f32(weight) && f32n(dx) && f32n(dweight) && f32n(dbias))) {
        js.conv2dBackward(dy, x, weight, s, dx, dweight, dbias);
        return;
      }
      const k = 'conv2dBackward';
      const nx = s.N * s.C * s.H * s.W, nw = s.OC * (s.C / s.groups) * s.KH * s.KW;
      const pdy = f.arg(dy, s.N * s.OC * s.OH * s.OW, IN, 'dy', k);
      const px = f.arg(x, nx, IN, 'x', k), pw = f.arg(weight, nw, IN, 'weight', k);
      const pdx = opt(dx, nx, OUT, 'dx', k), pdw = opt(dweight, nw, OUT, 'dweight', k), pdb = opt(dbias, s.OC, OUT, 'dbias', k);
      let rc = 0;
      call(() => { rc = ex.kiln_conv2d_backward(f.ptr(pdy), f.ptr(px), f.ptr(pw), convShape(s), ptr(pdx), ptr(pdw), ptr(pdb)); });
      if (rc !== 0) oom(k);
    },
    maxPool2d(x, s, out, indices) {
      if (!(f32(x) && f32(out))) { js.maxPool2d(x, s, out, indices); return; }
      const k = 'maxPool2d', no = s.P * s.OH * s.OW;
      const px = f.arg(x, s.P * s.H * s.W, IN, 'x', k), po = f.arg(out, no, OUT, 'out', k);
      const pi = f.arg(indices, no, OUT, 'indices', k);
      call(() => ex.kiln_max_pool2d(f.ptr(px), poolShape(s), f.ptr(po), f.ptr(pi)));
    },
    maxPool2dBackward(dy, indices, s, dx) {
      if (!(f32(dy) && f32(dx))) { js.maxPool2dBackward(dy, indices, s, dx); return; }
      const k = 'maxPool2dBackward', no = s.P * s.OH * s.OW, HW = s.H * s.W;
      // the kernel writes dx at each index: one outside its plane would write outside dx
      for (let i = 0; i < no; i++) {
        if (indices[i] >= HW) throw new RangeError(`kiln wasm: ${k}: index ${indices[i]} at position ${i} is outside a plane of ${HW}`);
      }
      const pdy = f.arg(dy, no, IN, 'dy', k), pi = f.arg(indices, no, IN, 'indices', k);
      const pdx = f.arg(dx, s.P * HW, OUT, 'dx', k);
      call(() => ex.kiln_max_pool2d_backward(f.ptr(pdy), f.ptr(pi), poolShape(s), f.ptr(pdx)));
    },
    avgPool2d(x, s, countIncludePad, divisorOverride, out) {
      if (!(f32(x) && f32(out))) { js.avgPool2d(x, s, countIncludePad, divisorOverride, out); return; }
      const k = 'avgPool2d';
      const px = f.arg(x, s.P * s.H * s.W, IN, 'x', k), po = f.arg(out, s.P * s.OH * s.OW, OUT, 'out', k);
      call(() => ex.kiln_avg_pool2d(f.ptr(px), poolShape(s), countIncludePad ? 1 : 0, divisorOverride, f.ptr(po)));
    },
    avgPool2dBackward(dy, s, countIncludePad, divisorOverride, dx) {
      if (!(f32(dy) && f32(dx))) { js.avgPool2dBackward(dy, s, countIncludePad, divisorOverride, dx); return; }
      const k = 'avgPool2dBackward';
      const pdy = f.arg(dy, s.P * s.OH * s.OW, IN, 'dy', k), pdx = f.arg(dx, s.P * s.H * s.W, OUT, 'dx', k);
      call(() => ex.kiln_avg_pool2d_backward(f.ptr(pdy), poolShape(s), countIncludePad ? 1 : 0, divisorOverride, f.ptr(pdx)));
    },
    batchNormStats(x, N, C, HW, mean, variance) {
      if (!(f32(x) && f32(mean) && f32(variance))) { js.batchNormStats(x, N, C, HW, mean, variance); return; }
      const k = 'batchNormStats';
      const px = f.arg(x, N * C * HW, IN, 'x', k), pm = f.arg(mean, C, OUT, 'mean', k), pv = f.arg(variance, C, OUT, 'variance', k);
      call(() => ex.kiln_batchnorm_stats(f.ptr(px), N, C, HW, f.ptr(pm), f.ptr(pv)));
    },
    batchNorm(x, mean, invstd, weight, bias, N, C, HW, out) {
      if (!(f32(x) && f32(mean) && f32(invstd) && f32n(weight) && f32n(bias) && f32(out))) {
        js.batchNorm(x, mean, invstd, weight, bias, N, C, HW, out);
        return;
      }
      const k = 'batchNorm';
      const px = f.arg(x, N * C * HW, IN, 'x', k), pm = f.arg(mean, C, IN, 'mean', k), pr = f.arg(invstd, C, IN, 'invstd', k);
      const pw = opt(weight, C, IN, 'weight', k), pb = opt(bias, C, IN, 'bias', k);
      const po = f.arg(out, N * C * HW, OUT, 'out', k);
      call(() => ex.kiln_batchnorm(f.ptr(px), f.ptr(pm), f.ptr(pr), ptr(pw), ptr(pb), N, C, HW, f.ptr(po)));
    },
    batchNormBackward(dy, x, mean, invstd, weight, N, C, HW, batchStats, dx, dweight, dbias) {
      if (!(f32(dy) && f32(x) && f32(mean) && f32(invstd) && f32n(weight) && f32n(dx) && f32n(dweight) && f32n(dbias))) {
        js.batchNormBackward(dy, x, mean, invstd, weight, N, C, HW, batchStats, dx, dweight, dbias);
        return;
      }
      const k = 'batchNormBackward', n = N * C * HW;
      const pdy = f.arg(dy, n, IN, 'dy', k), px = f.arg(x, n, IN, 'x', k);
      const pm = f.arg(mean, C, IN, 'mean', k), pr = f.arg(invstd, C, IN, 'invstd', k), pw = opt(weight, C, IN, 'weight', k);
      const pdx = opt(dx, n, OUT, 'dx', k), pdw = opt(dweight, C, OUT, 'dweight', k), pdb = opt(dbias, C, OUT, 'dbias', k);
      call(() => ex.kiln_batchnorm_backward(f.ptr(pdy), f.ptr(px), f.ptr(pm), f.ptr(pr), ptr(pw), N, C, HW, batchStats ? 1 : 0,
        ptr(pdx), ptr(pdw), ptr(pdb)));
    },
  };
}

export type { AnyArray, DType, FloatArray };
export { PAGE };

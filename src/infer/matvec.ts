// A float32 matrix-vector kernel in WebAssembly SIMD (128-bit), for decoding one token at a time: y = x @ W + b
// with W (K, N) row-major. A GEMM built for big tiles wastes most of its work on a single row; this kernel
// streams W once with 8 vector accumulators. The module is assembled here from a few dozen instructions, so
// there is no build step and no binary blob; when WebAssembly SIMD is unavailable the caller falls back to GEMM.

/** Weights registered once, refreshed with load(), multiplied with run(). */
export interface MatVec {
  /** Reserves room for a (K, N) matrix and its bias; returns its handle. */
  add(K: number, N: number): number;
  /** Copies W (K, N) row-major and the bias (N, or null for none) into the kernel's memory. */
  load(handle: number, W: Float32Array, bias: Float32Array | null): void;
  /** Copies W given transposed, stored (N, K) row-major (e.g. a tied embedding used as the LM head); no bias. */
  loadTransposed(handle: number, Wt: Float32Array, N: number, K: number): void;
  /** y (N) = x (K) @ W + b. */
  run(handle: number, x: Float32Array, y: Float32Array): void;
}

const ACC = 8; // vector accumulators per column block: 32 columns
const BLOCK = ACC * 4;
// Rows of W per inner-loop iteration (K is padded to a multiple). 2 and 4 measured no faster than 1 here: the
// kernel is bound by reading W, not by loop overhead.
const UNROLL = 1;

// ---- a tiny assembler for the one function we need ----

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const OP = {
  get: 0x20, set: 0x21, tee: 0x22, i32const: 0x41, shl: 0x74, add: 0x6a, geu: 0x4f, ltu: 0x49,
  brIf: 0x0d, br: 0x0c, block: 0x02, loop: 0x03, end: 0x0b, void: 0x40, f32load: 0x2a,
};
const SIMD = { load: [0xfd, 0x00], store: [0xfd, 0x0b], splat: [0xfd, 0x13], fadd: [0xfd, 0xe4, 0x01], fmul: [0xfd, 0xe6, 0x01] };

function section(id: number, body: number[]): number[] { return [id, ...leb(body.length), ...body]; }
function str(s: string): number[] { return [...leb(s.length), ...[...s].map((c) => c.charCodeAt(0))]; }

/**
 * mv(W, x, b, y, K, N): y[n] = b[n] + sum_k x[k] W[k, n], byte addresses, W packed in column panels (see load),
 * N a multiple of BLOCK, K >= 1.
 */
function assemble(): Uint8Array<ArrayBuffer> {
  // params 0 W, 1 x, 2 b, 3 y, 4 K, 5 N; i32 locals 6 n0, 7 wp, 8 xp, 9 kEnd, 10 rowStride; v128 11.. acc, then xk.
  const [W, X, B, Y, K, N, n0, wp, xp, kEnd, stride] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const acc = (i: number): number => 11 + i;
  const xk = (u: number): number => 11 + ACC + u;
  const c: number[] = [];
  const e = (...b: number[]): void => { c.push(...b); };
  const get = (i: number): void => e(OP.get, i);
  const set = (i: number): void => e(OP.set, i);
  const k = (v: number): void => e(OP.i32const, ...sleb(v));
  const addr = (base: number): void => { get(base); get(n0); k(2); e(OP.shl, OP.add); }; // base + n0 * 4
  // W is packed in panels of BLOCK columns, (N / BLOCK, K, BLOCK), so it streams contiguously from start to end.
  // stride = BLOCK * 4; kEnd = x + K * 4; n0 = 0; wp = W (it runs on across panels)
  k(BLOCK * 4 * UNROLL); set(stride);
  get(X); get(K); k(2); e(OP.shl, OP.add); set(kEnd);
  k(0); set(n0);
  get(W); set(wp);
  e(OP.block, OP.void, OP.loop, OP.void);
  get(n0); get(N); e(OP.geu, OP.brIf, 1);
  addr(B); set(xp);
  for (let i = 0; i < ACC; i++) { get(xp); e(...SIMD.load, 4, ...leb(16 * i)); set(acc(i)); }
  get(X); set(xp);
  e(OP.loop, OP.void);
  for (let u = 0; u < UNROLL; u++) { get(xp); e(OP.f32load, 2, ...leb(4 * u), ...SIMD.splat); set(xk(u)); }
  for (let u = 0; u < UNROLL; u++) {
    for (let i = 0; i < ACC; i++) {
      get(acc(i)); get(xk(u)); get(wp); e(...SIMD.load, 4, ...leb(BLOCK * 4 * u + 16 * i), ...SIMD.fmul, ...SIMD.fadd); set(acc(i));
    }
  }
  get(wp); get(stride); e(OP.add); set(wp);
  get(xp); k(4 * UNROLL); e(OP.add, OP.tee, xp); get(kEnd); e(OP.ltu, OP.brIf, 0);
  e(OP.end);
  addr(Y); set(xp);
  for (let i = 0; i < ACC; i++) { get(xp); get(acc(i)); e(...SIMD.store, 4, ...leb(16 * i)); }
  get(n0); k(BLOCK); e(OP.add); set(n0);
  e(OP.br, 0, OP.end, OP.end, OP.end);
  const body = [2, 5, 0x7f, ...leb(ACC + UNROLL), 0x7b, ...c];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 6, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0]),
    ...section(2, [1, ...str('e'), ...str('m'), 0x02, 0x00, 1]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...str('mv'), 0x00, 0]),
    ...section(10, [1, ...leb(body.length), ...body]),
  ];
  const out = new Uint8Array(new ArrayBuffer(bytes.length));
  out.set(bytes);
  return out;
}

type MvFn = (W: number, x: number, b: number, y: number, K: number, N: number) => void;

interface Slot { K: number; Kp: number; N: number; Np: number; w: number; b: number }

let compiled: WebAssembly.Module | null | undefined;

function compile(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  try {
    const bytes = assemble();
    compiled = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  } catch {
    compiled = null;
  }
  return compiled;
}

class WasmMatVec implements MatVec {
  private slots: Slot[] = [];
  private top = 64; // bytes in use; 0..63 stay unused
  private maxK = 0;
  private maxNp = 0;
  private f32: Float32Array;
  private readonly fn: MvFn;

  constructor(mod: WebAssembly.Module, private readonly memory: WebAssembly.Memory) {
    const inst = new WebAssembly.Instance(mod, { e: { m: memory } });
    this.fn = inst.exports.mv as MvFn;
    this.f32 = new Float32Array(memory.buffer);
  }

  add(K: number, N: number): number {
    const Np = Math.ceil(N / BLOCK) * BLOCK;
    const Kp = Math.ceil(K / UNROLL) * UNROLL;
    const w = this.top;
    const b = w + Kp * Np * 4;
    this.top = b + Np * 4;
    this.maxK = Math.max(this.maxK, Kp);
    this.maxNp = Math.max(this.maxNp, Np);
    this.slots.push({ K, Kp, N, Np, w, b });
    this.grow();
    return this.slots.length - 1;
  }

  /** Scratch for x and y sits after the weights. */
  private get xAddr(): number { return this.top; }
  private get yAddr(): number { return this.top + this.maxK * 4; }

  private grow(): void {
    const need = this.top + (this.maxK + this.maxNp) * 4;
    const have = this.memory.buffer.byteLength;
    if (need > have) this.memory.grow(Math.ceil((need - have) / 65536));
    if (this.f32.buffer !== this.memory.buffer) this.f32 = new Float32Array(this.memory.buffer);
  }

  load(handle: number, W: Float32Array, bias: Float32Array | null): void {
    const s = this.slots[handle];
    const f = this.f32;
    const w0 = s.w >> 2;
    const { K, Kp, N } = s;
    // Panel p holds columns p*BLOCK .. p*BLOCK+BLOCK-1 as (Kp, BLOCK); columns past N and rows past K are zero.
    f.fill(0, w0, w0 + Kp * s.Np);
    for (let p = 0; p * BLOCK < N; p++) {
      const c0 = p * BLOCK;
      const width = Math.min(BLOCK, N - c0);
      const base = w0 + p * Kp * BLOCK;
      for (let k = 0; k < K; k++) {
        const d = base + k * BLOCK;
        f.set(W.subarray(k * N + c0, k * N + c0 + width), d);
        if (width < BLOCK) f.fill(0, d + width, d + BLOCK);
      }
    }
    const b0 = s.b >> 2;
    if (bias) f.set(bias.subarray(0, s.N), b0);
    else f.fill(0, b0, b0 + s.N);
    f.fill(0, b0 + s.N, b0 + s.Np);
  }

  loadTransposed(handle: number, Wt: Float32Array, N: number, K: number): void {
    const s = this.slots[handle];
    const f = this.f32;
    const w0 = s.w >> 2;
    f.fill(0, w0, w0 + s.Kp * s.Np + s.Np);
    for (let n = 0; n < N; n++) {
      const src = n * K;
      const d = w0 + Math.floor(n / BLOCK) * s.Kp * BLOCK + (n % BLOCK);
      for (let k = 0; k < K; k++) f[d + k * BLOCK] = Wt[src + k];
    }
  }

  run(handle: number, x: Float32Array, y: Float32Array): void {
    const s = this.slots[handle];
    const f = this.f32;
    const x0 = this.xAddr >> 2;
    f.set(x.subarray(0, s.K), x0);
    if (s.Kp > s.K) f.fill(0, x0 + s.K, x0 + s.Kp);
    this.fn(s.w, this.xAddr, s.b, this.yAddr, s.Kp, s.Np);
    const y0 = this.yAddr >> 2;
    y.set(f.subarray(y0, y0 + s.N));
  }
}

/** A WebAssembly SIMD mat-vec kernel, or null where WebAssembly SIMD is unavailable (or KILN_MATVEC=gemm). */
export function createMatVec(): MatVec | null {
  if (process.env.KILN_MATVEC === 'gemm') return null;
  const mod = compile();
  if (!mod) return null;
  return new WasmMatVec(mod, new WebAssembly.Memory({ initial: 1 }));
}

/** Whether the SIMD kernel can run here. */
export function matVecAvailable(): boolean { return compile() !== null; }

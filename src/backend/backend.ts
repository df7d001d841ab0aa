// The backend contract: primitive kernels over flat, contiguous, row-major typed arrays.
// Backends know nothing of tensors or autograd; src/tensor/ calls them and owns the graph.

/** The element types a tensor can hold. */
export type DType = 'float32' | 'float64' | 'int32';
/** The typed arrays of float tensors. */
export type FloatArray = Float32Array | Float64Array;
/** The typed arrays a tensor's storage can be. */
export type AnyArray = Float32Array | Float64Array | Int32Array;

/** Element-wise functions of one argument. `gelu` is the exact (erf) form, `gelu_tanh` the tanh approximation. */
export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'sign' | 'square' | 'reciprocal'
  | 'tanh' | 'sigmoid' | 'relu' | 'gelu' | 'gelu_tanh' | 'silu' | 'sin' | 'cos';

/** Element-wise functions of two arguments with NumPy broadcasting. Comparisons write 1 or 0. */
export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'max' | 'min'
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

export type ReduceOp = 'sum' | 'max' | 'min';

/**
 * Geometry of a 2-D convolution: input (N, C, H, W), weight (OC, C / groups, KH, KW), output (N, OC, OH, OW).
 * Output pixel (oh, ow) reads input row oh * strideH - padH + kh * dilationH (and likewise for columns); rows and
 * columns outside the input read zero, so padding on the far side (asymmetric 'same' padding) follows from OH, OW.
 */
export interface Conv2dShape {
  N: number; C: number; H: number; W: number; OC: number; KH: number; KW: number; OH: number; OW: number;
  strideH: number; strideW: number; padH: number; padW: number; dilationH: number; dilationW: number; groups: number;
}

/** Conv2dShape's fields in the order of kiln_conv2d_shape (native/kiln.h): how the native and wasm kernels receive it. */
export const CONV2D_FIELDS = ['N', 'C', 'H', 'W', 'OC', 'KH', 'KW', 'OH', 'OW', 'strideH', 'strideW', 'padH', 'padW',
  'dilationH', 'dilationW', 'groups'] as const;

/**
 * Geometry of a 2-D pooling window over P planes (N * C) of (H, W), output (P, OH, OW): window (oh, ow) covers
 * input rows oh * strideH - padH + kh * dilationH for kh < KH (likewise columns), skipping those outside the input.
 */
export interface Pool2dShape {
  P: number; H: number; W: number; OH: number; OW: number; KH: number; KW: number;
  strideH: number; strideW: number; padH: number; padW: number; dilationH: number; dilationW: number;
}

/** Pool2dShape's fields in the order of kiln_pool2d_shape (native/kiln.h). */
export const POOL2D_FIELDS = ['P', 'H', 'W', 'OH', 'OW', 'KH', 'KW', 'strideH', 'strideW', 'padH', 'padW', 'dilationH',
  'dilationW'] as const;

/**
 * Every backend implements this. Conventions (llm.c style): outputs first where it reads naturally,
 * then inputs, then dimensions; `d` prefixes gradient buffers; buffers never alias unless a method says so.
 * A backend may serve only some dtypes natively and delegate the rest to the reference backend.
 */
export interface Backend {
  readonly name: string;

  /** out[i] = value */
  fill(out: AnyArray, value: number): void;
  /** dst[i] = src[i], converting between dtypes (float to int truncates toward zero). Same length. */
  copy(src: AnyArray, dst: AnyArray): void;

  /** out = f(x); out may alias x. */
  unary(op: UnaryOp, x: FloatArray, out: FloatArray): void;
  /** dx = dy * f'(x); y = f(x) is given for ops whose derivative is cheaper from the output. */
  unaryBackward(op: UnaryOp, x: FloatArray, y: FloatArray, dy: FloatArray, dx: FloatArray): void;
  /** out = min(max(x, lo), hi) */
  clamp(x: FloatArray, lo: number, hi: number, out: FloatArray): void;

  /** out = a op b with broadcasting; shapes are already aligned to outShape's rank by the caller. */
  binary(op: BinaryOp, a: AnyArray, aShape: readonly number[], b: AnyArray, bShape: readonly number[],
    out: AnyArray, outShape: readonly number[]): void;
  /** out = cond != 0 ? a : b, all broadcast to outShape (same rank). */
  where(cond: AnyArray, condShape: readonly number[], a: AnyArray, aShape: readonly number[],
    b: AnyArray, bShape: readonly number[], out: AnyArray, outShape: readonly number[]): void;
  /** out = x broadcast to outShape (same rank, x's dims are 1 or equal). */
  expand(x: AnyArray, xShape: readonly number[], out: AnyArray, outShape: readonly number[]): void;

  /** x viewed as (outer, dim, inner); out (outer, inner) = reduction over dim. */
  reduce(op: ReduceOp, x: AnyArray, outer: number, dim: number, inner: number, out: AnyArray): void;
  /** x viewed as (outer, dim, inner); out (outer, inner) = index of the max (first on ties). */
  argmax(x: AnyArray, outer: number, dim: number, inner: number, out: Int32Array): void;

  /**
   * Batched GEMM: for b in [0, batch): C_b = alpha * op(A_b) @ op(B_b) + beta * C_b,
   * op(A_b) is (M, K), op(B_b) is (K, N), C_b is (M, N). A_b starts at b * strideA (0 broadcasts),
   * likewise B and C. transA means A_b is stored (K, M); transB means B_b is stored (N, K).
   * With beta = 0, C is written without being read (NaN in C does not leak).
   */
  gemm(transA: boolean, transB: boolean, batch: number, M: number, N: number, K: number, alpha: number,
    A: FloatArray, strideA: number, B: FloatArray, strideB: number, beta: number, C: FloatArray, strideC: number): void;

  /**
   * gemm on float32 buffers with op(A) and op(B) rounded to bfloat16 (round to nearest even) and float32
   * accumulation: the GEMM of mixed precision (kiln.autocast). Optional: without it the tensor layer rounds copies of
   * the inputs (roundBf16) and calls gemm, which gives the same products.
   */
  gemmBf16?(transA: boolean, transB: boolean, batch: number, M: number, N: number, K: number, alpha: number,
    A: Float32Array, strideA: number, B: Float32Array, strideB: number, beta: number, C: Float32Array, strideC: number): void;

  /** Row-wise softmax (or log-softmax) over the last axis: x, out (rows, cols). out may alias x. */
  softmax(x: FloatArray, rows: number, cols: number, log: boolean, out: FloatArray): void;
  /** Backward of softmax/log-softmax given its output y: dx (rows, cols). */
  softmaxBackward(y: FloatArray, dy: FloatArray, rows: number, cols: number, log: boolean, dx: FloatArray): void;

  /**
   * Layer norm over the last axis. x, out (rows, C); weight, bias (C) or null; mean, rstd (rows) are written
   * for the backward pass.
   */
  layerNorm(x: FloatArray, weight: FloatArray | null, bias: FloatArray | null, rows: number, C: number, eps: number,
    out: FloatArray, mean: FloatArray, rstd: FloatArray): void;
  /** dx (rows, C) is written; dweight, dbias (C) are accumulated into (+=) when not null. */
  layerNormBackward(dy: FloatArray, x: FloatArray, weight: FloatArray | null, mean: FloatArray, rstd: FloatArray,
    rows: number, C: number, dx: FloatArray, dweight: FloatArray | null, dbias: FloatArray | null): void;

  /** RMSNorm over the last axis: x, out (rows, C); weight (C) or null; rstd (rows) is written for backward. */
  rmsNorm(x: FloatArray, weight: FloatArray | null, rows: number, C: number, eps: number, out: FloatArray, rstd: FloatArray): void;
  /** dx (rows, C) is written; dweight (C) is accumulated into (+=) when not null. */
  rmsNormBackward(dy: FloatArray, x: FloatArray, weight: FloatArray | null, rstd: FloatArray, rows: number, C: number,
    dx: FloatArray, dweight: FloatArray | null): void;
  /**
   * Rotary position embedding (Hugging Face rotate_half): x, out (B, T, NH, HS), out may alias x; channel i < HS/2
   * pairs with i + HS/2 and turns by (starts[b] + t) * theta^(-2i/HS); starts (B). inverse turns back (backward).
   */
  rope(x: FloatArray, B: number, T: number, NH: number, HS: number, theta: number, starts: Int32Array, inverse: boolean,
    out: FloatArray): void;

  /**
   * Fused softmax cross-entropy from logits (N, V) and int targets (N). Writes losses (N) (0 where the target is
   * ignoreIndex) and lse (N), the log-sum-exp of each row, kept for the backward pass. With label smoothing s the
   * target distribution is (1 - s) one-hot + s / V.
   */
  crossEntropy(logits: FloatArray, targets: Int32Array, N: number, V: number, ignoreIndex: number,
    labelSmoothing: number, losses: FloatArray, lse: FloatArray): void;
  /** dlogits (N, V) = (softmax - target distribution) * dlosses[n]; rows with ignored targets get 0. */
  crossEntropyBackward(logits: FloatArray, targets: Int32Array, lse: FloatArray, dlosses: FloatArray, N: number,
    V: number, ignoreIndex: number, labelSmoothing: number, dlogits: FloatArray): void;

  /** x viewed as (outer, dim, inner); out (outer, idx.length, inner) = x[:, idx, :]. Embedding is outer = 1. */
  indexSelect(x: AnyArray, outer: number, dim: number, inner: number, idx: Int32Array, out: AnyArray): void;
  /** Reverse of indexSelect: dx[:, idx[j], :] += dout[:, j, :] (accumulates; repeated indices add up). */
  indexAdd(dout: FloatArray, outer: number, dim: number, inner: number, idx: Int32Array, dx: FloatArray): void;
  /** torch.gather along the middle axis: x (outer, dim, inner), idx and out (outer, k, inner). */
  gather(x: AnyArray, outer: number, dim: number, inner: number, idx: Int32Array, k: number, out: AnyArray): void;
  /** Reverse of gather: dx[o, idx[o,j,i], i] += dout[o, j, i]. */
  scatterAdd(dout: FloatArray, outer: number, dim: number, inner: number, idx: Int32Array, k: number, dx: FloatArray): void;

  /** out = x with its axes permuted: out.shape[i] = shape[perm[i]]. */
  permute(x: AnyArray, shape: readonly number[], perm: readonly number[], out: AnyArray): void;
  /** src (outer, srcDim, inner) -> dst (outer, len, inner) = src[:, start:start+len, :] */
  sliceCopy(src: AnyArray, outer: number, srcDim: number, inner: number, start: number, len: number, dst: AnyArray): void;
  /** dst (outer, dstDim, inner)[:, start:start+len, :] = src (outer, len, inner); the rest of dst is untouched. */
  sliceAssign(src: AnyArray, outer: number, dstDim: number, inner: number, start: number, len: number, dst: AnyArray): void;

  /**
   * Scaled dot-product attention, heads interleaved in the channel axis as a Linear layer writes them:
   * q (B, Tq, NH, HS), k and v (B, Tk, NH, HS), out (B, Tq, NH, HS), lse (B, NH, Tq) kept for backward.
   * With causal, query i (0-based among Tq) sees keys 0 .. i + (Tk - Tq), so a KV cache works with Tq < Tk.
   * ld is the row stride of q, k and v (NH * HS when omitted): with ld = 3C they are the column slices q, k, v
   * of one fused (B, T, 3C) projection (pass the buffer at offsets 0, C and 2C), read without copies.
   */
  attention(q: FloatArray, k: FloatArray, v: FloatArray, B: number, Tq: number, Tk: number, NH: number, HS: number,
    causal: boolean, scale: number, out: FloatArray, lse: FloatArray, ld?: number): void;
  /**
   * Gradients of attention; dq, dk, dv are written (not accumulated). ld is the row stride of q, k, v and of
   * dq, dk, dv, as in attention: dq, dk, dv may then interleave in one (B, T, 3C) buffer. dout and out are (B, Tq, C).
   */
  attentionBackward(dout: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray, out: FloatArray, lse: FloatArray,
    B: number, Tq: number, Tk: number, NH: number, HS: number, causal: boolean, scale: number,
    dq: FloatArray, dk: FloatArray, dv: FloatArray, ld?: number): void;

  /**
   * AdamW in place on n elements (PyTorch semantics): p -= lr * wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
   * p -= lr * (m / bc1) / (sqrt(v / bc2) + eps), where bc1 = 1 - b1^t, bc2 = 1 - b2^t are passed in.
   * Adam (L2 decay) is the caller adding wd * p to g first and passing weightDecay 0.
   */
  adamw(param: FloatArray, grad: FloatArray, m: FloatArray, v: FloatArray, lr: number, beta1: number, beta2: number,
    eps: number, weightDecay: number, bc1: number, bc2: number): void;

  /** 2-D convolution (NCHW): x (N, C, H, W), weight (OC, C / groups, KH, KW), bias (OC) or null, out (N, OC, OH, OW). */
  conv2d(x: FloatArray, weight: FloatArray, bias: FloatArray | null, s: Conv2dShape, out: FloatArray): void;
  /**
   * Gradients of conv2d from dy (N, OC, OH, OW): dx (N, C, H, W), dweight (OC, C / groups, KH, KW) and dbias (OC)
   * are written (not accumulated) where not null.
   */
  conv2dBackward(dy: FloatArray, x: FloatArray, weight: FloatArray, s: Conv2dShape, dx: FloatArray | null,
    dweight: FloatArray | null, dbias: FloatArray | null): void;
  /**
   * Max pooling: x (P, H, W), out (P, OH, OW); indices (P, OH, OW) get the flat position h * W + w of each maximum
   * within its plane (the first on ties; NaN wins), as PyTorch's return_indices. A window with no input reads -Infinity.
   */
  maxPool2d(x: FloatArray, s: Pool2dShape, out: FloatArray, indices: Int32Array): void;
  /** dx (P, H, W) is written: zero except dx[p, indices[p, o]] += dy[p, o]. */
  maxPool2dBackward(dy: FloatArray, indices: Int32Array, s: Pool2dShape, dx: FloatArray): void;
  /**
   * Average pooling as PyTorch's avg_pool2d (dilation 1): the divisor is divisorOverride when non-zero, else the
   * window clipped to the padded input (countIncludePad) or to the input itself. x (P, H, W), out (P, OH, OW).
   */
  avgPool2d(x: FloatArray, s: Pool2dShape, countIncludePad: boolean, divisorOverride: number, out: FloatArray): void;
  /** dx (P, H, W) is written: each dy spread evenly (by the same divisor) over its window. */
  avgPool2dBackward(dy: FloatArray, s: Pool2dShape, countIncludePad: boolean, divisorOverride: number, dx: FloatArray): void;
  /** Per-channel mean and biased variance of x (N, C, HW) over N and HW: mean, variance (C). */
  batchNormStats(x: FloatArray, N: number, C: number, HW: number, mean: FloatArray, variance: FloatArray): void;
  /** out (N, C, HW) = (x - mean[c]) * invstd[c] * weight[c] + bias[c]; weight, bias (C) or null (1 and 0). */
  batchNorm(x: FloatArray, mean: FloatArray, invstd: FloatArray, weight: FloatArray | null, bias: FloatArray | null,
    N: number, C: number, HW: number, out: FloatArray): void;
  /**
   * Gradients of batchNorm from dy (N, C, HW); with batchStats, mean and invstd came from x itself, so dx carries
   * their gradient too: dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)); without, dx = dy * w * invstd.
   * dx (N, C, HW), dweight = sum(dy * xhat), dbias = sum(dy) (C) are written where not null.
   */
  batchNormBackward(dy: FloatArray, x: FloatArray, mean: FloatArray, invstd: FloatArray, weight: FloatArray | null,
    N: number, C: number, HW: number, batchStats: boolean, dx: FloatArray | null, dweight: FloatArray | null,
    dbias: FloatArray | null): void;

  /**
   * One LSTM time step, pointwise part (gate order i, f, g, o as in PyTorch). gates (B, 4H): pre-activations in,
   * activations out (in place); cPrev (B, H); c, h (B, H) written: c = f * cPrev + i * g, h = o * tanh(c).
   */
  lstmCell(gates: FloatArray, cPrev: FloatArray, B: number, H: number, c: FloatArray, h: FloatArray): void;
  /**
   * Backward of lstmCell: gates (B, 4H) activations; cPrev, c, dh (B, H); dc (B, H) is dLoss/dc on entry and
   * dLoss/dcPrev on return (in place); dgates (B, 4H) written (gradient of the pre-activations).
   */
  lstmCellBackward(gates: FloatArray, cPrev: FloatArray, c: FloatArray, dh: FloatArray, dc: FloatArray, B: number,
    H: number, dgates: FloatArray): void;
  /**
   * One GRU time step, pointwise part (gate order r, z, n as in PyTorch). gx (B, 3H) = x W_ih^T + b_ih in,
   * activations r, z, n out (in place); gh (B, 3H) = hPrev W_hh^T + b_hh; hPrev (B, H); h (B, H) written:
   * n = tanh(gx_n + r * gh_n), h = (1 - z) * n + z * hPrev.
   */
  gruCell(gx: FloatArray, gh: FloatArray, hPrev: FloatArray, B: number, H: number, h: FloatArray): void;
  /**
   * Backward of gruCell: gates (B, 3H) activations; gh (B, 3H); hPrev, dh (B, H). Written: dgx, dgh (B, 3H) and
   * dhPrev (B, H) = dh * z, the direct part (the caller adds dgh @ W_hh).
   */
  gruCellBackward(gates: FloatArray, gh: FloatArray, hPrev: FloatArray, dh: FloatArray, B: number, H: number,
    dgx: FloatArray, dgh: FloatArray, dhPrev: FloatArray): void;

  /**
   * One pre-norm GPT-2 block for a decoding step, fused (optional: without it the block is composed from the
   * kernels above, which is also its reference). x (A, C) holds one new token of each of A sequences and is updated
   * in place; weights are the block's 12 parameters in GPTBlockWeights order (Conv1D weights stored (in, out); a
   * bias or norm parameter may be null); keys and values (cache rows, P, C), rows and starts (A) as cachedAttention.
   * Must give bitwise the composed result. Returns false when it does not take these arrays (a dtype it lacks).
   */
  gptBlockDecode?(x: FloatArray, weights: readonly (FloatArray | null)[], keys: FloatArray, values: FloatArray,
    rows: Int32Array, starts: Int32Array, A: number, C: number, NH: number, P: number, eps: number): boolean;
  /**
   * A whole GPT-2 model's decoding step, fused (optional: without it the model decodes block by block): logits
   * (A, V) for one new token of each of A sequences (tokens, at positions starts of cache rows rows); wte (V, C),
   * wpe (P, C); blocks: each block's 12 weights as gptBlockDecode takes them; keys and values: each layer's cache
   * (cache rows, P, C), written at the new positions; the final norm's weight and bias (or null); head (V, C). Must
   * give bitwise the block-by-block result. Returns false when it does not take this step (then decode block by
   * block): a dtype it lacks, or more sequences or smaller products than it computes that way. Entries may continue
   * one cache row at consecutive positions (a prompt); with headRows (ascending entry indices), logits holds only
   * those entries' rows, (headRows.length, V).
   */
  gptDecode?(logits: FloatArray, tokens: Int32Array, rows: Int32Array, starts: Int32Array, wte: FloatArray,
    wpe: FloatArray, blocks: readonly (readonly (FloatArray | null)[])[], keys: readonly FloatArray[],
    values: readonly FloatArray[], lnfWeight: FloatArray | null, lnfBias: FloatArray | null, head: FloatArray,
    A: number, C: number, NH: number, P: number, V: number, eps: number,
    panels?: readonly (FloatArray | null)[] | null, headRows?: Int32Array | null): boolean;
  /**
   * Packs a weight for batched decoding steps (optional, with panelsApply): dst (panelsSize(N, K)) gets op(B) (K, N)
   * as (ceil(N / 16), K, 16) column panels, zero past N; B is (K, N), or (N, K) with transB. gptDecode's `panels`
   * takes them (4 per block: attn, proj, fc and fc2 weights, then the head) and must give bitwise the same logits.
   */
  packPanels?(dst: Float32Array, B: Float32Array, transB: boolean, N: number, K: number): void;
  /** Whether packed panels are used for products of M rows by K (B stored (N, K) with transB). */
  panelsApply?(transB: boolean, M: number, K: number): boolean;
  /**
   * One Llama decoder layer for a decoding step, fused (optional, as gptBlockDecode): weights are the layer's 9
   * parameters in LlamaBlockWeights order (projections stored (out, in); the norm weights may be null); keys and
   * values (cache rows, P, KVH * C / NH). Must give bitwise the composed result; false when it does not take these arrays.
   */
  llamaBlockDecode?(x: FloatArray, weights: readonly (FloatArray | null)[], keys: FloatArray, values: FloatArray,
    rows: Int32Array, starts: Int32Array, A: number, C: number, NH: number, KVH: number, hidden: number, P: number,
    eps: number, theta: number): boolean;
  /**
   * One sampling draw from logits (V) (optional: the reference is src/models/sampling.ts, which it must mirror
   * exactly): scaled by invTemperature, softmax into scratch (V), top-k (0 off), then the token where u in [0, 1)
   * of the kept mass falls; when top-p (1 off) rejects it, the token where u2 in [0, 1) falls in the nucleus. -1
   * when no logit is finite; null when it does not take these arrays.
   */
  sample?(logits: FloatArray, V: number, invTemperature: number, topK: number, topP: number, u: number, u2: number,
    scratch: FloatArray): number | null;
  /** Gives memory the backend keeps for reuse back to the system (optional: backends that keep none omit it). */
  releaseMemory?(): void;
  /** Told the size of every fresh (not pooled) tensor buffer, so the host can reclaim dropped ones sooner (optional). */
  noteFreshMemory?(bytes: number): void;
  /** Told of every big fresh buffer before anything touches it, so the host can back it with huge pages (optional). */
  adviseFresh?(buffer: ArrayBuffer): void;
  /**
   * A buffer of n elements in the backend's own memory, which its kernels use in place instead of copying (optional;
   * undefined means "use an ordinary typed array"). Contents are unspecified. The backend frees it once it is
   * unreachable (the wasm backend: tensor storage inside the module's shared memory).
   */
  allocate?(dtype: DType, n: number): AnyArray | undefined;
  /** Whether buf is a whole buffer that allocate returned, which the tensor layer may pool and reuse (optional). */
  ownsWhole?(buf: AnyArray): boolean;
}

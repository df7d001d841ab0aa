// Recurrent layers: RNN (tanh or relu), LSTM and GRU, stacked and optionally bidirectional, with PyTorch's
// parameter names (weight_ih_l0, bias_hh_l1_reverse, ...), gate order and initialisation, so state dicts move
// both ways. Each layer and direction is one input-projection GEMM over all steps (`linear`) followed by one
// whole-sequence op (src/tensor/ops/rnn.ts) that runs the time loop and its backward.

import type { DType } from '../../backend/index.js';
import { zeros } from '../../tensor/creation.js';
import { linear } from '../../tensor/ops/matmul.js';
import { dropout } from '../../tensor/ops/nn-ops.js';
import { gruSequenceOwned, lstmSequenceOwned, rnnSequenceOwned, type RnnNonlinearity } from '../../tensor/ops/rnn.js';
import { cat } from '../../tensor/ops/shape-ops.js';
import type { Generator } from '../../tensor/random.js';
import { fmt } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { uniform_ } from '../init.js';
import { Module, Parameter } from '../module.js';

/** Options shared by RNN, LSTM and GRU (PyTorch's constructor arguments in camelCase). */
export interface RNNBaseOptions {
  /** Stacked layers (default 1). */
  numLayers?: number;
  /** Whether the layers have bias_ih and bias_hh (default true). */
  bias?: boolean;
  /** Input and output as (B, T, features) instead of (T, B, features) (default false). States stay (layers, B, H). */
  batchFirst?: boolean;
  /** Dropout probability on the outputs of every layer but the last, in training mode (default 0). */
  dropout?: number;
  /** Run a second direction from the end of the sequence; outputs concatenate both (default false). */
  bidirectional?: boolean;
  /** Parameter dtype (default float32). */
  dtype?: DType;
  /** Generator for the dropout masks (default: the global one). */
  generator?: Generator;
}

/** Options of nn.RNN: the shared ones plus the nonlinearity. */
export interface RNNOptions extends RNNBaseOptions {
  /** 'tanh' (default) or 'relu'. */
  nonlinearity?: RnnNonlinearity;
}

/** Which recurrent layer a module is. */
export type Kind = 'RNN' | 'LSTM' | 'GRU';
interface LayerResult { output: Tensor; h: Tensor; c: Tensor | null }

/** What RNN, LSTM and GRU share: parameters, shape checks, and the loop over layers and directions. */
abstract class RNNBase extends Module {
  readonly numLayers: number;
  readonly bias: boolean;
  readonly batchFirst: boolean;
  readonly dropout: number;
  readonly bidirectional: boolean;
  private readonly generator: Generator | undefined;

  protected constructor(readonly kind: Kind, private readonly gates: number, readonly inputSize: number,
    readonly hiddenSize: number, options: RNNBaseOptions) {
    super();
    for (const [n, v] of [['inputSize', inputSize], ['hiddenSize', hiddenSize], ['numLayers', options.numLayers ?? 1]] as const) {
      if (!Number.isInteger(v) || v <= 0) throw new Error(`${kind}: ${n} must be a positive integer, got ${String(v)}`);
    }
    const p = options.dropout ?? 0;
    if (!(typeof p === 'number' && p >= 0 && p < 1)) throw new Error(`${kind}: dropout must be a number in [0, 1), got ${String(p)}`);
    this.numLayers = options.numLayers ?? 1;
    this.bias = options.bias ?? true;
    this.batchFirst = options.batchFirst ?? false;
    this.dropout = p;
    this.bidirectional = options.bidirectional ?? false;
    this.generator = options.generator;
    this.makeParameters(options.dtype ?? 'float32');
  }

  /** 1 or 2. */
  get numDirections(): number { return this.bidirectional ? 2 : 1; }

  private makeParameters(dtype: DType): void {
    // torch.nn.RNNBase.reset_parameters: every weight and bias uniform in +-1/sqrt(hidden), in parameter order.
    const k = 1 / Math.sqrt(this.hiddenSize);
    const GH = this.gates * this.hiddenSize;
    const own = this as unknown as Record<string, Parameter>;
    for (let l = 0; l < this.numLayers; l++) {
      const inSize = l === 0 ? this.inputSize : this.hiddenSize * this.numDirections;
      for (let d = 0; d < this.numDirections; d++) {
        const sfx = suffix(l, d);
        const shapes: [string, number[]][] = [[`weight_ih${sfx}`, [GH, inSize]], [`weight_hh${sfx}`, [GH, this.hiddenSize]]];
        if (this.bias) shapes.push([`bias_ih${sfx}`, [GH]], [`bias_hh${sfx}`, [GH]]);
        for (const [name, shape] of shapes) own[name] = new Parameter(uniform_(zeros(shape, { dtype }), -k, k));
      }
    }
  }

  /** The parameter called name (weight_ih_l0, ...), or null for an absent bias. */
  protected param(name: string): Parameter | null {
    const v = (this as unknown as Record<string, unknown>)[name];
    return v instanceof Parameter ? v : null;
  }

  /** Checks x and an initial state, and returns x time-major and batched with the state shape it needs. */
  protected prepare(x: Tensor): { xt: Tensor; batched: boolean; stateShape: number[] } {
    const w = this.param('weight_ih_l0')!;
    if (x.ndim !== 2 && x.ndim !== 3) {
      const layout = this.batchFirst ? '(B, T, inputSize)' : '(T, B, inputSize)';
      throw new Error(`${this.kind}: input must be 3-D ${layout} or 2-D (T, inputSize), got ${fmt(x.shape)}`);
    }
    if (x.shape[x.ndim - 1] !== this.inputSize) {
      throw new Error(`${this.kind}: input has ${x.shape[x.ndim - 1]} features per step, expected inputSize ${this.inputSize} (shape ${fmt(x.shape)})`);
    }
    if (x.dtype !== w.dtype) throw new Error(`${this.kind}: input is ${x.dtype} but the parameters are ${w.dtype}`);
    const batched = x.ndim === 3;
    const xt = !batched ? x.unsqueeze(1) : this.batchFirst ? x.transpose(0, 1) : x;
    const LD = this.numLayers * this.numDirections;
    return { xt, batched, stateShape: batched ? [LD, xt.shape[1], this.hiddenSize] : [LD, this.hiddenSize] };
  }

  /** A given initial state, checked and made (layers * directions, B, H); zeros when none is given. */
  protected state(s: Tensor | null | undefined, name: string, shape: number[], batched: boolean, dtype: DType): Tensor {
    if (s === null || s === undefined) return zeros(batched ? shape : [shape[0], 1, shape[1]], { dtype });
    if (s.ndim !== shape.length || s.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${this.kind}: ${name} must have shape ${fmt(shape)} (layers * directions, ${batched ? 'batch, ' : ''}hidden), got ${fmt(s.shape)}`);
    }
    if (s.dtype !== dtype) throw new Error(`${this.kind}: ${name} is ${s.dtype} but the input is ${dtype}`);
    return batched ? s : s.unsqueeze(1);
  }

  /** Runs every layer and direction over xt (T, B, in); h0 (and c0) (L*D, B, H). */
  protected run(xt: Tensor, h0: Tensor, c0: Tensor | null): { output: Tensor; h: Tensor; c: Tensor | null } {
    const [B, H] = [xt.shape[1], this.hiddenSize];
    let input = xt;
    const hs: Tensor[] = [];
    const cs: Tensor[] = [];
    for (let l = 0; l < this.numLayers; l++) {
      const outs: Tensor[] = [];
      for (let d = 0; d < this.numDirections; d++) {
        const i = l * this.numDirections + d;
        const h = h0.narrow(0, i, 1).reshape([B, H]);
        const c = c0 ? c0.narrow(0, i, 1).reshape([B, H]) : null;
        const r = this.direction(input, suffix(l, d), d === 1, h, c);
        outs.push(r.output);
        hs.push(r.h);
        if (r.c) cs.push(r.c);
      }
      input = outs.length === 1 ? outs[0] : cat(outs, 2);
      if (this.dropout > 0 && this.training && l < this.numLayers - 1) input = dropout(input, this.dropout, true, this.generator);
    }
    return { output: input, h: cat(hs, 0), c: c0 ? cat(cs, 0) : null };
  }

  /**
   * One layer in one direction: the input projection for every step (one GEMM), then the recurrence, which takes
   * over the projection's buffer. LSTM and RNN add b_hh to every step's pre-activation, so it folds into the
   * projection's bias; GRU's b_hn sits inside r * (...), so GRU keeps b_hh in the recurrence.
   */
  private direction(x: Tensor, sfx: string, reverse: boolean, h0: Tensor, c0: Tensor | null): LayerResult {
    const bih = this.param(`bias_ih${sfx}`);
    const bhh = this.param(`bias_hh${sfx}`);
    const whh = this.param(`weight_hh${sfx}`)!;
    const fold = this.kind !== 'GRU' && bih !== null && bhh !== null;
    const xproj = linear(x, this.param(`weight_ih${sfx}`)!, fold ? bih.add(bhh) : bih);
    const T = x.shape[0];
    const last = reverse ? 0 : T - 1;
    if (this.kind === 'LSTM') {
      const y = lstmSequenceOwned(xproj, whh, null, h0, c0!, reverse); // (T + 1, B, H)
      return { output: y.narrow(0, 0, T), h: y.narrow(0, last, 1), c: y.narrow(0, T, 1) };
    }
    const y = this.kind === 'GRU' ? gruSequenceOwned(xproj, whh, bhh, h0, reverse)
      : rnnSequenceOwned(xproj, whh, fold ? null : bhh, h0, (this as unknown as RNN).nonlinearity, reverse);
    return { output: y, h: y.narrow(0, last, 1), c: null };
  }

  /** The output back in the caller's layout: batch first, time first, or unbatched. */
  protected finish(output: Tensor, batched: boolean): Tensor {
    if (!batched) return output.squeeze(1);
    return this.batchFirst ? output.transpose(0, 1) : output;
  }
}

function suffix(layer: number, direction: number): string { return `_l${layer}${direction === 1 ? '_reverse' : ''}`; }

/**
 * Elman RNN, h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), as torch.nn.RNN.
 * `const [out, hN] = new nn.RNN(8, 16, { numLayers: 2 }).forward(x)`: x (T, B, 8), out (T, B, 16), hN (2, B, 16).
 */
export class RNN extends RNNBase {
  readonly nonlinearity: RnnNonlinearity;

  constructor(inputSize: number, hiddenSize: number, options: RNNOptions = {}) {
    super('RNN', 1, inputSize, hiddenSize, options);
    const act = options.nonlinearity ?? 'tanh';
    if (act !== 'tanh' && act !== 'relu') throw new Error(`RNN: nonlinearity must be 'tanh' or 'relu', got '${String(act)}'`);
    this.nonlinearity = act;
  }

  /** x (T, B, in), or (B, T, in) with batchFirst, or (T, in); h0 (layers * directions, B, H). Returns [output, hN]. */
  forward(x: Tensor, h0?: Tensor | null): [Tensor, Tensor] {
    const { xt, batched, stateShape } = this.prepare(x);
    const r = this.run(xt, this.state(h0, 'h0', stateShape, batched, x.dtype), null);
    return [this.finish(r.output, batched), batched ? r.h : r.h.squeeze(1)];
  }
}

/**
 * Long short-term memory, as torch.nn.LSTM (gates i, f, g, o).
 * `const [out, [hN, cN]] = new nn.LSTM(128, 256, { numLayers: 2, batchFirst: true }).forward(x)`:
 * x (B, T, 128), out (B, T, 256), hN and cN (2, B, 256).
 */
export class LSTM extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, options: RNNBaseOptions = {}) {
    super('LSTM', 4, inputSize, hiddenSize, options);
  }

  /** x as for RNN; state [h0, c0], each (layers * directions, B, H). Returns [output, [hN, cN]]. */
  forward(x: Tensor, state?: readonly [Tensor, Tensor] | null): [Tensor, [Tensor, Tensor]] {
    if (state !== null && state !== undefined && (!Array.isArray(state) || state.length !== 2)) {
      throw new Error('LSTM: the initial state must be a pair [h0, c0] of tensors');
    }
    const { xt, batched, stateShape } = this.prepare(x);
    const h0 = this.state(state?.[0], 'h0', stateShape, batched, x.dtype);
    const c0 = this.state(state?.[1], 'c0', stateShape, batched, x.dtype);
    const r = this.run(xt, h0, c0);
    const unb = (t: Tensor): Tensor => (batched ? t : t.squeeze(1));
    return [this.finish(r.output, batched), [unb(r.h), unb(r.c!)]];
  }
}

/**
 * Gated recurrent unit, as torch.nn.GRU (gates r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn))).
 * `const [out, hN] = new nn.GRU(8, 16, { bidirectional: true }).forward(x)`: out (T, B, 32), hN (2, B, 16).
 */
export class GRU extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, options: RNNBaseOptions = {}) {
    super('GRU', 3, inputSize, hiddenSize, options);
  }

  /** x as for RNN; h0 (layers * directions, B, H). Returns [output, hN]. */
  forward(x: Tensor, h0?: Tensor | null): [Tensor, Tensor] {
    const { xt, batched, stateShape } = this.prepare(x);
    const r = this.run(xt, this.state(h0, 'h0', stateShape, batched, x.dtype), null);
    return [this.finish(r.output, batched), batched ? r.h : r.h.squeeze(1)];
  }
}

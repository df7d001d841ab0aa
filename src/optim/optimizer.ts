// The optimizer base: parameter groups with per-group hyper-parameters, per-parameter state, zeroGrad,
// and a state dict in PyTorch's shape (parameters referred to by their index across groups).

import type { Tensor } from '../tensor/tensor.js';
import { clearGrad } from '../tensor/autograd.js';
import { markWeightsChanged } from '../tensor/storage.js';

/** Per-group hyper-parameters (lr, weightDecay, and each optimizer's own). */
export type ParamGroupOptions = Record<string, unknown> & { lr?: number; weightDecay?: number };
/** A parameter group as given to an optimizer: its parameters and any hyper-parameters that differ from the defaults. */
export interface ParamGroupInput extends ParamGroupOptions { params: Iterable<Tensor> }
/** What an optimizer takes: parameters (model.parameters()) or a list of parameter groups. */
export type ParamsInput = Iterable<Tensor> | ParamGroupInput[];

/** A parameter group as the optimizer holds it: parameters, lr, weightDecay and the optimizer's other settings. */
export interface ParamGroup extends Record<string, unknown> {
  params: Tensor[];
  lr: number;
  weightDecay: number;
  /** The lr a schedule scales; set from lr when the group is made. */
  initialLr: number;
}

/** The state an optimizer keeps per parameter (Adam's exp_avg, exp_avg_sq and step; SGD's momentum_buffer). */
export type ParamState = Record<string, Tensor | number>;

/** An optimizer's state in PyTorch's shape: per-parameter state by index across groups, and the groups' settings. */
export interface OptimizerStateDict {
  state: Record<string, ParamState>;
  paramGroups: Record<string, unknown>[];
}

/** The base of the optimizers: parameter groups, per-parameter state, zeroGrad(), step() and a state dict. */
export abstract class Optimizer {
  readonly paramGroups: ParamGroup[];
  protected state = new Map<Tensor, ParamState>();

  constructor(params: ParamsInput, defaults: ParamGroupOptions & { lr: number }, name: string) {
    const list = [...(params as Iterable<Tensor | ParamGroupInput>)];
    const groups: ParamGroupInput[] = list.length > 0 && isGroup(list[0])
      ? (list as ParamGroupInput[])
      : [{ params: list as Tensor[] }];
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g, gi) => {
      if (!isGroup(g)) throw new Error(`${name}: parameter group ${gi} must be an object with a params list`);
      const params = [...g.params];
      for (const p of params) {
        if (seen.has(p)) throw new Error(`${name}: a parameter appears in more than one group (group ${gi})`);
        if (p.dtype === 'int32') throw new Error(`${name}: cannot optimize an int32 tensor (group ${gi})`);
        seen.add(p);
      }
      const merged = { ...defaults, ...g, params } as ParamGroup;
      if (!(merged.lr >= 0)) throw new Error(`${name}: lr must be a non-negative number, got ${String(merged.lr)}`);
      merged.weightDecay = merged.weightDecay ?? 0;
      merged.initialLr = merged.lr;
      return merged;
    });
    if (seen.size === 0) throw new Error(`${name}: got an empty parameter list`);
    // Every optimizer's step (a subclass's too) notes that weights changed, so copies derived from them are rebuilt.
    const step = this.step;
    this.step = function stepAndMark(this: Optimizer): void {
      try {
        step.call(this);
      } finally {
        markWeightsChanged();
      }
    };
  }

  /** Every parameter across groups, in order. */
  params(): Tensor[] { return this.paramGroups.flatMap((g) => g.params); }

  /**
   * Clears gradients: sets them to null, as PyTorch's default set_to_none. The buffers are kept for each
   * parameter's next gradient (fresh memory is slow), so clone() a gradient you want to keep past this call.
   */
  zeroGrad(): void { for (const p of this.params()) clearGrad(p); }

  /** One update of every parameter that has a gradient. */
  abstract step(): void;

  /** The per-parameter state and the groups' settings, parameters named by index (the state tensors are shared, not copied). */
  stateDict(): OptimizerStateDict {
    const index = new Map(this.params().map((p, i) => [p, i]));
    const state: Record<string, ParamState> = {};
    for (const [p, s] of this.state) state[String(index.get(p))] = { ...s };
    const paramGroups = this.paramGroups.map((g) => {
      const { params, ...rest } = g;
      return { ...rest, params: params.map((p) => index.get(p)) };
    });
    return { state, paramGroups };
  }

  /** Restores state saved by stateDict from an optimizer over the same parameters (same order and shapes). */
  loadStateDict(sd: OptimizerStateDict): void {
    const params = this.params();
    if (!sd || !Array.isArray(sd.paramGroups) || typeof sd.state !== 'object') {
      throw new Error('loadStateDict: expected an optimizer state dict with state and paramGroups');
    }
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new Error(`loadStateDict: the saved optimizer has ${sd.paramGroups.length} parameter groups, this one has ${this.paramGroups.length}`);
    }
    sd.paramGroups.forEach((g, i) => {
      const n = (g.params as unknown[] | undefined)?.length;
      if (n !== this.paramGroups[i].params.length) {
        throw new Error(`loadStateDict: group ${i} has ${String(n)} parameters saved but ${this.paramGroups[i].params.length} here`);
      }
    });
    const next = new Map<Tensor, ParamState>();
    for (const [k, s] of Object.entries(sd.state)) {
      const p = params[Number(k)];
      if (!p) throw new Error(`loadStateDict: state for parameter ${k}, but there are only ${params.length}`);
      const copy: ParamState = {};
      for (const [name, v] of Object.entries(s)) {
        if (typeof v === 'number') { copy[name] = v; continue; }
        if (v.size !== p.size) throw new Error(`loadStateDict: state '${name}' of parameter ${k} has ${v.size} elements, the parameter ${p.size}`);
        copy[name] = v.clone().detach();
      }
      next.set(p, copy);
    }
    this.state = next;
    sd.paramGroups.forEach((g, i) => {
      const { params: _ignored, ...rest } = g;
      Object.assign(this.paramGroups[i], rest);
    });
  }
}

function isGroup(x: unknown): x is ParamGroupInput {
  return typeof x === 'object' && x !== null && 'params' in x && !('storage' in x);
}

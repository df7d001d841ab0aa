// Module: the base of every layer and model. Child modules and parameters are found from properties, so a
// class just assigns them (`fc1 = new nn.Linear(4, 16)`) and gets PyTorch-style dotted names for free.

import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../backend/index.js';
import { fmt } from '../tensor/shape.js';
import { markWeightsChanged } from '../tensor/storage.js';

/** A tensor that a Module owns and an optimizer updates; requiresGrad is on unless frozen. */
export class Parameter extends Tensor {
  constructor(data: Tensor, requiresGrad = true) {
    super(data.storage, data.shape, false);
    this.requiresGrad = requiresGrad;
  }
}

/**
 * Layer classes whose forward keeps no reference to any tensor it makes once it returns (Kiln's own layers). A
 * Sequential made only of these lets backward recycle the memory of its intermediate activations. Exact classes:
 * a subclass a user writes may store what its forward computes, so it is not covered.
 */
const activationsStayInside = new WeakSet<abstract new (...args: never[]) => Module>();

/** Declares that these exact layer classes keep no reference to a tensor their forward made (see above). */
export function declareActivationsStayInside(...classes: (abstract new (...args: never[]) => Module)[]): void {
  for (const c of classes) activationsStayInside.add(c);
}

/** Whether m and every module below it are of classes declared with declareActivationsStayInside. */
export function keepsNoActivations(m: Module): boolean {
  const cls = m.constructor as abstract new (...args: never[]) => Module;
  return activationsStayInside.has(cls) && m.namedChildren().every(([, c]) => keepsNoActivations(c));
}

/** A model's tensors by dotted name ('fc1.weight'), as PyTorch's state_dict. */
export type StateDict = Record<string, Tensor>;

/** Options of Module.loadStateDict. */
export interface LoadOptions {
  /** Require exactly the module's names (default true); false ignores missing and unexpected entries. */
  strict?: boolean;
}

/** What Module.loadStateDict did not match: names the module has but the dict lacks, and the reverse. */
export interface LoadResult { missing: string[]; unexpected: string[] }

/** The base of every layer and model, as torch.nn.Module: subclass it, assign layers and Parameters as properties, and write forward(). Call `model.forward(x)` (a Module is not callable). */
export class Module {
  /** True in training mode (dropout active); switch with train() and eval(). */
  training = true;
  private buffers_ = new Map<string, Tensor>();

  /** Direct children as [name, module] pairs, in property order. */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [k, v] of Object.entries(this)) if (v instanceof Module) out.push([k, v]);
    return out;
  }

  /** Parameters held directly by this module (not by children). */
  protected ownParameters(): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [k, v] of Object.entries(this)) if (v instanceof Parameter) out.push([k, v]);
    return out;
  }

  /** Every module below this one, itself first, with dotted names ('' for itself). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    const stack: [string, Module][] = [];
    for (const [k, m] of this.namedChildren()) stack.push([prefix ? `${prefix}.${k}` : k, m]);
    for (const [name, m] of stack) out.push(...m.namedModules(name));
    return out;
  }

  /** This module and every module below it, depth first. */
  modules(): Module[] { return this.namedModules().map(([, m]) => m); }

  /**
   * Every parameter with its dotted name, e.g. ['fc1.weight', Parameter]. A parameter shared by two modules
   * (tied weights) is listed once, under its first name.
   */
  namedParameters(): [string, Parameter][] {
    const seen = new Set<Parameter>();
    const out: [string, Parameter][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [k, p] of m.ownParameters()) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([prefix ? `${prefix}.${k}` : k, p]);
      }
    }
    return out;
  }

  /** Every parameter of this module and its children (shared ones once). */
  parameters(): Parameter[] { return this.namedParameters().map(([, p]) => p); }

  /** Parameters that will receive gradients (not frozen). */
  trainableParameters(): Parameter[] { return this.parameters().filter((p) => p.requiresGrad); }

  /** Total number of parameter elements (only trainable ones when asked). */
  numParameters(options: { trainableOnly?: boolean } = {}): number {
    const ps = options.trainableOnly ? this.trainableParameters() : this.parameters();
    return ps.reduce((n, p) => n + p.size, 0);
  }

  /** Registers a non-trainable tensor that is saved in the state dict (e.g. running statistics). */
  registerBuffer(name: string, t: Tensor): void { this.buffers_.set(name, t); }

  /** This module's own buffer of that name (not a child's), or undefined. */
  protected buffer(name: string): Tensor | undefined { return this.buffers_.get(name); }

  /** Buffers (non-trainable state saved in the state dict) by dotted name. */
  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [k, b] of m.buffers_) out.push([prefix ? `${prefix}.${k}` : k, b]);
    }
    return out;
  }

  /** Parameters and buffers by dotted name; the tensors share storage with the module. */
  stateDict(): StateDict {
    const sd: StateDict = {};
    for (const [k, p] of this.namedParameters()) sd[k] = p.detach();
    for (const [k, b] of this.namedBuffers()) sd[k] = b.detach();
    return sd;
  }

  /**
   * Copies values into the module's tensors in place (optimizers keep their references). Mis-shaped entries
   * always fail; with strict (default), missing and unexpected names fail too. Everything is checked before
   * anything is written, so a failed load changes nothing.
   */
  loadStateDict(sd: StateDict, options: LoadOptions = {}): LoadResult {
    const strict = options.strict ?? true;
    const own = new Map<string, Tensor>([...this.namedParameters(), ...this.namedBuffers()]);
    // A tied parameter appears once in namedParameters; accept its other names too.
    const aliases = this.parameterAliases();
    const missing = [...own.keys()].filter((k) => !(k in sd));
    const unexpected = Object.keys(sd).filter((k) => !own.has(k) && !aliases.has(k));
    const problems: string[] = [];
    for (const [k, src] of Object.entries(sd)) {
      const dst = own.get(k) ?? own.get(aliases.get(k) ?? '');
      if (!dst) continue;
      if (!(src instanceof Tensor)) problems.push(`'${k}' is not a Tensor`);
      else if (src.shape.length !== dst.shape.length || src.shape.some((d, i) => d !== dst.shape[i])) {
        problems.push(`'${k}' has shape ${fmt(src.shape)} but the module expects ${fmt(dst.shape)}`);
      }
    }
    if (strict && missing.length) problems.push(`missing: ${missing.map((k) => `'${k}'`).join(', ')}`);
    if (strict && unexpected.length) problems.push(`unexpected: ${unexpected.map((k) => `'${k}'`).join(', ')}`);
    if (problems.length) throw new Error(`loadStateDict: ${problems.join('; ')}`);
    for (const [k, src] of Object.entries(sd)) {
      const dst = own.get(k) ?? own.get(aliases.get(k) ?? '');
      if (!dst) continue;
      if (src.dtype === dst.dtype) dst.storage.set(src.storage);
      else for (let i = 0; i < dst.size; i++) dst.storage[i] = src.storage[i];
    }
    markWeightsChanged();
    return { missing, unexpected };
  }

  /** Second and later names of tied parameters, mapped to the name namedParameters uses. */
  private parameterAliases(): Map<string, string> {
    const first = new Map<Parameter, string>();
    const aliases = new Map<string, string>();
    for (const [prefix, m] of this.namedModules()) {
      for (const [k, p] of m.ownParameters()) {
        const name = prefix ? `${prefix}.${k}` : k;
        const f = first.get(p);
        if (f === undefined) first.set(p, name);
        else aliases.set(name, f);
      }
    }
    return aliases;
  }

  /** Training mode (or evaluation mode with false) for this module and all below it. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Evaluation mode (dropout off): the same as train(false). */
  eval(): this { return this.train(false); }

  /** Stops gradients and updates for every parameter below this module (all of them when no patterns). */
  freeze(): this {
    for (const p of this.parameters()) p.requiresGrad = false;
    return this;
  }

  /** Sets requiresGrad on every parameter again; undoes freeze(). */
  unfreeze(): this {
    for (const p of this.parameters()) p.requiresGrad = true;
    return this;
  }

  /** Converts every parameter and buffer to a float dtype in place of the old ones; call before making the optimizer. */
  to(dtype: DType): this {
    if (dtype === 'int32') throw new Error('Module.to: parameters must stay floating point; got int32');
    const replaced = new Map<Parameter, Parameter>();
    for (const m of this.modules()) {
      for (const [k, p] of m.ownParameters()) {
        let np = replaced.get(p);
        if (!np) {
          np = new Parameter(p.detach().to(dtype), p.requiresGrad);
          replaced.set(p, np);
        }
        (m as unknown as Record<string, unknown>)[k] = np;
      }
      // Counters (BatchNorm's num_batches_tracked) stay integers.
      for (const [k, b] of m.buffers_) if (b.dtype !== 'int32') m.buffers_.set(k, b.to(dtype));
    }
    return this;
  }

  /** Applies fn to every module below this one (itself included), as PyTorch's apply. */
  apply(fn: (m: Module) => void): this {
    for (const m of this.modules()) fn(m);
    return this;
  }

  /** A one-line-per-module summary with parameter counts. */
  toString(): string {
    const lines = this.namedModules().map(([n, m]) => {
      const own = m.ownParameters().reduce((s, [, p]) => s + p.size, 0);
      return `${n || '(root)'}: ${m.constructor.name}${own ? ` (${own} params)` : ''}`;
    });
    return `${lines.join('\n')}\ntotal: ${this.numParameters()} parameters`;
  }
}

/** A list of modules whose items are named by index ('layers.0.weight'). */
export class ModuleList extends Module {
  private items: Module[];

  constructor(modules: Iterable<Module> = []) {
    super();
    this.items = [...modules];
  }

  override namedChildren(): [string, Module][] { return this.items.map((m, i) => [String(i), m]); }
  /** Number of modules in the list. */
  get length(): number { return this.items.length; }
  /** The module at index i (negative counts from the end). */
  at(i: number): Module { return this.items[i < 0 ? this.items.length + i : i]; }
  /** Appends a module. */
  push(m: Module): this { this.items.push(m); return this; }
  /** The modules in order. */
  [Symbol.iterator](): Iterator<Module> { return this.items[Symbol.iterator](); }
}

/** Modules named by key ('heads.classifier.weight'). */
export class ModuleDict extends Module {
  private items: Map<string, Module>;

  constructor(modules: Record<string, Module> = {}) {
    super();
    this.items = new Map(Object.entries(modules));
  }

  override namedChildren(): [string, Module][] { return [...this.items.entries()]; }
  /** The module under key, if any. */
  get(key: string): Module | undefined { return this.items.get(key); }
  /** Adds or replaces the module under key. */
  set(key: string, m: Module): this { this.items.set(key, m); return this; }
  /** The keys, in insertion order. */
  keys(): string[] { return [...this.items.keys()]; }
}

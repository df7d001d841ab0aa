// LoRA (low-rank adaptation): a frozen linear layer plus a trainable update B @ A scaled by alpha / rank.
// applyLoRA swaps chosen layers for LoRA wrappers in place; mergeLoRA folds the update back into the weights;
// the adapters save alone in PEFT's layout (adapter_model.safetensors + adapter_config.json).

import { linear } from '../tensor/ops/matmul.js';
import { dropout } from '../tensor/ops/nn-ops.js';
import { noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import { kaimingUniform_ } from './init.js';
import { Linear } from './layers/linear.js';
import { Module, ModuleDict, ModuleList, Parameter, type StateDict } from './module.js';
import { namePattern } from './freeze.js';

/**
 * How the wrapped layer stores its weight: 'out-in' as nn.Linear (y = x W^T + b), 'in-out' as Hugging Face
 * GPT-2's Conv1D (y = x W + b).
 */
export type WeightLayout = 'out-in' | 'in-out';

/** A layer LoRA can wrap: a 2-D weight, an optional bias, and a forward. */
export interface LinearLike extends Module {
  weight: Parameter;
  bias?: Parameter | null;
  /** Maps one tensor to another. */
  forward(x: Tensor): Tensor;
}

/** Options of applyLoRA. */
export interface LoRAOptions {
  /** Rank r of the update (a positive integer). */
  rank: number;
  /** The update is scaled by alpha / rank (default: alpha = rank, a scale of 1). */
  alpha?: number;
  /** Dropout on the adapter's input while training (default 0). */
  dropout?: number;
  /**
   * Which layers to adapt, by module name: a plain name matches a module of that name or ending in '.name'
   * (PEFT's rule: 'c_attn', 'attn.c_proj'); a pattern with * ? [ ] { } matches whole dotted names
   * ('transformer.h.{0..1}.mlp.*').
   */
  targets: readonly string[];
}

/** The weight layout of a layer, from its class: nn.Linear is out-in, a class named Conv1D is in-out. */
export function weightLayoutOf(m: Module): WeightLayout | null {
  const r = m as unknown as { weight?: unknown; forward?: unknown };
  if (!(r.weight instanceof Parameter) || r.weight.ndim !== 2 || typeof r.forward !== 'function') return null;
  if (m instanceof Linear) return 'out-in';
  const declared = (m as { weightLayout?: unknown }).weightLayout;
  if (declared === 'out-in' || declared === 'in-out') return declared;
  if (m.constructor.name === 'Conv1D') return 'in-out';
  return null;
}

/**
 * A frozen base layer plus a trainable low-rank update: y = base(x) + (alpha / r) * dropout(x) A^T B^T, with
 * A (r, in) kaiming-uniform and B (out, r) zeros, so a fresh adapter leaves the output unchanged. Names follow
 * PEFT: base_layer.weight, lora_A.weight, lora_B.weight.
 */
export class LoRALinear extends Module {
  base_layer: LinearLike;
  lora_A: Linear;
  lora_B: Linear;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(base: LinearLike, readonly layout: WeightLayout, readonly rank: number, readonly alpha: number,
    readonly dropoutP = 0) {
    super();
    checkLoRAHyper(rank, alpha, dropoutP);
    const [d0, d1] = base.weight.shape;
    [this.outFeatures, this.inFeatures] = layout === 'out-in' ? [d0, d1] : [d1, d0];
    if (rank > Math.min(this.inFeatures, this.outFeatures)) {
      throw new Error(`LoRA: rank ${rank} is larger than the layer (${this.inFeatures} in, ${this.outFeatures} out); ` +
        `a rank above ${Math.min(this.inFeatures, this.outFeatures)} adds nothing`);
    }
    const dtype = base.weight.dtype;
    this.base_layer = base;
    this.lora_A = new Linear(this.inFeatures, rank, { bias: false, dtype });
    this.lora_B = new Linear(rank, this.outFeatures, { bias: false, dtype });
    kaimingUniform_(this.lora_A.weight, Math.sqrt(5));
    this.lora_B.weight.storage.fill(0);
    for (const p of base.parameters()) p.requiresGrad = false;
  }

  /** alpha / rank. */
  get scale(): number { return this.alpha / this.rank; }

  /** The base layer's output plus the low-rank update (scale * B(A(dropout(x)))). */
  forward(x: Tensor): Tensor {
    const y = this.base_layer.forward(x);
    const h = this.dropoutP > 0 ? dropout(x, this.dropoutP, this.training) : x;
    return y.add(linear(linear(h, this.lora_A.weight), this.lora_B.weight).mul(this.scale));
  }

  /** The update scale * B @ A in the base weight's layout. */
  delta(): Tensor {
    return noGrad(() => {
      const ba = this.lora_B.weight.matmul(this.lora_A.weight).mul(this.scale); // (out, in)
      return this.layout === 'out-in' ? ba : ba.T;
    });
  }

  /** Adds the update into the base weight and returns the base layer (which then stands alone). */
  merge(): LinearLike {
    const d = this.delta();
    const w = this.base_layer.weight.storage;
    for (let i = 0; i < w.length; i++) w[i] += d.storage[i];
    return this.base_layer;
  }
}

function checkLoRAHyper(rank: number, alpha: number, p: number): void {
  if (!Number.isInteger(rank) || rank <= 0) throw new Error(`LoRA: rank must be a positive integer, got ${rank}`);
  if (!(Number.isFinite(alpha) && alpha > 0)) throw new Error(`LoRA: alpha must be a positive number, got ${alpha}`);
  if (!(p >= 0 && p < 1)) throw new Error(`LoRA: dropout must be in [0, 1), got ${p}`);
}

/** Finds the module's slot in its parent and puts another module there. */
function replaceChild(root: Module, name: string, replacement: Module): void {
  const dot = name.lastIndexOf('.');
  const parentName = dot < 0 ? '' : name.slice(0, dot);
  const key = dot < 0 ? name : name.slice(dot + 1);
  const parent = root.namedModules().find(([n]) => n === parentName)?.[1];
  if (!parent) throw new Error(`LoRA: cannot find the parent module '${parentName}' of '${name}'`);
  if (parent instanceof ModuleDict) { parent.set(key, replacement); return; }
  if (parent instanceof ModuleList) {
    // ModuleList keeps its items in a private array; replace by index.
    (parent as unknown as { items: Module[] }).items[Number(key)] = replacement;
    return;
  }
  const rec = parent as unknown as Record<string, unknown>;
  if (!(rec[key] instanceof Module)) throw new Error(`LoRA: '${name}' is not a property of its parent module`);
  rec[key] = replacement;
}

/** Whether a LoRA target matches a module name (plain names by suffix, patterns by whole name). */
export function targetMatches(target: string, name: string): boolean {
  if (/[*?[\]{}]/.test(target)) return namePattern(target).test(name) && !name.includes('.lora_') && !name.includes('.base_layer');
  return name === target || name.endsWith(`.${target}`);
}

/** What applyLoRA did. */
export interface LoRAReport {
  /** Names of the wrapped layers. */
  adapted: string[];
  /** Trainable elements (the adapters) and all elements. */
  trainable: number;
  /** Elements in all parameters. */
  total: number;
}

/**
 * Wraps every layer matched by options.targets in a {@link LoRALinear}, in place, and freezes every other
 * parameter, so an optimizer built from model.trainableParameters() sees only the adapters. A target that
 * matches no layer, or matches something that is not a linear layer, is an error (checked before any change).
 * `applyLoRA(gpt, { rank: 8, alpha: 16, targets: ['c_attn', 'attn.c_proj'] })`
 */
export function applyLoRA(model: Module, options: LoRAOptions): LoRAReport {
  const { rank, alpha = options.rank, dropout: p = 0, targets } = options;
  checkLoRAHyper(rank, alpha, p);
  if (!Array.isArray(targets) || targets.length === 0) throw new Error('LoRA: targets must list at least one layer name');
  const modules = model.namedModules().filter(([n]) => n !== '');
  const chosen = new Set<string>();
  const problems: string[] = [];
  for (const t of targets) {
    const hits = modules.filter(([n]) => targetMatches(t, n));
    const usable = hits.filter(([, m]) => weightLayoutOf(m) !== null && !(m instanceof LoRALinear));
    if (hits.length === 0) {
      const linears = modules.filter(([, m]) => weightLayoutOf(m) !== null).map(([n]) => n);
      const hint = linears.length ? `; its linear layers are named like ${linears.slice(0, 4).map((n) => `'${n}'`).join(', ')}` : '';
      problems.push(`target '${t}' matches no layer of the model${hint}`);
    } else if (usable.length === 0) {
      problems.push(`target '${t}' matches ${hits.slice(0, 3).map(([n, m]) => `'${n}' (${m.constructor.name})`).join(', ')}, ` +
        'but LoRA wraps only linear layers (nn.Linear or Conv1D)');
    }
    for (const [n] of usable) chosen.add(n);
  }
  if (problems.length) throw new Error(`applyLoRA: ${problems.join('; ')}`);
  const layers = modules.filter(([n]) => chosen.has(n)); // in module order
  // Every parameter goes frozen first; the adapters created below are the only trainable ones.
  for (const prm of model.parameters()) prm.requiresGrad = false;
  for (const [n, m] of layers) {
    replaceChild(model, n, new LoRALinear(m as LinearLike, weightLayoutOf(m)!, rank, alpha, p));
  }
  return {
    adapted: layers.map(([n]) => n),
    trainable: model.numParameters({ trainableOnly: true }),
    total: model.numParameters(),
  };
}

/** The LoRA layers of a model with their names. */
export function loraLayers(model: Module): [string, LoRALinear][] {
  return model.namedModules().filter((e): e is [string, LoRALinear] => e[1] instanceof LoRALinear);
}

/**
 * Folds every adapter into its base weight (W += alpha/r * B@A, in the layer's layout) and puts the base layers
 * back, so the model has its original names and shapes again. Returns the names of the merged layers.
 */
export function mergeLoRA(model: Module): string[] {
  const layers = loraLayers(model);
  for (const [n, l] of layers) replaceChild(model, n, l.merge());
  return layers.map(([n]) => n);
}

/** PEFT's adapter_config.json fields that Kiln writes and reads. */
export interface AdapterConfig {
  peft_type: 'LORA';
  task_type: string;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[];
  fan_in_fan_out: boolean;
  bias: 'none';
  base_model_name_or_path: string | null;
  inference_mode: boolean;
}

/** The adapter config of a model's LoRA layers (they must share rank, alpha and dropout). */
export function adapterConfig(model: Module, targets: readonly string[], base: string | null = null): AdapterConfig {
  const layers = loraLayers(model);
  if (layers.length === 0) throw new Error('adapterConfig: the model has no LoRA layers');
  const [, l0] = layers[0];
  return {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', r: l0.rank, lora_alpha: l0.alpha, lora_dropout: l0.dropoutP,
    target_modules: [...targets], fan_in_fan_out: l0.layout === 'in-out', bias: 'none',
    base_model_name_or_path: base, inference_mode: true,
  };
}

/**
 * The adapters alone, under PEFT's names: 'base_model.model.<layer>.lora_A.weight' (r, in) and
 * '...lora_B.weight' (out, r).
 */
export function adapterStateDict(model: Module): StateDict {
  const sd: StateDict = {};
  for (const [n, l] of loraLayers(model)) {
    sd[`base_model.model.${n}.lora_A.weight`] = l.lora_A.weight.detach();
    sd[`base_model.model.${n}.lora_B.weight`] = l.lora_B.weight.detach();
  }
  if (Object.keys(sd).length === 0) throw new Error('adapterStateDict: the model has no LoRA layers');
  return sd;
}

/**
 * Applies LoRA as described by an adapter config and loads the adapter weights (as adapterStateDict names them).
 * Every adapter tensor must find its layer and shape.
 */
export function loadAdapter(model: Module, config: AdapterConfig, weights: StateDict): LoRAReport {
  if (config.peft_type !== 'LORA') throw new Error(`loadAdapter: expected peft_type 'LORA', found ${JSON.stringify(config.peft_type)}`);
  const report = applyLoRA(model, {
    rank: config.r, alpha: config.lora_alpha, dropout: config.lora_dropout, targets: config.target_modules,
  });
  const expected = adapterStateDict(model);
  const missing = Object.keys(expected).filter((k) => !(k in weights));
  const unexpected = Object.keys(weights).filter((k) => !(k in expected));
  if (missing.length || unexpected.length) {
    throw new Error(`loadAdapter: the adapter weights do not fit the model (missing: ${missing.join(', ') || 'none'}; ` +
      `unexpected: ${unexpected.join(', ') || 'none'})`);
  }
  for (const [k, dst] of Object.entries(expected)) {
    const src = weights[k];
    if (src.shape.join(',') !== dst.shape.join(',')) {
      throw new Error(`loadAdapter: '${k}' has shape [${src.shape.join(', ')}] but the layer needs [${dst.shape.join(', ')}]`);
    }
  }
  for (const [k, dst] of Object.entries(expected)) {
    const src = weights[k].storage;
    for (let i = 0; i < dst.size; i++) dst.storage[i] = src[i];
  }
  return report;
}

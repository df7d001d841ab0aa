// Reverse-mode autograd, define-by-run. An op attaches a Node (its inputs and a backward closure) to its
// output when grad is enabled and an input requires it; backward() walks the graph in reverse topological
// order (an explicit stack, so deep graphs cannot overflow) and frees it afterwards.

import { backend, type AnyArray } from '../backend/index.js';
import { isWholeBuffer, recycle } from './storage.js';
import type { Tensor } from './tensor.js';

/** Returns one gradient per input (null where the input needs none). Runs with grad disabled. */
export type BackwardFn = (grad: Tensor) => (Tensor | null)[];

export interface Node {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly backward: BackwardFn;
}

let gradEnabled = true;
const registered = new Set<string>();
/** Non-leaf tensors whose graph an earlier backward() freed. */
const released = new WeakSet<Tensor>();
/** Op outputs that never left the scope that made them (see activationScope): backward may recycle their memory. */
const internal = new WeakSet<Tensor>();
/**
 * Buffers that back more than one tensor (reshape views, detach): the tensor that made the buffer first, and the
 * views since. Views are held weakly: a long-lived buffer (a weight viewed on every forward, in a server that runs
 * for days) would otherwise keep every view it ever had (a leak of ~1 KB a request in `kiln serve`).
 */
interface Sharers { readonly first: Tensor; views: WeakRef<Tensor>[]; pruneAt: number }
const sharers = new WeakMap<AnyArray, Sharers>();
const PRUNE_MIN = 64;
/** Gradient buffers backward() made for leaves (not ones a caller assigned to .grad). */
const engineGrads = new WeakSet<AnyArray>();
/** A leaf's last gradient buffer, kept by clearGrad for its next gradient. */
const parkedGrads = new WeakMap<Tensor, AnyArray>();
/** Op outputs recorded inside each open activationScope, innermost last. */
const scopes: Tensor[][] = [];
/** Callbacks run when backward() has finished a leaf's gradient (see onGradReady). */
const gradReadyHooks = new WeakMap<Tensor, ((leaf: Tensor) => void)[]>();

/** Whether ops currently record the graph. */
export function isGradEnabled(): boolean { return gradEnabled; }

/**
 * Runs fn without recording the graph (inference, evaluation, optimizer updates), then restores the mode.
 * `kiln.noGrad(() => net.forward(x))`
 */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs fn with graph recording on (e.g. inside a noGrad block). */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Declares a differentiable op by name, so tests can check that every op has a gradient check. */
export function defineOp<F extends (...args: never[]) => Tensor>(name: string, fn: F): F {
  registered.add(name);
  return fn;
}

/** Names of every op declared with defineOp. */
export function registeredOps(): string[] { return [...registered].sort(); }

/** Attaches the backward closure to out when any input requires grad and grad mode is on. Returns out. */
export function record(op: string, out: Tensor, inputs: readonly Tensor[], backward: BackwardFn): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
    if (scopes.length > 0) scopes[scopes.length - 1].push(out);
  }
  return out;
}

/**
 * Records that view now shares base's buffer (reshape, detach). The buffer is recycled as an activation only
 * when every tensor on it is internal, and only at its first tensor's node: the last one backward visits.
 */
export function markShared(base: Tensor, view: Tensor): void {
  const group = sharers.get(base.storage);
  if (!group) {
    sharers.set(base.storage, { first: base, views: [new WeakRef(view)], pruneAt: PRUNE_MIN });
    return;
  }
  group.views.push(new WeakRef(view));
  if (group.views.length >= group.pruneAt) {
    // Collected views can no longer touch the buffer: drop them (amortised: the list at most doubles between passes).
    group.views = group.views.filter((r) => r.deref() !== undefined);
    group.pruneAt = Math.max(PRUNE_MIN, 2 * group.views.length);
  }
}

function isDeadActivation(t: Tensor): boolean {
  if (!internal.has(t)) return false;
  const group = sharers.get(t.storage);
  if (!group) return true;
  if (group.first !== t) return false;
  return group.views.every((r) => {
    const v = r.deref();
    return v === undefined || internal.has(v);
  });
}

/**
 * Runs a model's forward pass and declares every op output recorded inside it, except those in keep(result),
 * internal: nothing outside can reach it, so once backward() has run its node (every consumer is done by then)
 * its buffer goes back to the allocator's pool and the next forward pass reuses it instead of faulting in fresh
 * memory. Only a model that knows its intermediates never escape (no caches, hooks or stored activations) may
 * use this. Views (reshape, detach) keep their buffer out of the pool, and retainGraph keeps everything.
 */
export function activationScope<T>(fn: () => T, keep: (result: T) => (Tensor | null | undefined)[]): T {
  const created: Tensor[] = [];
  scopes.push(created);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const kept = new Set(keep(result));
  const parent = scopes[scopes.length - 1];
  for (const t of created) {
    if (!kept.has(t)) internal.add(t);
    else if (parent) parent.push(t);
  }
  return result;
}

/** Reverse topological order of the graph below root (root first). */
function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>([root]);
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const inputs = top[0].node?.inputs ?? [];
    if (top[1] < inputs.length) {
      const child = inputs[top[1]++];
      if (child.requiresGrad && !seen.has(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(top[0]);
    }
  }
  return order.reverse();
}

export interface BackwardOptions { retainGraph?: boolean }

/** Backpropagates from root, accumulating into the .grad of every leaf that requires grad. */
export function runBackward(root: Tensor, gradient: Tensor, options: BackwardOptions = {}): void {
  const order = topoOrder(root);
  if (order.some((t) => released.has(t))) {
    throw new Error('backward: part of this graph was already freed by an earlier backward(); pass ' +
      '{ retainGraph: true } to the first call to backpropagate through it twice');
  }
  const grads = new Map<Tensor, Tensor>([[root, gradient]]);
  // How many pending gradients use each buffer: one that drops to zero, was not given by the caller and was not
  // handed to a leaf is garbage the moment its node is done, so it goes back to the allocator's pool.
  const refs = new Map<AnyArray, number>([[gradient.storage, 1]]);
  const release = (s: AnyArray): void => {
    const c = (refs.get(s) ?? 0) - 1;
    if (c > 0) refs.set(s, c);
    else refs.delete(s);
  };
  const hold = (s: AnyArray): void => { refs.set(s, (refs.get(s) ?? 0) + 1); };
  const done = (candidates: AnyArray[]): void => {
    for (const s of candidates) {
      if (refs.has(s) || s === gradient.storage) continue;
      sharers.delete(s); // the buffer's next tensors start a new group
      recycle(s);
    }
  };
  noGrad(() => {
    for (const t of order) {
      const g = grads.get(t);
      grads.delete(t);
      if (!g) continue;
      release(g.storage);
      const node = t.node;
      if (!node) {
        const adopted = accumulateLeaf(t, g, !refs.has(g.storage) && g.storage !== gradient.storage);
        if (!adopted) done([g.storage]);
        const hooks = gradReadyHooks.get(t);
        if (hooks) for (const hook of [...hooks]) hook(t);
        continue;
      }
      const inGrads = node.backward(g);
      const candidates = [g.storage];
      node.inputs.forEach((input, i) => {
        const gi = inGrads[i];
        if (!gi || !input.requiresGrad) return;
        const prev = grads.get(input);
        if (prev) {
          const sum = prev.add(gi);
          release(prev.storage);
          candidates.push(prev.storage, gi.storage);
          grads.set(input, sum);
          hold(sum.storage);
        } else {
          grads.set(input, gi);
          hold(gi.storage);
        }
      });
      if (!options.retainGraph) {
        t.node = null;
        released.add(t);
        // Every consumer of t ran before t's own node, so an internal activation is garbage now.
        if (isDeadActivation(t) && !refs.has(t.storage)) candidates.push(t.storage);
      }
      done(candidates);
    }
  });
}

/**
 * Calls fn(leaf) each time a backward() pass has finished leaf's gradient: every contribution of that pass is
 * already added into leaf.grad, and the pass will not touch it again (the moment PyTorch's post-accumulate-grad
 * hook fires). Data-parallel training starts a gradient bucket's all-reduce from here while backward goes on.
 * A leaf the pass does not reach gets no call. Returns a function that removes the hook.
 * `const remove = kiln.onGradReady(w, (p) => console.log(p.grad!.sum().item()))`
 */
export function onGradReady(leaf: Tensor, fn: (leaf: Tensor) => void): () => void {
  if (!leaf.isLeaf) throw new Error('onGradReady: the tensor is not a leaf (an op made it); hooks go on parameters and inputs');
  const hooks = gradReadyHooks.get(leaf) ?? [];
  hooks.push(fn);
  gradReadyHooks.set(leaf, hooks);
  return () => {
    const i = hooks.indexOf(fn);
    if (i >= 0) hooks.splice(i, 1);
  };
}

/**
 * Sets t.grad to null, as PyTorch's zero_grad(set_to_none=True), but keeps a buffer backward() made so t's next
 * gradient is written into it instead of fresh memory (which costs far more than the copy). A gradient tensor
 * held past this call therefore ends up holding t's next gradient, as with PyTorch's in-place zero_grad;
 * clone() one to keep it.
 */
export function clearGrad(t: Tensor): void {
  if (t.grad && engineGrads.has(t.grad.storage)) parkedGrads.set(t, t.grad.storage);
  t.grad = null;
}

/** Adds g into t.grad; returns true when g's buffer itself became t.grad (owned is true when nothing else holds it). */
function accumulateLeaf(t: Tensor, g: Tensor, owned: boolean): boolean {
  if (t.grad) {
    const dst = t.grad.storage;
    const src = g.storage;
    for (let i = 0; i < dst.length; i++) dst[i] += src[i];
    return false;
  }
  const parked = parkedGrads.get(t);
  if (parked && parked.length === g.size && parked.constructor === g.storage.constructor) {
    parkedGrads.delete(t);
    backend().copy(g.storage, parked);
    // g's class (Tensor) builds it: a value import of Tensor here would close an import cycle.
    t.grad = new (g.constructor as new (storage: AnyArray, shape: readonly number[]) => Tensor)(parked, t.shape);
    return false;
  }
  let grad: Tensor;
  if (owned && isWholeBuffer(g.storage)) grad = g.detach();
  else grad = g.clone().detach(); // a copy: g may be shared with another branch or be the caller's own gradient
  engineGrads.add(grad.storage);
  t.grad = grad;
  return grad.storage === g.storage;
}

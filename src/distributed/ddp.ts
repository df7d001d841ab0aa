// Data-parallel training: every rank holds the same model, trains on its own slice of each global batch, and
// averages gradients before the optimizer step. Gradients go in ~25 MB buckets (the first 1 MB, as PyTorch's),
// parameters in reverse registration order (roughly the order backward finishes them); a bucket's all-reduce
// starts from the autograd hook that finishes its last gradient, so communication runs on the binding's thread while backward goes on (PyTorch DDP's
// reducer, Horovod's tensor fusion). finishGradientSync() is the one wait before optimizer.step().

import { onGradReady, Tensor } from '../tensor/index.js';
import { markWeightsChanged } from '../tensor/storage.js';
import type { Module, Parameter } from '../nn/index.js';
import type { MpiBinding } from '../backend/native/mpi.js';
import { broadcast, communicator, init } from './process-group.js';

/** Options of DistributedDataParallel. */
export interface DistributedDataParallelOptions {
  /** Bucket size in megabytes (default 25, as PyTorch's bucket_cap_mb). */
  bucketCapMB?: number;
  /**
   * Size of the first bucket in megabytes (default 1, as PyTorch's DDP): the gradients backward finishes first
   * start communicating early even when the whole model would fit in one bucket of bucketCapMB.
   */
  firstBucketCapMB?: number;
  /** Copy rank 0's parameters and float32 buffers to every rank at construction (default true). */
  broadcastParameters?: boolean;
}

interface Bucket {
  params: Parameter[];
  offsets: number[];
  /** The fusion buffer the all-reduce works on: (sum of the parameters' sizes,) */
  flat: Float32Array;
  ready: Set<Parameter>;
  handle: number | null;
}

/** What the last gradient synchronisation did, for tests and logs. */
export interface SyncStats {
  buckets: number;
  /** Buckets whose all-reduce started before finishGradientSync() was called, i.e. while backward was running. */
  startedDuringBackward: number;
}

/**
 * Wraps a module for data-parallel training over the process group (a world of one makes every call a no-op).
 * `const ddp = new kiln.distributed.DistributedDataParallel(model);`
 * `loss.backward(); ddp.finishGradientSync(); optimizer.step();`
 */
export class DistributedDataParallel<M extends Module = Module> {
  readonly module: M;
  private readonly buckets: Bucket[] = [];
  private readonly bucketOf = new Map<Parameter, Bucket>();
  private readonly comm: MpiBinding | null;
  private readonly world: number;
  private syncing = true;
  private nextStart = 0;
  private startedEarly = 0;
  private stats: SyncStats = { buckets: 0, startedDuringBackward: 0 };

  constructor(module: M, options: DistributedDataParallelOptions = {}) {
    const capMB = options.bucketCapMB ?? 25;
    if (!(capMB > 0)) throw new Error(`DistributedDataParallel: bucketCapMB must be positive, got ${capMB}`);
    const firstCapMB = Math.min(options.firstBucketCapMB ?? 1, capMB);
    if (!(firstCapMB > 0)) throw new Error(`DistributedDataParallel: firstBucketCapMB must be positive, got ${options.firstBucketCapMB}`);
    this.module = module;
    this.world = init().worldSize;
    this.comm = communicator();
    const params = module.parameters().filter((p) => p.requiresGrad);
    for (const [name, p] of module.namedParameters()) {
      if (p.requiresGrad && !(p.storage instanceof Float32Array)) {
        throw new Error(`DistributedDataParallel: parameter ${name} is ${p.dtype}; data-parallel training takes float32 parameters`);
      }
    }
    if (options.broadcastParameters ?? true) {
      for (const p of module.parameters()) if (p.storage instanceof Float32Array) broadcast(p, 0);
      for (const [, b] of module.namedBuffers()) if (b.storage instanceof Float32Array) broadcast(b, 0);
      markWeightsChanged();
    }
    // Buckets in reverse registration order: the last layers' gradients are finished first.
    const elements = (mb: number) => Math.max(1, Math.floor((mb * 1024 * 1024) / 4));
    const cap = elements(capMB);
    const firstCap = elements(firstCapMB);
    let current: Parameter[] = [];
    let size = 0;
    const close = () => {
      if (current.length === 0) return;
      const offsets: number[] = [];
      let o = 0;
      for (const p of current) { offsets.push(o); o += p.size; }
      const bucket: Bucket = { params: current, offsets, flat: new Float32Array(o), ready: new Set(), handle: null };
      for (const p of current) this.bucketOf.set(p, bucket);
      this.buckets.push(bucket);
      current = [];
      size = 0;
    };
    for (const p of [...params].reverse()) {
      if (size > 0 && size + p.size > (this.buckets.length === 0 ? firstCap : cap)) close();
      current.push(p);
      size += p.size;
    }
    close();
    if (this.comm) for (const p of params) onGradReady(p, (leaf) => this.gradReady(leaf as Parameter));
  }

  /** The number of elements in each bucket, in the order their all-reduces start. */
  bucketSizes(): number[] { return this.buckets.map((b) => b.flat.length); }

  /** What the last finishGradientSync() did. */
  lastSync(): SyncStats { return { ...this.stats }; }

  /**
   * Runs fn (typically a micro-step's forward and backward) without gradient communication: gradients only
   * accumulate locally. With gradient accumulation, run every micro-step but the last inside noSync.
   * `ddp.noSync(() => model.forward(x).sum().backward())`
   */
  noSync<T>(fn: () => T): T {
    const prev = this.syncing;
    this.syncing = false;
    let async = false;
    try {
      const out = fn();
      if (out instanceof Promise) {
        async = true;
        return out.finally(() => { this.syncing = prev; }) as T;
      }
      return out;
    } finally {
      if (!async) this.syncing = prev;
    }
  }

  private gradReady(p: Parameter): void {
    if (!this.syncing) return;
    const bucket = this.bucketOf.get(p);
    if (!bucket) return;
    if (bucket.handle !== null || bucket.ready.has(p)) {
      throw new Error('DistributedDataParallel: a parameter received a second gradient before finishGradientSync(); ' +
        'with gradient accumulation run every micro-step but the last inside ddp.noSync(...)');
    }
    bucket.ready.add(p);
    this.startReady();
  }

  /** Starts the all-reduce of every complete bucket, strictly in bucket order so all ranks issue the same sequence. */
  private startReady(): void {
    while (this.nextStart < this.buckets.length) {
      const b = this.buckets[this.nextStart];
      if (b.ready.size < b.params.length) return;
      this.start(b);
      this.startedEarly++;
    }
  }

  private start(b: Bucket): void {
    b.params.forEach((p, i) => {
      const g = p.grad;
      if (g) b.flat.set(g.storage as Float32Array, b.offsets[i]);
      else b.flat.fill(0, b.offsets[i], b.offsets[i] + p.size); // unused here; another rank may have used it
    });
    b.handle = this.comm!.allReduceStart(b.flat);
    this.nextStart++;
  }

  /**
   * Waits for every bucket's all-reduce and writes the averaged gradients back into each parameter's .grad. Call it
   * once after the backward of the last micro-step, before the optimizer step (and before clipping). Buckets whose
   * parameters received no gradient on this rank are reduced here with zeros for them.
   */
  finishGradientSync(): void {
    if (!this.comm) return;
    const early = this.startedEarly;
    while (this.nextStart < this.buckets.length) this.start(this.buckets[this.nextStart]);
    for (const b of this.buckets) {
      this.comm.wait(b.handle!);
      b.handle = null;
      b.ready.clear();
      const flat = b.flat;
      for (let i = 0; i < flat.length; i++) flat[i] /= this.world;
      b.params.forEach((p, i) => {
        const avg = flat.subarray(b.offsets[i], b.offsets[i] + p.size);
        if (p.grad) (p.grad.storage as Float32Array).set(avg);
        else if (avg.some((v) => v !== 0)) p.grad = new Tensor(avg.slice(), p.shape);
      });
    }
    this.nextStart = 0;
    this.startedEarly = 0;
    this.stats = { buckets: this.buckets.length, startedDuringBackward: early };
  }
}

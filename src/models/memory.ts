// What a GPT of a given size costs in memory, estimated from its config before anything is allocated, so a size
// that comes from outside (a flag, a config.json field) and cannot fit is refused with the bytes it needs instead
// of running for minutes or failing with "Invalid typed array length". No Node imports: the caller says what
// memory there is (os.totalmem() and os.freemem() on Node).

import type { GPTConfig } from './gpt-config.js';

/** The sizes the estimate needs (a GPTConfig's, before it is resolved and checked). */
export type GPTSize = Pick<GPTConfig, 'vocabSize' | 'context' | 'layers' | 'heads' | 'width'>;

/** Memory a machine has, in bytes. */
export interface MemoryAvailable { total: number; free: number }

const F32 = 4;
/** The most elements one typed array may hold (V8 refuses longer ones with "Invalid typed array length"). */
export const MAX_TENSOR_ELEMENTS = 2 ** 32 - 1;

/** Parameters of a GPT-2 style model with biases and tied embeddings (floating point, so huge sizes stay finite). */
export function gptParameterCount(c: GPTSize): number {
  const C = c.width;
  return c.vocabSize * C + c.context * C + c.layers * (12 * C * C + 13 * C) + 2 * C;
}

/** The largest single tensor of the model, in elements (the MLP's C x 4C, the token or position embedding). */
export function gptLargestTensor(c: GPTSize): number {
  return Math.max(c.vocabSize * c.width, c.context * c.width, 4 * c.width * c.width);
}

/**
 * Bytes to train with AdamW at batch size B (an estimate from below): weights, gradients and two moments, plus
 * the activations backward keeps (about 18 C per token and layer, the attention probabilities H T per token and
 * layer, and the logits twice).
 */
export function gptTrainingBytes(c: GPTSize, batchSize: number): number {
  const tokens = batchSize * c.context;
  const perToken = c.layers * (18 * c.width + 2 * c.heads * c.context) + 2 * c.vocabSize;
  return F32 * (4 * gptParameterCount(c) + tokens * perToken);
}

/** Bytes to generate with one sequence: the weights and a KV cache of the full context. */
export function gptInferenceBytes(c: GPTSize): number {
  return F32 * (gptParameterCount(c) + 2 * c.layers * c.context * c.width + c.heads * c.context + c.vocabSize);
}

function fmtBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${Math.round(v)} bytes` : `${v.toPrecision(3)} ${units[i]}`;
}

/**
 * Throws when `needed` bytes cannot fit in this machine's memory, or one tensor would exceed what a typed array
 * holds; `what` names the job and the sizes that drive it.
 * `checkMemory(gptTrainingBytes(cfg, 16), 'training (--context 100000, --batch-size 16)', { total: os.totalmem(), free: os.freemem() })`
 */
export function checkMemory(needed: number, what: string, available: MemoryAvailable, largestTensor = 0): void {
  if (!(needed <= available.total)) {
    throw new Error(`${what} needs about ${fmtBytes(needed)} (${needed.toExponential(3)} bytes) of memory, but this machine has ` +
      `${fmtBytes(available.total)} (${available.total} bytes; ${fmtBytes(available.free)} free); choose smaller sizes`);
  }
  if (largestTensor > MAX_TENSOR_ELEMENTS) {
    throw new Error(`${what}: one tensor would hold ${largestTensor.toExponential(2)} elements, more than the ${MAX_TENSOR_ELEMENTS} a tensor can hold ` +
      `(about ${fmtBytes(needed)} in all, ${Math.round(needed)} bytes); choose smaller sizes`);
  }
}

// Conversations to token ids with an assistant-only loss mask, and padded batches of them. The template is
// rendered turn by turn so each assistant reply (its content and closing marker) is found exactly; every other
// token gets the ignore index -100 and does not count in the loss.

import { Generator } from '../../tensor/random.js';
import { Tensor } from '../../tensor/tensor.js';
import type { Tokenizer } from '../../data/tokenizer/index.js';
import type { ChatTemplate, RenderOptions } from '../../infer/chat-template.js';
import type { ChatMessage, Conversation } from './jsonl.js';

/** The target id the loss skips (prompt tokens and padding), as PyTorch's ignore_index. */
export const IGNORE_INDEX = -100;

/** A conversation as token ids with its loss mask. */
export interface EncodedExample {
  /** Token ids of the whole rendered conversation. */
  ids: number[];
  /** ids where the token is part of an assistant reply, IGNORE_INDEX elsewhere (same length as ids). */
  labels: number[];
}

/**
 * Renders and tokenizes a conversation. Assistant spans are found by rendering the prefix before each assistant
 * turn with the generation prompt (what inference feeds the model) and the prefix including it; the template must
 * render each of these as a prefix of the whole conversation. Pieces are encoded separately, so the prompt part
 * tokenizes exactly as it will at inference.
 */
export function encodeConversation(tok: Tokenizer, template: ChatTemplate, messages: readonly ChatMessage[],
  render: RenderOptions = {}): EncodedExample {
  const full = template.render(messages, { ...render, addGenerationPrompt: false });
  const spans: [number, number][] = [];
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = template.render(messages.slice(0, i), { ...render, addGenerationPrompt: true, allowEmpty: true });
    const upto = template.render(messages.slice(0, i + 1), { ...render, addGenerationPrompt: false });
    if (!upto.startsWith(before) || !full.startsWith(upto)) {
      throw new Error('chat template: rendering a conversation turn by turn does not give prefixes of the whole ' +
        'rendering, so the assistant replies cannot be located for the loss mask');
    }
    spans.push([before.length, upto.length]);
  });
  const ids: number[] = [];
  const labels: number[] = [];
  let at = 0;
  const push = (text: string, learn: boolean): void => {
    if (!text) return;
    const t = tok.encode(text, { allowSpecial: true });
    // One push per token: ids.push(...t) overflows the call stack on a long example (about 1 MB of text).
    for (const id of t) {
      ids.push(id);
      labels.push(learn ? id : IGNORE_INDEX);
    }
  };
  for (const [s, e] of spans) {
    push(full.slice(at, s), false);
    push(full.slice(s, e), true);
    at = e;
  }
  push(full.slice(at), false);
  return { ids, labels };
}

/** The prompt for generation: the conversation so far with an assistant turn opened. */
export function encodePrompt(tok: Tokenizer, template: ChatTemplate, messages: readonly ChatMessage[], render: RenderOptions = {}): number[] {
  return tok.encode(template.render(messages, { allowEmpty: true, ...render, addGenerationPrompt: true }), { allowSpecial: true });
}

/** One training row: inputs and next-token targets (targets[t] is what position t should predict). */
export interface TrainingRow { input: number[]; target: number[]; line: number }

/** Training rows made from conversations, and the ones dropped. */
export interface PrepareResult {
  rows: TrainingRow[];
  /** Examples cut to the context (some of their reply may be lost). */
  truncated: number;
  /** Examples dropped because no reply token was left within the context (by source line). */
  dropped: number[];
  /** Reply tokens in all (the tokens the loss counts). */
  replyTokens: number;
}

/**
 * Shifts encoded examples into (input, target) rows of at most `context` positions. Rows with no learnable
 * target left are dropped and reported.
 */
export function prepareRows(examples: readonly Conversation[], encode: (c: Conversation) => EncodedExample, context: number): PrepareResult {
  const rows: TrainingRow[] = [];
  const dropped: number[] = [];
  let truncated = 0;
  let replyTokens = 0;
  for (const ex of examples) {
    let enc: EncodedExample;
    try {
      enc = encode(ex);
    } catch (err) {
      throw new Error(`fine-tuning data line ${ex.line}: cannot encode the example: ${(err as Error).message}`);
    }
    const { ids, labels } = enc;
    let input = ids.slice(0, -1);
    let target = labels.slice(1);
    if (input.length > context) {
      truncated++;
      input = input.slice(0, context);
      target = target.slice(0, context);
    }
    const n = target.filter((t) => t !== IGNORE_INDEX).length;
    if (n === 0) { dropped.push(ex.line); continue; }
    replyTokens += n;
    rows.push({ input, target, line: ex.line });
  }
  return { rows, truncated, dropped, replyTokens };
}

/** A batch for GPT.forward(idx, targets): both (B, T) int32, T the longest row of the batch. */
export interface ChatBatch { idx: Tensor; targets: Tensor; tokens: number }

/**
 * Right-pads rows to the batch's longest. Padding never leaks into real tokens: attention is causal and the pads
 * come after every real token of their row, and their targets are IGNORE_INDEX. (Packing several examples into
 * one row would let later examples attend to earlier ones, since the attention kernel has only a causal mask.)
 */
export function padBatch(rows: readonly TrainingRow[], padId: number): ChatBatch {
  if (rows.length === 0) throw new Error('padBatch: no rows');
  const T = Math.max(...rows.map((r) => r.input.length));
  const B = rows.length;
  const idx = new Int32Array(B * T).fill(padId);
  const tg = new Int32Array(B * T).fill(IGNORE_INDEX);
  let tokens = 0;
  rows.forEach((r, b) => {
    idx.set(r.input, b * T);
    tg.set(r.target, b * T);
    tokens += r.input.length;
  });
  return { idx: new Tensor(idx, [B, T]), targets: new Tensor(tg, [B, T]), tokens };
}

/** Options of PaddedBatches. */
export interface PaddedBatchesOptions {
  batchSize: number;
  padId: number;
  seed?: number;
  shuffle?: boolean;
  /** A last batch of an epoch with fewer rows is skipped (data-parallel runs need a row for every rank; default 1). */
  minRows?: number;
}

/**
 * The Trainer's BatchSource over training rows: a seeded new order each epoch, padded batches, and a position
 * that checkpoints save and resume restores.
 */
export class PaddedBatches {
  private order: number[] = [];
  private pos = 0;
  private epoch = 0;
  private readonly seed: number;

  constructor(readonly rows: readonly TrainingRow[], readonly options: PaddedBatchesOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize <= 0) {
      throw new Error(`fine-tuning batches: batch size must be a positive integer, got ${options.batchSize}`);
    }
    if (rows.length === 0) throw new Error('fine-tuning batches: no training rows');
    this.seed = options.seed ?? 0;
    this.reorder();
  }

  private reorder(): void {
    this.order = this.rows.map((_, i) => i);
    if (this.options.shuffle === false) return;
    const g = new Generator(this.seed + this.epoch * 7919);
    for (let i = this.order.length - 1; i > 0; i--) {
      const j = g.int(0, i + 1);
      [this.order[i], this.order[j]] = [this.order[j], this.order[i]];
    }
  }

  /** Batches per epoch. */
  get length(): number {
    const full = Math.floor(this.rows.length / this.options.batchSize);
    return full + (this.rows.length % this.options.batchSize >= (this.options.minRows ?? 1) ? 1 : 0);
  }

  /** The next padded batch, or undefined at the end of an epoch. */
  next(): ChatBatch | undefined {
    if (this.pos >= this.order.length || this.order.length - this.pos < (this.options.minRows ?? 1)) {
      this.epoch++;
      this.pos = 0;
      this.reorder();
      return undefined;
    }
    const pick = this.order.slice(this.pos, this.pos + this.options.batchSize).map((i) => this.rows[i]);
    this.pos += pick.length;
    return padBatch(pick, this.options.padId);
  }

  /** The position, for a checkpoint. */
  state(): { epoch: number; pos: number } { return { epoch: this.epoch, pos: this.pos }; }

  /** Continues from a position saved by state(). */
  restore(state: unknown): void {
    const s = state as { epoch?: unknown; pos?: unknown };
    if (!s || !Number.isInteger(s.epoch) || !Number.isInteger(s.pos)) throw new Error('fine-tuning batches: bad saved position');
    this.epoch = s.epoch as number;
    this.pos = s.pos as number;
    this.reorder();
  }
}

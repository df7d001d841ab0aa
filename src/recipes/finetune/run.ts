// Supervised fine-tuning end to end: load the source model, read and check the data, add the chat tokens (growing
// the embedding), freeze by pattern or apply LoRA, train on assistant tokens only with the Trainer, save the run
// (checkpoints, tokenizer with the chat template, LoRA adapters alone), and measure held-out prompts before/after.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { barrier, init as initProcessGroup } from '../../distributed/index.js';
import { Trainer, type FitResult, type JSONValue } from '../../train/index.js';
import { AdamW } from '../../optim/index.js';
import { Scheduler, cosineWithWarmup } from '../../optim/schedule.js';
import { saveSafetensors } from '../../io/safetensors.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { freezeParameters, namePattern } from '../../nn/freeze.js';
import { adapterConfig, adapterStateDict, applyLoRA, type AdapterConfig } from '../../nn/lora.js';
import { manualSeed } from '../../tensor/random.js';
import { Llama } from '../../models/llama.js';
import type { CausalLM } from '../../models/arch.js';
import { checkMemory, gptTrainingBytes } from '../../models/memory.js';
import { tokenizerConfig, writeTokenizerConfig, type TokenizerConfig } from '../../hub/tokenizer-config.js';
import { CHATML_TEMPLATE, CHAT_SPECIAL_TOKENS, ChatTemplate, IM_END } from '../../infer/chat-template.js';
import { encodeConversation, prepareRows, PaddedBatches, type ChatBatch } from './encode.js';
import { formatReport, parseHeldout, scoreHeldout, scoreSummary, type HeldoutScore } from './evaluate.js';
import { pretrainRows } from './mix.js';
import { loadFinetuneData, type LineError } from './jsonl.js';
import { loadSourceModel } from './load.js';
import { divergenceGuard, explainDivergence } from '../divergence.js';
import { resizeTokenEmbeddings, tokenEmbedding, tokenEmbeddingName } from './vocab.js';

/** LoRA adapters: rank, scale alpha (default 2 x rank), dropout and the layers to adapt (default per architecture: DEFAULT_LORA_TARGETS). */
export interface LoRASettings { rank: number; alpha?: number; dropout?: number; targets?: string[] }

/**
 * The layers LoRA adapts when --lora-targets is not given: the attention's input projections of each architecture
 * (GPT-2's fused c_attn holds q, k and v; the Llama's are separate).
 */
export const DEFAULT_LORA_TARGETS: Readonly<Record<'gpt' | 'llama', readonly string[]>> = Object.freeze({
  gpt: Object.freeze(['c_attn']),
  llama: Object.freeze(['q_proj', 'k_proj', 'v_proj']),
});

/** Options of finetune(). */
export interface FinetuneOptions {
  /** A run folder, a frozen Kiln model folder or a Hugging Face GPT-2 or LlamaForCausalLM folder. */
  from: string;
  /** JSONL of conversations or prompt/completion pairs. */
  data: string;
  /** The fine-tuning run folder to create. */
  out: string;
  epochs?: number;
  maxSteps?: number;
  lr?: number;
  batchSize?: number;
  weightDecay?: number;
  /** Parameter-name patterns to freeze (see nn/freeze). */
  freeze?: string[];
  /**
   * Train the token embedding too (with a tied LM head, the head as well). Full fine-tuning keeps it frozen by
   * default: on the bundled set that declined more unseen harmful requests, refused fewer near misses and got more
   * facts right (README, fine-tuning sweep), since words the data never shows keep their pre-trained neighbours.
   * LoRA leaves it as LoRA does (trainable only for rows of added tokens).
   */
  trainEmbeddings?: boolean;
  lora?: LoRASettings | null;
  skipBadLines?: boolean;
  /**
   * Share of training rows that are plain pre-training text (loss on every token), against forgetting; 0 (the
   * default) trains on the conversations alone. 0.25 adds one text row for every three conversations.
   */
  mix?: number;
  /** The text mixed in: a file or folder readTextSource reads (default: the bundled Brown corpus). */
  mixData?: string;
  /** Held-out prompts (JSONL with "kind") measured before and after. */
  heldout?: string;
  refusalMarker?: string;
  maxNewTokens?: number;
  seed?: number;
  /** Trainer progress display (default 'auto'). */
  progress?: 'auto' | 'bar' | 'lines' | false;
  /** Where messages go (default console.log). */
  log?: (line: string) => void;
  /** Continue the fine-tuning run in `out` from its newest checkpoint (after kill -9 or Ctrl-C). */
  resume?: boolean;
  /** Check the source weights' recorded sha256, dtype and finiteness (default true). */
  verify?: boolean;
}

/** What finetune() returns. */
export interface FinetuneResult {
  out: string;
  fit: FitResult;
  examples: number;
  skipped: LineError[];
  truncated: number;
  dropped: number[];
  addedTokens: string[];
  trainable: number;
  total: number;
  before?: HeldoutScore;
  after?: HeldoutScore;
  /** Seconds the training loop took (the held-out measurements not included). */
  trainSeconds: number;
}

/**
 * The defaults of `kiln finetune`, chosen by measurement (tools/sweep-finetune.mjs on the bundled data from the
 * quick start's base model; figures in README.md): full fine-tuning with the token embedding frozen beat LoRA and a
 * trained embedding; 2 epochs at a peak rate of 2e-3 were within the seeds' spread of 3 epochs, 1e-3, 3e-3 and
 * mixed-in text, in two thirds of 3 epochs' time.
 */
export const FINETUNE_DEFAULTS = { epochs: 2, lr: 2e-3, loraLr: 3e-3, mix: 0 } as const;

const loss = (model: unknown, b: ChatBatch) => (model as CausalLM).loss(b.idx, b.targets);

/** Runs a fine-tuning job; see FinetuneOptions. */
export async function finetune(o: FinetuneOptions): Promise<FinetuneResult> {
  // Under `mpirun -np N` every rank runs this; rank 0 alone prints, scores the held-out prompts and writes files.
  const { rank, worldSize: world } = initProcessGroup();
  const main = rank === 0;
  const log = main ? o.log ?? ((s: string) => console.log(s)) : () => {};
  const seed = o.seed ?? 1337;
  manualSeed(seed);
  // Everything that can fail on bad input is checked before any training or writing.
  if (o.resume) checkResumable(o.out);
  else if (existsSync(o.out) && (!statSync(o.out).isDirectory() || readdirSync(o.out).length > 0)) {
    const hint = existsSync(join(o.out, 'checkpoints')) ? ' (add --resume to continue the fine-tuning run in it)' : '';
    throw new Error(`fine-tuning: the output folder '${o.out}' already exists and is not empty; choose another --out${hint}`);
  }
  barrier(); // every rank has checked --out before rank 0 writes into it
  const data = loadFinetuneData(o.data, { skipBadLines: o.skipBadLines });
  if (data.skipped.length) log(`skipped ${data.skipped.length} bad line${data.skipped.length === 1 ? '' : 's'} of ${o.data} (--skip-bad-lines)`);
  const heldout = o.heldout ? parseHeldout(readFileSync(o.heldout, 'utf8'), o.heldout) : null;
  const src = loadSourceModel(o.from, { verify: o.verify ?? true });
  const gpt: CausalLM = src.model;
  const arch = gpt instanceof Llama ? 'llama' : 'gpt';
  const tok = src.tokenizer;
  if (o.lora && o.lora.rank > gpt.config.width) {
    throw new Error(`--lora-rank ${o.lora.rank} is larger than the model's width ${gpt.config.width}; a rank above the width adds nothing (4 to 64 is usual)`);
  }
  const B = o.batchSize ?? 8;
  const c = gpt.config;
  checkMemory(gptTrainingBytes(c, B), `fine-tuning with --batch-size ${B} (the model: ${c.layers} layers, width ${c.width}, context ${c.context})`,
    { total: totalmem(), free: freemem() }, Math.max(B * c.context * c.vocabSize, B * c.heads * c.context * c.context));
  log(`loaded ${o.from} (${src.kind}, ${gpt.numParameters()} parameters, vocabulary ${gpt.config.vocabSize}, context ${gpt.config.context})`);

  // The chat template: the source's own, or ChatML with its two special tokens added.
  const templateSource = src.tokenizerConfig?.chat_template ?? CHATML_TEMPLATE;
  const template = new ChatTemplate(templateSource);
  const addedTokens: string[] = [];
  if (templateSource === CHATML_TEMPLATE) {
    for (const t of CHAT_SPECIAL_TOKENS) if (tok.tokenToId(t) === undefined || !tok.specialTokens().has(t)) addedTokens.push(t);
    tok.addSpecialTokens([...CHAT_SPECIAL_TOKENS]);
  }
  const grown = resizeTokenEmbeddings(gpt, Math.max(tok.vocabSize, gpt.config.vocabSize));
  if (addedTokens.length) log(`added special tokens ${addedTokens.join(' ')} (embedding grew by ${grown} rows)`);

  const prompts = heldout;
  let before: HeldoutScore | undefined;
  const refusalMarker = o.refusalMarker;
  if (prompts && main) {
    before = scoreHeldout(gpt, tok, template, prompts, { refusalMarker, maxNewTokens: o.maxNewTokens });
    for (const [i, line] of formatReport(before).entries()) log(i === 0 ? `before fine-tuning: ${line}` : line);
  }

  // Freezing (the --freeze patterns, plus the token embedding in full fine-tuning unless trainEmbeddings), then LoRA
  // (which freezes everything but its adapters). New token rows must learn, so the token embedding stays trainable
  // under LoRA when tokens were added, unless a --freeze pattern names it.
  let frozenByPattern = new Set<string>();
  const embName = tokenEmbeddingName(gpt);
  const freeze = [...(o.freeze ?? [])];
  if (!o.lora && !o.trainEmbeddings && !freeze.some((p) => namePattern(p).test(embName))) {
    freeze.push(embName.replace(/\.weight$/, ''));
    log(`${embName} stays frozen (pass --train-embeddings to train it too)`);
  }
  if (freeze.length) {
    const r = freezeParameters(gpt, freeze);
    frozenByPattern = new Set(Object.values(r.matched).flat());
    for (const [p, names] of Object.entries(r.matched)) log(`--freeze ${p}: ${names.length} parameter${names.length === 1 ? '' : 's'} (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', ...' : ''})`);
  }
  let lora: AdapterConfig | null = null;
  const loraTargets = o.lora ? [...(o.lora.targets?.length ? o.lora.targets : DEFAULT_LORA_TARGETS[arch])] : [];
  if (o.lora) {
    const r = applyLoRA(gpt, { rank: o.lora.rank, alpha: o.lora.alpha, dropout: o.lora.dropout, targets: loraTargets });
    lora = adapterConfig(gpt, loraTargets, resolve(o.from));
    log(`LoRA rank ${lora.r}, alpha ${lora.lora_alpha} on ${r.adapted.length} layers (${r.adapted.slice(0, 3).join(', ')}${r.adapted.length > 3 ? ', ...' : ''})`);
    if (grown > 0 && !frozenByPattern.has(embName)) {
      tokenEmbedding(gpt).weight.requiresGrad = true;
      log(`${embName} stays trainable: the new special tokens need embeddings (freeze it with --freeze ${embName.replace(/\.weight$/, '')})`);
    }
    // An untied head (a Llama's lm_head) grew its own rows: the new tokens must be predictable too.
    if (grown > 0 && gpt.lm_head.weight !== tokenEmbedding(gpt).weight && !frozenByPattern.has('lm_head.weight')) {
      gpt.lm_head.weight.requiresGrad = true;
      log('lm_head.weight stays trainable: the untied head grew rows for the new tokens (freeze it with --freeze lm_head)');
    }
  }
  const trainable = gpt.numParameters({ trainableOnly: true });
  const total = gpt.numParameters();
  if (trainable === 0) throw new Error('fine-tuning: every parameter is frozen; nothing would train');
  log(`training ${trainable} of ${total} parameters (${((100 * trainable) / total).toFixed(2)}%)`);

  const prep = prepareRows(data.examples, (c) => encodeConversation(tok, template, c.messages), gpt.config.context);
  if (prep.truncated) log(`${prep.truncated} example${prep.truncated === 1 ? '' : 's'} cut to the context of ${gpt.config.context} tokens`);
  if (prep.dropped.length) log(`${prep.dropped.length} example${prep.dropped.length === 1 ? '' : 's'} dropped: no reply token within the context (lines ${prep.dropped.slice(0, 10).join(', ')})`);
  if (prep.rows.length === 0) throw new Error('fine-tuning: no example has a reply within the model\'s context');
  const mix = o.mix ?? FINETUNE_DEFAULTS.mix;
  if (!(mix >= 0 && mix < 1)) throw new Error(`fine-tuning: mix must be a share in [0, 1), got ${mix}`);
  if (mix > 0) {
    const n = Math.round((prep.rows.length * mix) / (1 - mix));
    prep.rows.push(...pretrainRows(tok, { rows: n, length: Math.min(64, gpt.config.context), seed, source: o.mixData }));
    log(`mixed in ${n} rows of pre-training text (${o.mixData ?? 'the Brown corpus'}; ${(100 * mix).toFixed(0)}% of the rows)`);
  }
  const padId = tok.specialTokens().get(IM_END) ?? tok.specialTokens().get('<|endoftext|>') ?? 0;
  // Batches are global (batch size x world rows); the Trainer gives each rank its slice.
  const batches = new PaddedBatches(prep.rows, { batchSize: (o.batchSize ?? 8) * world, padId, seed, minRows: world });
  const epochs = o.epochs ?? (o.maxSteps ? undefined : FINETUNE_DEFAULTS.epochs);
  const totalSteps = Math.min(o.maxSteps ?? Infinity, epochs ? epochs * batches.length : Infinity);
  const lr = o.lr ?? (o.lora ? FINETUNE_DEFAULTS.loraLr : FINETUNE_DEFAULTS.lr);
  const optimizer = new AdamW(gpt.paramGroups(o.weightDecay ?? 0), { lr });
  const schedule = new Scheduler(optimizer, cosineWithWarmup({ warmup: Math.min(10, Math.floor(totalSteps / 10)), total: totalSteps, floor: 0.1 }));
  const out = resolve(o.out);
  const runConfig = {
    model: { ...gpt.config },
    finetune: {
      from: resolve(o.from), data: resolve(o.data), epochs: epochs ?? null, max_steps: o.maxSteps ?? null, lr,
      batch_size: o.batchSize ?? 8, mix, mix_data: o.mixData ?? null, freeze, train_embeddings: o.trainEmbeddings ?? false, lora: lora as unknown as JSONValue, added_tokens: addedTokens,
      chat_template: templateSource, seed,
    },
  } as Record<string, JSONValue>;
  const trainer = new Trainer<ChatBatch>({
    model: gpt, optimizer, schedule, loss, train: batches, epochs, maxSteps: o.maxSteps, runDir: out, config: runConfig,
    clipGradNorm: 1, logEvery: 5, tokensPerBatch: (b) => b.tokens, progress: o.progress ?? 'auto', seed,
    checkpoints: { keepLast: 1 },
    onStep: divergenceGuard(tok.vocabSize),
  });
  // The tokenizer (with the chat tokens) and its config go next to the checkpoints, so the run loads as a model.
  const tc: TokenizerConfig = tokenizerConfig(tok, { chatTemplate: templateSource, context: gpt.config.context });
  if (main) {
    tok.save(join(out, 'tokenizer.json'));
    writeTokenizerConfig(join(out, 'tokenizer_config.json'), tc);
  }
  const t0 = performance.now();
  let fit: FitResult;
  try {
    fit = await trainer.fit({ resume: o.resume ?? false });
  } catch (err) {
    throw explainDivergence(err, out, optimizer.paramGroups[0].initialLr, (lr) => `the same kiln finetune command with --resume --lr ${lr}`);
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  if (fit.resumedFrom !== undefined && fit.resumedFrom !== null) log(`resumed from step ${fit.resumedFrom}`);
  log(`trained ${fit.step} steps in ${trainSeconds.toFixed(1)} s`);
  if (lora && main) {
    // The adapters alone, as PEFT saves them; a grown token embedding travels with them (modules_to_save).
    const sd = adapterStateDict(gpt);
    const extra: string[] = [];
    const emb = tokenEmbedding(gpt).weight;
    if (emb.requiresGrad) {
      sd[`base_model.model.${embName}`] = emb.detach();
      extra.push(embName.replace(/\.weight$/, ''));
    }
    if (gpt.lm_head.weight !== emb && gpt.lm_head.weight.requiresGrad) {
      sd['base_model.model.lm_head.weight'] = gpt.lm_head.weight.detach();
      extra.push('lm_head');
    }
    saveSafetensors(join(out, 'adapter_model.safetensors'), sd, { metadata: { format: 'pt' } });
    writeFileAtomic(join(out, 'adapter_config.json'), `${JSON.stringify({ ...lora, modules_to_save: extra.length ? extra : null }, null, 2)}\n`);
    log(`saved the LoRA adapters alone to ${join(out, 'adapter_model.safetensors')}`);
  }
  let after: HeldoutScore | undefined;
  if (prompts && main) {
    after = scoreHeldout(gpt, tok, template, prompts, { refusalMarker, maxNewTokens: o.maxNewTokens });
    for (const [i, line] of formatReport(after).entries()) log(i === 0 ? `after fine-tuning:  ${line}` : line);
    const dump = (s: HeldoutScore) => ({ ...s, summary: scoreSummary(s), replies: s.replies.map((r) => ({ kind: r.kind, prompt: r.messages[r.messages.length - 1].content, reply: r.reply, declined: r.declined, correct: r.correct ?? null })) });
    writeFileAtomic(join(out, 'heldout.json'), `${JSON.stringify({ train_seconds: trainSeconds, before: dump(before!), after: dump(after) }, null, 2)}\n`);
  }
  return {
    out, fit, examples: data.examples.length, skipped: data.skipped, truncated: prep.truncated, dropped: prep.dropped,
    addedTokens, trainable, total, before, after, trainSeconds,
  };
}

/** A folder --resume can continue: a fine-tuning run (config.json with "finetune") with a checkpoint. */
function checkResumable(out: string): void {
  let cfg: { finetune?: unknown } | null = null;
  try {
    cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { finetune?: unknown };
  } catch {
    // reported below
  }
  if (!cfg || typeof cfg.finetune !== 'object' || !existsSync(join(out, 'checkpoints'))) {
    throw new Error(`--resume: '${out}' holds no fine-tuning run to continue (expected config.json with "finetune" and checkpoints/); drop --resume to start one`);
  }
}

/** Checks a freeze pattern's syntax early (the CLI calls it while parsing flags). */
export function checkFreezePattern(p: string): string { namePattern(p); return p; }

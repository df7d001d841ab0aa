// `kiln finetune`: supervised fine-tuning of a GPT or Llama on chat conversations or prompt/completion pairs, with the loss
// on the assistant's tokens only, optional freezing by name pattern or LoRA adapters, and before/after figures on
// held-out prompts. Thin: parses and checks flags, then calls kiln.recipes.finetune.finetune.

import type { Command } from 'commander';
import * as kiln from '../index.js';
import { dashboardOptions, withDashboard, type DashboardFlags } from './with-dashboard.js';
import { VERIFY_HELP } from './generate.js';

interface Raw extends DashboardFlags {
  from?: string; data?: string; out?: string; epochs?: string; maxSteps?: string; lr?: string; batchSize?: string;
  weightDecay?: string; freeze?: string[]; loraRank?: string; loraAlpha?: string; loraDropout?: string; loraTargets?: string;
  skipBadLines?: boolean; mix?: string; mixData?: string; heldout?: string; refusalMarker?: string; maxNewTokens?: string; seed?: string; progress?: string;
  resume?: boolean; verify?: boolean; trainEmbeddings?: boolean;
}

function num(v: string | undefined, flag: string, kind: 'posint' | 'int' | 'pos' | 'frac'): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  const ok = v.trim() !== '' && Number.isFinite(x) && (kind === 'posint' ? Number.isInteger(x) && x > 0
    : kind === 'int' ? Number.isInteger(x) : kind === 'pos' ? x > 0 : x >= 0 && x < 1);
  if (!ok) {
    const want = { posint: 'a positive integer', int: 'an integer', pos: 'a positive number', frac: 'a number in [0, 1)' }[kind];
    throw new Error(`${flag} expects ${want}, got '${v}'`);
  }
  return x;
}

/** Turns parsed flags into finetune options, failing with one sentence per bad flag. */
export function finetuneOptions(raw: Raw): kiln.recipes.finetune.FinetuneOptions {
  for (const f of ['from', 'data', 'out'] as const) if (!raw[f]) throw new Error(`--${f} is required`);
  const rank = num(raw.loraRank, '--lora-rank', 'posint');
  const loraFlags = ([['--lora-alpha', raw.loraAlpha], ['--lora-dropout', raw.loraDropout], ['--lora-targets', raw.loraTargets]] as const)
    .filter(([, v]) => v !== undefined).map(([f]) => f);
  if (rank === undefined && loraFlags.length) throw new Error(`${loraFlags.join(', ')} need${loraFlags.length === 1 ? 's' : ''} --lora-rank`);
  // Without --lora-targets the recipe picks the architecture's attention projections (DEFAULT_LORA_TARGETS).
  const targets = raw.loraTargets === undefined ? undefined : raw.loraTargets.split(',').map((s) => s.trim()).filter(Boolean);
  if (rank !== undefined && targets !== undefined && targets.length === 0) {
    throw new Error('--lora-targets expects a comma-separated list of layer names, e.g. c_attn,attn.c_proj (GPT) or q_proj,v_proj (Llama)');
  }
  const progress = raw.progress ?? 'auto';
  if (!['auto', 'bar', 'lines', 'none'].includes(progress)) throw new Error(`--progress expects auto, bar, lines or none, got '${progress}'`);
  return {
    from: raw.from!, data: raw.data!, out: raw.out!,
    epochs: num(raw.epochs, '--epochs', 'posint'),
    maxSteps: num(raw.maxSteps, '--max-steps', 'posint'),
    lr: num(raw.lr, '--lr', 'pos'),
    batchSize: num(raw.batchSize, '--batch-size', 'posint'),
    weightDecay: num(raw.weightDecay, '--weight-decay', 'frac'),
    freeze: raw.freeze ?? [],
    trainEmbeddings: raw.trainEmbeddings ?? false,
    lora: rank === undefined ? null : {
      rank, alpha: num(raw.loraAlpha, '--lora-alpha', 'pos') ?? 2 * rank, dropout: num(raw.loraDropout, '--lora-dropout', 'frac') ?? 0, targets,
    },
    skipBadLines: raw.skipBadLines ?? false,
    mix: num(raw.mix, '--mix', 'frac'),
    mixData: raw.mixData,
    heldout: raw.heldout,
    refusalMarker: raw.refusalMarker,
    maxNewTokens: num(raw.maxNewTokens, '--max-new-tokens', 'posint'),
    seed: num(raw.seed, '--seed', 'int'),
    progress: progress === 'none' ? false : (progress as 'auto' | 'bar' | 'lines'),
    resume: raw.resume ?? false,
    verify: raw.verify ?? true,
  };
}

export function register(program: Command): void {
  const cmd = program
    .command('finetune')
    .description('Fine-tune a GPT or Llama on chat conversations ({"messages": [...]}) or prompt/completion pairs, JSONL, with the loss on ' +
      "the assistant's tokens only. Adds ChatML tokens (<|im_start|>, <|im_end|>) to the tokenizer and embedding, and writes a run " +
      'folder (checkpoints, tokenizer.json, tokenizer_config.json with the chat template, metrics.jsonl; LoRA adapters alone).')
    .requiredOption('--from <dir>', 'the model to start from: a run folder (its best checkpoint), a frozen Kiln model folder, or a Hugging Face GPT-2 or LlamaForCausalLM folder')
    .requiredOption('--data <file>', 'training data, JSONL: {"messages": [{"role": "system"|"user"|"assistant", "content": ...}]} or {"prompt": ..., "completion": ...} per line')
    .requiredOption('--out <dir>', 'the fine-tuning run folder to create')
    .option('--epochs <n>', 'passes over the data (default 2 unless --max-steps is given)')
    .option('--max-steps <n>', 'optimizer steps in all (with --epochs, whichever ends first)')
    .option('--lr <x>', 'peak learning rate of AdamW, warmup then cosine (default 2e-3, or 3e-3 with LoRA)')
    .option('--batch-size <n>', 'conversations per batch, padded to the longest (default 8)')
    .option('--weight-decay <x>', 'AdamW weight decay on matrices (default 0)')
    .option('--freeze <pattern>', 'freeze parameters whose dotted names match (repeatable): e.g. transformer.wte, transformer.h.{0..1}.*, transformer.h.[0-3].attn.* (GPT), model.embed_tokens, model.layers.{0..1}.* (Llama)',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--train-embeddings', 'train the token embedding too (by default full fine-tuning keeps it, and a tied LM head, frozen: measured better on the bundled set)')
    .option('--lora-rank <n>', 'train LoRA adapters of this rank instead of the weights (the base weights stay frozen)')
    .option('--lora-alpha <x>', 'LoRA scale alpha; the update is scaled by alpha / rank (default 2 x rank)')
    .option('--lora-dropout <x>', 'dropout on the adapters\' input (default 0)')
    .option('--lora-targets <list>', 'comma-separated layer names or patterns to adapt (default: c_attn on a GPT, q_proj,k_proj,v_proj on a Llama): e.g. c_attn,attn.c_proj,mlp.c_fc or q_proj,v_proj,o_proj,gate_proj,up_proj,down_proj')
    .option('--skip-bad-lines', 'skip malformed lines of --data (and say how many) instead of refusing the file')
    .option('--mix <x>', 'share of training rows that are pre-training text, against forgetting (default 0; 0.2 measured worse on the bundled data): 0.25 adds one text row per three conversations')
    .option('--mix-data <path>', 'the text mixed in by --mix: a file or folder (default: the bundled Brown corpus)')
    .option('--heldout <file>', 'held-out prompts (JSONL with "kind": "harmful" or "benign") to measure before and after: share of harmful declined, benign answered')
    .option('--refusal-marker <text>', 'the phrase that marks a reply as declined (default "I can\'t help with that")')
    .option('--max-new-tokens <n>', 'longest reply generated for the held-out prompts (default 48)')
    .option('--seed <n>', 'seed of the data order, new embedding rows and dropout (default 1337)')
    .option('--progress <mode>', 'auto (default), bar, lines or none')
    .option('--resume', 'continue the fine-tuning run in --out from its newest checkpoint (after a kill or Ctrl-C); give the same flags, or a new --lr, --epochs or --max-steps')
    .option('--no-verify', VERIFY_HELP)
    .addHelpText('after', '\nExamples:\n' +
      '  kiln finetune --from runs/small --data data/finetune/train.jsonl --heldout data/finetune/heldout.jsonl --out runs/chat\n' +
      '  kiln finetune --from runs/small --data chats.jsonl --out runs/chat-lora --lora-rank 8 --lora-targets c_attn,attn.c_proj\n' +
      '  kiln finetune --from runs/small --data chats.jsonl --out runs/chat-top --freeze "transformer.h.{0..1}.*"\n');
  dashboardOptions(cmd).action(async (raw: Raw) => {
    const options = finetuneOptions(raw);
    // Under mpirun, rank 0 alone serves the dashboard and prints; the other ranks are quiet.
    const main = kiln.distributed.rank() === 0;
    const r = await withDashboard({ ...raw, dashboard: raw.dashboard && main }, options.out, () => kiln.recipes.finetune.finetune(options));
    if (!main) return;
    console.log(`fine-tuned ${r.examples} examples in ${r.fit.step} steps (${r.fit.stopReason}); run folder ${r.out}`);
    if (r.before && r.after) {
      console.log(`held-out prompts, before: ${kiln.recipes.finetune.formatScore(r.before)}`);
      console.log(`held-out prompts, after:  ${kiln.recipes.finetune.formatScore(r.after)}`);
    }
    console.log(`export it with: kiln export --from ${r.out} --out <dir>`);
  });
}

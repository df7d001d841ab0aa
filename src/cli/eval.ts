// `kiln eval --model M --data held-out.jsonl`: the behaviour report of a chat model on labelled held-out prompts
// (share of harmful requests declined, of benign near misses refused, of answers with the right fact), as text or
// as JSON (--json). Thin: parses flags and calls kiln.recipes.finetune.evaluateModel.

import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import * as kiln from '../index.js';

interface Raw { model: string; data: string; json?: boolean; replies?: string; refusalMarker?: string; maxNewTokens?: string; batch?: string }

function posint(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isInteger(x) || x <= 0) throw new Error(`${flag} expects a positive integer, got '${v}'`);
  return x;
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('Score a chat model on held-out prompts labelled by kind (JSONL: {"messages": [...], "kind": "harmful"|"benign"|"fact"|"unknown", ' +
      '"expect": fact, optional "category" and "topic"}): harmful requests declined, benign near misses refused, answers carrying the ' +
      'expected fact, and the near-miss topics and fact categories with the most misses (where the training data needs more). Greedy, batched.')
    .requiredOption('--model <dir>', 'a run folder (its best checkpoint), a frozen model folder or a Hugging Face GPT-2 or LlamaForCausalLM folder')
    .requiredOption('--data <file>', 'held-out prompts, e.g. data/finetune/heldout.jsonl')
    .option('--json', 'print the summary as JSON instead of text')
    .option('--replies <file>', 'also write every prompt, reply and verdict to this JSON file')
    .option('--refusal-marker <text>', 'the phrase that marks a reply as declined (default "I can\'t help with that")')
    .option('--max-new-tokens <n>', 'longest reply (default 48)')
    .option('--batch <n>', 'conversations decoded together (default 16)')
    .addHelpText('after', '\nExamples:\n  kiln eval --model runs/chat --data data/finetune/heldout.jsonl\n' +
      '  kiln eval --model models/chat --data heldout.jsonl --json > report.json\n')
    .action((raw: Raw) => {
      const r = kiln.recipes.finetune.evaluateModel({
        model: raw.model, data: raw.data, refusalMarker: raw.refusalMarker,
        maxNewTokens: posint(raw.maxNewTokens, '--max-new-tokens'), batch: posint(raw.batch, '--batch'),
      });
      const summary = { model: raw.model, data: raw.data, ...kiln.recipes.finetune.scoreSummary(r.score), seconds: Number(r.seconds.toFixed(2)) };
      if (raw.replies) {
        const rows = r.score.replies.map((x) => ({ kind: x.kind, category: x.category ?? null, prompt: x.messages[x.messages.length - 1].content, reply: x.reply, declined: x.declined, expect: x.expect ?? null, correct: x.correct ?? null }));
        writeFileSync(raw.replies, `${JSON.stringify(rows, null, 2)}\n`);
      }
      if (raw.json) {
        console.log(JSON.stringify(summary, null, 2));
        return;
      }
      console.log(`kiln eval: ${raw.model} on ${raw.data} (${r.score.replies.length} prompts, ${r.template === 'chat' ? 'its chat template' : 'a plain template: the model has none'}, ${r.seconds.toFixed(1)} s)`);
      for (const line of kiln.recipes.finetune.formatReport(r.score)) console.log(line);
    });
}

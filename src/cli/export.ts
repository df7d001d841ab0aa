// `kiln export`: freezes a model into a folder in Hugging Face GPT-2 form (config.json, model.safetensors with LoRA
// merged, tokenizer.json, tokenizer_config.json), optionally with float16 or bfloat16 weights.

import type { Command } from 'commander';
import * as kiln from '../index.js';
import { VERIFY_HELP } from './generate.js';

export function register(program: Command): void {
  program
    .command('export')
    .description('Write a frozen model folder from a run, a fine-tuning run (LoRA adapters merged), a frozen model or a Hugging Face ' +
      'GPT-2 folder: config.json, model.safetensors (Hugging Face GPT-2 names and layout), tokenizer.json, tokenizer_config.json. ' +
      'It loads in Python with transformers.GPT2LMHeadModel.from_pretrained(dir).')
    .requiredOption('--from <dir>', 'a run folder (its best checkpoint), a fine-tuning run, a frozen Kiln model folder, or a Hugging Face GPT-2 folder')
    .requiredOption('--out <dir>', 'the folder to write (must not exist or be empty, unless --overwrite)')
    .option('--dtype <type>', 'stored weight type: float32 (default), float16 or bfloat16')
    .option('--overwrite', 'replace a non-empty --out folder')
    .option('--no-verify', VERIFY_HELP)
    .action((raw: { from: string; out: string; dtype?: string; overwrite?: boolean; verify: boolean }) => {
      const dtype = (raw.dtype ?? 'float32') as kiln.hub.ExportDType;
      if (!kiln.hub.EXPORT_DTYPES.includes(dtype)) throw new Error(`--dtype expects float32, float16 or bfloat16, got '${raw.dtype}'`);
      const src = kiln.recipes.finetune.loadSourceModel(raw.from, { verify: raw.verify });
      const tc = src.tokenizerConfig ?? kiln.hub.tokenizerConfig(src.tokenizer, { context: src.model.config.context });
      const r = kiln.hub.exportModel(src.model, src.tokenizer, raw.out, {
        dtype, tokenizerConfig: tc, overwrite: raw.overwrite ?? false, source: raw.from,
      });
      if (r.staleRemoved.length) console.log(`removed ${r.staleRemoved.length} unfinished folder(s) a killed export left: ${r.staleRemoved.join(', ')}`);
      console.log(`exported ${r.tensors} tensors (${r.dtype}${src.kind === 'lora-run' ? ', LoRA merged' : ''}) from ${src.weightsPath} to ${r.dir}`);
    });
}

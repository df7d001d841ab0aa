// Freezing a GPT or Llama into a model folder in Hugging Face form (GPT-2 or LlamaForCausalLM): config.json (the HF
// config fields plus Kiln's own under "kiln"), model.safetensors (HF names and layout, LoRA merged, float32 or float16/bfloat16),
// tokenizer.json and tokenizer_config.json. The folder is written under a temporary name and renamed into place.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import type { CausalLM } from '../models/arch.js';
import { makeDirs, removeStaleTemps, renameDirAtomic, tempPathFor, writeFileAtomic } from '../io/atomic.js';
import { EXPORT_DTYPES, modelFolderFiles, type ExportDType } from './model-files.js';
import type { TokenizerConfig } from './tokenizer-config.js';

export { EXPORT_DTYPES, hfStateDict, modelFolderFiles, type ExportDType, type ModelFolderFiles, type ModelFolderOptions } from './model-files.js';

/** Options of exportModel. */
export interface ExportOptions {
  /** Stored weight type (default float32). */
  dtype?: ExportDType;
  /** tokenizer_config.json contents (chat template, bos/eos, ...). */
  tokenizerConfig?: TokenizerConfig;
  /** Replace an existing non-empty folder (default false: refuse, so nothing on disk is lost). */
  overwrite?: boolean;
  /** Recorded in config.json under kiln.source. */
  source?: string;
}

/** What exportModel wrote. */
export interface ExportResult {
  dir: string;
  files: string[];
  dtype: ExportDType;
  tensors: number;
  /** LoRA layers folded into their base weights. */
  merged: string[];
  /** Temporary folders of a killed export (whose process is gone) removed beside the output. */
  staleRemoved: string[];
}

function kilnVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Writes a frozen model folder. LoRA layers are merged into the model first (the model is changed in place).
 * `exportModel(gpt, tokenizer, 'models/chat', { dtype: 'bfloat16', tokenizerConfig })`
 */
export function exportModel(model: CausalLM, tokenizer: Tokenizer, outDir: string, options: ExportOptions = {}): ExportResult {
  const dtype = options.dtype ?? 'float32';
  if (!EXPORT_DTYPES.includes(dtype)) {
    throw new Error(`export: dtype must be one of ${EXPORT_DTYPES.join(', ')}, got ${JSON.stringify(dtype)}`);
  }
  const dir = resolve(outDir);
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new Error(`export: '${outDir}' exists and is not a folder`);
    if (readdirSync(dir).length > 0 && !options.overwrite) {
      throw new Error(`export: the folder '${outDir}' already exists and is not empty; choose another folder (kiln export --overwrite replaces it)`);
    }
  }
  if (tokenizer.vocabSize > model.config.vocabSize) {
    throw new Error(`export: the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${model.config.vocabSize}`);
  }
  makeDirs(dirname(dir), 'export folder');
  const staleRemoved = removeStaleTemps(dirname(dir)); // unfinished folders of an export that was killed
  const folder = modelFolderFiles(model, tokenizer, { dtype, tokenizerConfig: options.tokenizerConfig, source: options.source, version: kilnVersion() });
  const { merged } = folder;
  const tmp = tempPathFor(dir);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    for (const [name, data] of Object.entries(folder.files)) writeFileAtomic(join(tmp, name), data);
    renameDirAtomic(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  return {
    dir, dtype, merged, tensors: folder.tensors, staleRemoved,
    files: ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'],
  };
}

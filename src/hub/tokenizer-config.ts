// Hugging Face's tokenizer_config.json: the one reader and writer. It holds the chat template (`chat_template`,
// a Jinja string) and the special-token fields (bos/eos/pad) as transformers expects them, so a folder Kiln
// writes renders its chat template identically in Python.

import { existsSync, readFileSync } from 'node:fs';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { writeFileAtomic } from '../io/atomic.js';

/** ChatML's end-of-turn token (infer/chat-template's IM_END): the default eos of a tokenizer that has it. */
const CHATML_END = '<|im_end|>';

/** The fields of Hugging Face's tokenizer_config.json that Kiln writes and reads. */
export interface TokenizerConfig {
  chat_template?: string;
  bos_token?: string | null;
  eos_token?: string | null;
  pad_token?: string | null;
  unk_token?: string | null;
  model_max_length?: number;
  tokenizer_class?: string;
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  clean_up_tokenization_spaces?: boolean;
  added_tokens_decoder?: Record<string, { content: string; lstrip: boolean; normalized: boolean; rstrip: boolean; single_word: boolean; special: boolean }>;
  [key: string]: unknown;
}

/** tokenizer_config.json for a tokenizer and chat template (added_tokens_decoder lists its special tokens). */
export function tokenizerConfig(tok: Tokenizer, options: { chatTemplate?: string; context?: number; eosToken?: string; bosToken?: string; padToken?: string } = {}): TokenizerConfig {
  const decoder: TokenizerConfig['added_tokens_decoder'] = {};
  for (const [content, id] of [...tok.specialTokens()].sort((a, b) => a[1] - b[1])) {
    decoder[String(id)] = { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  }
  const specials = tok.specialTokens();
  const eos = options.eosToken ?? (specials.has(CHATML_END) ? CHATML_END : specials.has('<|endoftext|>') ? '<|endoftext|>' : null);
  return {
    tokenizer_class: 'GPT2Tokenizer',
    add_bos_token: false,
    add_eos_token: false,
    bos_token: options.bosToken ?? (specials.has('<|endoftext|>') ? '<|endoftext|>' : null),
    eos_token: eos,
    pad_token: options.padToken ?? eos,
    unk_token: null,
    model_max_length: options.context ?? 1024,
    clean_up_tokenization_spaces: false,
    added_tokens_decoder: decoder,
    ...(options.chatTemplate ? { chat_template: options.chatTemplate } : {}),
  };
}

/** Writes tokenizer_config.json (special tokens, chat template) atomically. */
export function writeTokenizerConfig(path: string, config: TokenizerConfig): void {
  writeFileAtomic(path, `${JSON.stringify(config, null, 2)}\n`);
}

/**
 * Reads tokenizer_config.json, or returns null when the file is absent. A list of named chat templates (which
 * Hugging Face also allows) becomes its 'default' entry.
 */
export function readTokenizerConfig(path: string): TokenizerConfig | null {
  if (!existsSync(path)) return null;
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new Error(`${path}: expected a JSON object`);
  const c = obj as TokenizerConfig;
  if (c.chat_template !== undefined && typeof c.chat_template !== 'string') {
    const list = c.chat_template as unknown;
    const named = Array.isArray(list) ? (list as { name?: string; template?: string }[]).find((t) => t.name === 'default') : undefined;
    if (named?.template) c.chat_template = named.template;
    else throw new Error(`${path}: chat_template must be a string (or a list with a 'default' entry)`);
  }
  return c;
}

/** The token string of a tokenizer_config.json entry ("<|im_end|>" or { content: "<|im_end|>" }). */
export function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/** bos_token / eos_token of a tokenizer config as plain strings, for a chat template. */
export function chatSpecialTokens(config: TokenizerConfig | null): { bos_token?: string; eos_token?: string } {
  return { bos_token: tokenString(config?.bos_token), eos_token: tokenString(config?.eos_token) };
}

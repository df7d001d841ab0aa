// The chat template: a Jinja string rendered with @huggingface/jinja (the engine made for HF chat templates),
// ChatML by default, stored in tokenizer_config.json as `chat_template` with bos/eos/pad fields as Hugging Face
// does, so the same template renders identically in Python's transformers.

import { existsSync, readFileSync } from 'node:fs';
import { Template } from '@huggingface/jinja';
import { writeFileAtomic } from '../io/atomic.js';
import type { Tokenizer } from '../data/tokenizer/index.js';
import type { ChatMessage } from './jsonl.js';

/** ChatML's turn markers, added to the tokenizer as special tokens. */
export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';
export const CHAT_SPECIAL_TOKENS: readonly string[] = [IM_START, IM_END];

/** ChatML: `<|im_start|>role\ncontent<|im_end|>\n` per turn; the generation prompt opens an assistant turn. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

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

export interface RenderOptions {
  /** Open an assistant turn at the end (what inference needs). */
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
}

/** A compiled chat template. `new ChatTemplate(CHATML_TEMPLATE).render([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true })` */
export class ChatTemplate {
  private readonly compiled: Template;

  constructor(readonly source: string = CHATML_TEMPLATE) {
    if (typeof source !== 'string' || source.length === 0) throw new Error('chat template: expected a non-empty Jinja string');
    try {
      this.compiled = new Template(source);
    } catch (e) {
      throw new Error(`chat template: cannot parse the Jinja template (${(e as Error).message})`);
    }
  }

  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    return this.compiled.render({
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
      bos_token: options.bosToken ?? '',
      eos_token: options.eosToken ?? '',
    });
  }
}

/** tokenizer_config.json for a tokenizer and chat template (added_tokens_decoder lists its special tokens). */
export function tokenizerConfig(tok: Tokenizer, options: { chatTemplate?: string; context?: number; eosToken?: string; bosToken?: string; padToken?: string } = {}): TokenizerConfig {
  const decoder: TokenizerConfig['added_tokens_decoder'] = {};
  for (const [content, id] of [...tok.specialTokens()].sort((a, b) => a[1] - b[1])) {
    decoder[String(id)] = { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  }
  const specials = tok.specialTokens();
  const eos = options.eosToken ?? (specials.has(IM_END) ? IM_END : specials.has('<|endoftext|>') ? '<|endoftext|>' : null);
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

export function writeTokenizerConfig(path: string, config: TokenizerConfig): void {
  writeFileAtomic(path, `${JSON.stringify(config, null, 2)}\n`);
}

/** Reads tokenizer_config.json, or returns null when the file is absent. */
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
    // Hugging Face also allows a list of named templates; take the default one.
    const list = c.chat_template as unknown;
    const named = Array.isArray(list) ? (list as { name?: string; template?: string }[]).find((t) => t.name === 'default') : undefined;
    if (named?.template) c.chat_template = named.template;
    else throw new Error(`${path}: chat_template must be a string (or a list with a 'default' entry)`);
  }
  return c;
}

// The chat template: a Jinja string rendered with @huggingface/jinja (the engine made for HF chat templates),
// ChatML by default, stored in tokenizer_config.json as `chat_template` with bos/eos/pad fields as Hugging Face
// does, so the same template renders identically in Python's transformers.

import { Template } from '@huggingface/jinja';
import type { ChatMessage } from './jsonl.js';

/** ChatML's turn markers, added to the tokenizer as special tokens. */
export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';
export const CHAT_SPECIAL_TOKENS: readonly string[] = [IM_START, IM_END];

/** ChatML: `<|im_start|>role\ncontent<|im_end|>\n` per turn; the generation prompt opens an assistant turn. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

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

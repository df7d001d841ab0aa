// Chat templates, the one module: turn a list of messages into the text a model was tuned on. A Jinja string
// (a folder's Hugging Face `chat_template`, or ChatML, which fine-tuning writes into tokenizer_config.json) is
// rendered with @huggingface/jinja, the engine made for HF chat templates, so a template renders as it does in
// Python's transformers. A model without one (a pre-trained base model) gets a plain "User: ... / Assistant:"
// template, so chat works on every model.

import { Template } from '@huggingface/jinja';

export type Role = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: Role;
  content: string;
}

/** The plain template for models without one: one "Role: content" line per message, then "Assistant:". */
export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}{{ message['role'] | capitalize }}: {{ message['content'] }}\n{% endfor %}" +
  "{% if add_generation_prompt %}Assistant:{% endif %}";

/** Stop sequences that end an assistant turn under the default template (the model starting the next turn). */
export const DEFAULT_CHAT_STOPS: readonly string[] = ['\nUser:', '\nSystem:', '\nAssistant:'];

/** ChatML's turn markers, added to the tokenizer as special tokens when fine-tuning with ChatML. */
export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';
export const CHAT_SPECIAL_TOKENS: readonly string[] = [IM_START, IM_END];

/** ChatML: `<|im_start|>role\ncontent<|im_end|>\n` per turn; the generation prompt opens an assistant turn. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface RenderOptions {
  /** Open an assistant turn at the end, so the text ends where the reply begins (default true). */
  addGenerationPrompt?: boolean;
  /** bos_token / eos_token for this rendering, over the template's own. */
  bosToken?: string;
  eosToken?: string;
  /**
   * Accept an empty message list (default false: a conversation needs a message). Fine-tuning renders the empty
   * prefix before a conversation whose first turn is the assistant's.
   */
  allowEmpty?: boolean;
}

/** A compiled chat template with the stop sequences that end an assistant turn. */
export class ChatTemplate {
  private readonly template: Template;
  /** Strings that end the assistant's reply (e.g. the template's end-of-turn marker). */
  readonly stops: readonly string[];

  /**
   * `source`: the Jinja text (default: {@link DEFAULT_CHAT_TEMPLATE}; {@link CHATML_TEMPLATE} is ChatML);
   * `specialTokens`: bos_token / eos_token values for the template (as tokenizer_config.json has them);
   * `stops`: end-of-turn strings.
   */
  constructor(readonly source: string = DEFAULT_CHAT_TEMPLATE,
    private readonly specialTokens: { bos_token?: string; eos_token?: string } = {}, stops?: readonly string[]) {
    if (typeof source !== 'string' || source.length === 0) throw new Error('chat template: expected a non-empty Jinja template string');
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new Error(`chat template: it does not parse as Jinja: ${(err as Error).message}`);
    }
    const isDefault = source === DEFAULT_CHAT_TEMPLATE;
    this.stops = stops ?? (isDefault ? DEFAULT_CHAT_STOPS : [specialTokens.eos_token, ...endMarkers(source)].filter(
      (s, i, a): s is string => typeof s === 'string' && s.length > 0 && a.indexOf(s) === i));
  }

  /** Whether this is the plain default template. */
  get isDefault(): boolean { return this.source === DEFAULT_CHAT_TEMPLATE; }

  /**
   * The text for these messages. `options` is RenderOptions, or just addGenerationPrompt (default true: the
   * text ends where the reply begins).
   * `new ChatTemplate(CHATML_TEMPLATE).render([{ role: 'user', content: 'hi' }])`
   */
  render(messages: readonly ChatMessage[], options: boolean | RenderOptions = true): string {
    const o: RenderOptions = typeof options === 'boolean' ? { addGenerationPrompt: options } : options;
    if (!(o.allowEmpty && Array.isArray(messages) && messages.length === 0)) checkMessages(messages);
    try {
      return this.template.render({
        messages,
        add_generation_prompt: o.addGenerationPrompt ?? true,
        bos_token: o.bosToken ?? this.specialTokens.bos_token ?? '',
        eos_token: o.eosToken ?? this.specialTokens.eos_token ?? '',
      });
    } catch (err) {
      throw new Error(`chat template: rendering failed: ${(err as Error).message}`);
    }
  }
}

/** End-of-turn markers that common templates use, when the template text mentions them. */
function endMarkers(source: string): string[] {
  return ['<|im_end|>', '<|eot_id|>', '<|end|>', '</s>', '<|endoftext|>'].filter((m) => source.includes(m));
}

const ROLES = new Set(['system', 'user', 'assistant']);

/** Checks a message list; throws one sentence naming the message at fault. */
export function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0) throw new Error('chat: messages must be a non-empty list');
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null) throw new Error(`chat: messages[${i}] must be an object { role, content }`);
    if (!ROLES.has(m.role)) throw new Error(`chat: messages[${i}].role must be 'system', 'user' or 'assistant', got ${JSON.stringify(m.role)}`);
    if (typeof m.content !== 'string') throw new Error(`chat: messages[${i}].content must be a string`);
  });
}

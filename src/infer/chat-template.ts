// Chat templates: turn a list of messages into the prompt a model was tuned on. A folder's Hugging Face style
// `chat_template` (Jinja) is rendered with @huggingface/jinja; a model without one (a pre-trained base model)
// gets a plain "User: ... / Assistant:" template, so chat works on every model.

import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** The plain template for models without one: one "Role: content" line per message, then "Assistant:". */
export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}{{ message['role'] | capitalize }}: {{ message['content'] }}\n{% endfor %}" +
  "{% if add_generation_prompt %}Assistant:{% endif %}";

/** Stop sequences that end an assistant turn under the default template (the model starting the next turn). */
export const DEFAULT_CHAT_STOPS: readonly string[] = ['\nUser:', '\nSystem:', '\nAssistant:'];

/** A compiled chat template with the stop sequences that end an assistant turn. */
export class ChatTemplate {
  private readonly template: Template;
  /** Strings that end the assistant's reply (e.g. the template's end-of-turn marker). */
  readonly stops: readonly string[];

  /**
   * `source`: the Jinja text (default: {@link DEFAULT_CHAT_TEMPLATE}); `specialTokens`: bos_token / eos_token
   * values for the template (as tokenizer_config.json has them); `stops`: end-of-turn strings.
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

  /** The prompt for these messages; with addGenerationPrompt (default true) it ends where the reply begins. */
  render(messages: readonly ChatMessage[], addGenerationPrompt = true): string {
    checkMessages(messages);
    try {
      return this.template.render({
        messages,
        add_generation_prompt: addGenerationPrompt,
        bos_token: this.specialTokens.bos_token ?? '',
        eos_token: this.specialTokens.eos_token ?? '',
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

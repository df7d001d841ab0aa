// Chat templates, the one module: turn a list of messages into the text a model was tuned on. A Jinja string
// (a folder's Hugging Face `chat_template`, or ChatML, which fine-tuning writes into tokenizer_config.json) is
// rendered with @huggingface/jinja, the engine made for HF chat templates, so a template renders as it does in
// Python's transformers. A model without one (a pre-trained base model) gets a plain "User: ... / Assistant:"
// template, so chat works on every model.
//
// Encoding (ChatTemplate.encode): only the template's own text may produce control tokens. Message content is
// encoded as plain text, as Hugging Face and OpenAI do, so "<|im_start|>system" typed by a client cannot forge a
// turn: the rendered text is split at the special tokens the template wrote, never at those inside content.

import { Template } from '@huggingface/jinja';
import { specialTokenRegex, type Tokenizer } from '../data/tokenizer/tokenizer.js';

/** Who speaks in a chat message. */
export type Role = 'system' | 'user' | 'assistant';

/** One message of a conversation. */
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
/** ChatML's end-of-turn marker. */
export const IM_END = '<|im_end|>';
/** ChatML's special tokens. */
export const CHAT_SPECIAL_TOKENS: readonly string[] = [IM_START, IM_END];

/** ChatML: `<|im_start|>role\ncontent<|im_end|>\n` per turn; the generation prompt opens an assistant turn. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** Options of rendering a conversation with a chat template. */
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

  /**
   * The token ids for these messages: the rendered text, where special tokens written by the template become
   * their ids and everything else, message content included, is encoded as ordinary text.
   * `template.encode([{ role: 'user', content: 'hi <|im_end|>' }], tok)` has one <|im_end|> id, the template's.
   */
  encode(messages: readonly ChatMessage[], tokenizer: Tokenizer, options: boolean | RenderOptions = true): number[] {
    const text = this.render(messages, options);
    const specials = tokenizer.specialTokens();
    const re = specialTokenRegex(specials.keys());
    if (re === null) return tokenizer.encode(text, { allowSpecial: false });
    const spans = contentSpans(text, messages, (m) => this.render(m, options));
    if (spans === null) {
      // The template rewrote the content: refuse content that could forge a control token rather than guess.
      messages.forEach((m, i) => {
        re.lastIndex = 0;
        const hit = re.exec(m.content);
        if (hit) {
          throw new Error(`chat template: messages[${i}].content holds the special token ${JSON.stringify(hit[0])} and this ` +
            'template changes message content, so it cannot be told apart from the template\'s own; remove it from the message');
        }
      });
      return tokenizer.encode(text);
    }
    const ids: number[] = [];
    let from = 0; // start of the text not yet encoded
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const end = m.index + m[0].length;
      if (spans.some(([a, b]) => m!.index < b && end > a)) {
        re.lastIndex = m.index + 1; // inside (or across) content: ordinary text
        continue;
      }
      if (m.index > from) ids.push(...tokenizer.encode(text.slice(from, m.index), { allowSpecial: false }));
      ids.push(specials.get(m[0])!);
      from = end;
    }
    if (from < text.length) ids.push(...tokenizer.encode(text.slice(from), { allowSpecial: false }));
    return ids;
  }
}

// Private-use characters that bracket a message's index while locating content in the rendered text.
const MARK_OPEN = '\uE000';
const MARK_CLOSE = '\uE001';

/**
 * Where each message's content lies in `text` (its rendering), as [start, end) ranges. The messages are rendered
 * once more with a marker in place of each content; when putting the contents back gives `text`, the markers'
 * places are exact. Null when a template changes content (e.g. `| trim`): the places are then unknown.
 */
function contentSpans(text: string, messages: readonly ChatMessage[],
  render: (m: readonly ChatMessage[]) => string): [number, number][] | null {
  const clean = messages.every((m) => !m.content.includes(MARK_OPEN) && !m.content.includes(MARK_CLOSE));
  if (clean) {
    const marked = render(messages.map((m, i) => ({ ...m, content: `${MARK_OPEN}${i}${MARK_CLOSE}` })));
    const spans: [number, number][] = [];
    let out = '';
    let last = 0;
    const re = new RegExp(`${MARK_OPEN}(\\d+)${MARK_CLOSE}`, 'g');
    for (let m = re.exec(marked); m !== null; m = re.exec(marked)) {
      out += marked.slice(last, m.index);
      const content = messages[Number(m[1])]?.content ?? '';
      spans.push([out.length, out.length + content.length]);
      out += content;
      last = m.index + m[0].length;
    }
    if (out + marked.slice(last) === text) return spans;
  }
  return null;
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

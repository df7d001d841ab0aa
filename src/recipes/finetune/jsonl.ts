// Fine-tuning data: JSONL of chat conversations ({"messages": [...]}) or prompt/completion pairs, checked line
// by line. Every bad line is reported with its number and the reason; the caller decides to stop or skip.

import { readFileSync } from 'node:fs';
import type { ChatMessage, Role } from '../../infer/chat-template.js';

export type { ChatMessage, Role };
/** The roles a chat message may have. */
export const ROLES: readonly Role[] = ['system', 'user', 'assistant'];

/** One training example: a conversation (prompt/completion pairs become a user turn and an assistant turn). */
export interface Conversation {
  messages: ChatMessage[];
  /** 1-based line number in the source file. */
  line: number;
}

/** A line of a JSONL file that could not be used, and why. */
export interface LineError { line: number; reason: string }

/** The conversations parsed from a JSONL file and the lines refused. */
export interface ParseResult {
  examples: Conversation[];
  /** Bad lines, in file order. */
  errors: LineError[];
  /** Blank lines skipped (not errors). */
  blank: number;
}

/** Checks one parsed JSON line and returns its conversation, or throws with the reason. */
export function toConversation(obj: unknown): ChatMessage[] {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new Error(`expected a JSON object with "messages" or "prompt" and "completion", found ${Array.isArray(obj) ? 'an array' : JSON.stringify(obj)}`);
  }
  const o = obj as Record<string, unknown>;
  if ('messages' in o) {
    const ms = o.messages;
    if (!Array.isArray(ms)) throw new Error(`"messages" must be an array of {role, content}, found ${typeof ms}`);
    if (ms.length === 0) throw new Error('"messages" is empty');
    const out: ChatMessage[] = ms.map((m: unknown, i) => {
      if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new Error(`message ${i + 1} is not an object`);
      const { role, content } = m as Record<string, unknown>;
      if (typeof role !== 'string') throw new Error(`message ${i + 1} has no "role" string`);
      if (!(ROLES as readonly string[]).includes(role)) {
        throw new Error(`message ${i + 1} has unknown role ${JSON.stringify(role)} (expected "system", "user" or "assistant")`);
      }
      if (typeof content !== 'string') throw new Error(`message ${i + 1} (${role}) has no "content" string`);
      if (role === 'system' && i !== 0) throw new Error(`message ${i + 1} is a system message; only the first message may be one`);
      return { role: role as Role, content };
    });
    if (!out.some((m) => m.role === 'assistant')) throw new Error('the conversation has no assistant turn, so nothing would be learned from it');
    const bad = out.find((m) => m.role === 'assistant' && m.content.trim() === '');
    if (bad) throw new Error(`message ${out.indexOf(bad) + 1} is an empty assistant turn`);
    return out;
  }
  if ('prompt' in o || 'completion' in o) {
    if (typeof o.prompt !== 'string') throw new Error('"prompt" must be a string');
    if (typeof o.completion !== 'string') throw new Error('"completion" must be a string');
    if (o.completion.trim() === '') throw new Error('"completion" is empty, so nothing would be learned from it');
    return [{ role: 'user', content: o.prompt }, { role: 'assistant', content: o.completion }];
  }
  throw new Error(`expected "messages" or "prompt" and "completion", found keys ${Object.keys(o).map((k) => JSON.stringify(k)).join(', ') || 'none'}`);
}

/**
 * The longest line accepted (characters): a conversation longer than this cannot fit any context Kiln trains,
 * and parsing a 50 MB line costs seconds and gigabytes before anything would fail.
 */
export const MAX_LINE_CHARS = 1 << 20;

/** Parses JSONL text line by line; never throws for bad lines (they go to errors). */
export function parseFinetuneJsonl(text: string, maxLineChars = MAX_LINE_CHARS): ParseResult {
  const examples: Conversation[] = [];
  const errors: LineError[] = [];
  let blank = 0;
  const lines = text.split(/\r?\n/);
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.length > maxLineChars) {
      errors.push({ line, reason: `the line is ${raw.length} characters long, more than the limit of ${maxLineChars}; split the example or shorten it` });
      return;
    }
    if (raw.trim() === '') { blank++; return; }
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (e) {
      errors.push({ line, reason: `not valid JSON (${(e as Error).message})` });
      return;
    }
    try {
      examples.push({ messages: toConversation(obj), line });
    } catch (e) {
      errors.push({ line, reason: (e as Error).message });
    }
  });
  return { examples, errors, blank };
}

/**
 * Decodes UTF-8, refusing bytes that are not UTF-8 (instead of replacing them with U+FFFD and training on the
 * replacement): the error names the file, line and byte.
 */
export function decodeUtf8Strict(bytes: Uint8Array, path: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const at = firstBadUtf8(bytes);
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < at; i++) if (bytes[i] === 10) { line++; lineStart = i + 1; }
    throw new Error(`fine-tuning data ${path} line ${line}: byte 0x${bytes[at].toString(16).padStart(2, '0')} at column ${at - lineStart + 1} ` +
      'is not UTF-8; save the file as UTF-8');
  }
}

/** The offset of the first byte that does not start or continue a valid UTF-8 sequence. */
function firstBadUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    const n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (n < 0) return i;
    for (let k = 1; k <= n; k++) if (i + k >= b.length || (b[i + k] & 0xc0) !== 0x80) return i;
    i += n + 1;
  }
  return Math.max(0, b.length - 1); // overlong or surrogate forms: point at the end rather than guess
}

/** Options of loadFinetuneData. */
export interface LoadFinetuneOptions {
  /** Drop bad lines (and say how many) instead of refusing the file. */
  skipBadLines?: boolean;
  /** How many errors to list in the message (default 10). */
  maxListed?: number;
}

/** The conversations loaded from a JSONL file and the lines skipped. */
export interface LoadedData { examples: Conversation[]; skipped: LineError[] }

/**
 * Reads a fine-tuning JSONL file. With errors and no skipBadLines it throws one message listing the bad lines
 * ('data.jsonl line 3: not valid JSON (...)'); with skipBadLines it returns them as skipped.
 */
export function loadFinetuneData(path: string, options: LoadFinetuneOptions = {}): LoadedData {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`fine-tuning data ${path}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const text = decodeUtf8Strict(bytes, path);
  const { examples, errors } = parseFinetuneJsonl(text);
  if (errors.length && !options.skipBadLines) {
    const n = options.maxListed ?? 10;
    const listed = errors.slice(0, n).map((e) => `${path} line ${e.line}: ${e.reason}`).join('\n');
    const more = errors.length > n ? `\n... and ${errors.length - n} more` : '';
    throw new Error(`${errors.length} bad line${errors.length === 1 ? '' : 's'} in the fine-tuning data; fix them or pass --skip-bad-lines:\n${listed}${more}`);
  }
  if (examples.length === 0) throw new Error(`fine-tuning data ${path}: no usable examples (${errors.length} bad lines)`);
  return { examples, skipped: errors };
}

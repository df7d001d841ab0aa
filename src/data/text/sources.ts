// Text sources: a folder of .txt/.md files, a single text file, or JSONL with a text field, read as
// documents. Every file must be UTF-8; a bad file is named in the error with the offset or line.

import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { decodeUtf8Strict, firstInvalidUtf8 } from './utf8.js';

/** One document of a corpus: its text and where it came from ("notes/a.md", "data.jsonl:12"). */
export interface TextDocument {
  text: string;
  source: string;
}

/** Options for {@link readTextSource}. */
export interface TextSourceOptions {
  /**
   * How a single .txt/.md file becomes documents: 'paragraph' (default: split on blank lines, so a
   * validation split can hold out whole paragraphs) or 'file' (one document). Files found in a folder
   * are always one document each.
   */
  split?: 'paragraph' | 'file';
  /** The JSONL field holding the text (default "text"). */
  field?: string;
}

const TEXT_EXT = new Set(['.txt', '.md']);
const JSONL_EXT = new Set(['.jsonl', '.ndjson']);

/**
 * Reads a corpus as documents: a folder (its .txt/.md files, recursively, sorted by path, one document
 * each; hidden files skipped), a .txt/.md file (split on blank lines), or a .jsonl file (one JSON object a
 * line with a string `text` field; blank lines skipped). Empty documents are dropped; a corpus with no
 * text at all is an error.
 *
 * @example
 * ```ts
 * const docs = readTextSource('corpus/');      // [{ text, source: 'a.txt' }, ...]
 * const rows = readTextSource('data.jsonl');    // [{ text, source: 'data.jsonl:1' }, ...]
 * ```
 */
export function readTextSource(path: string, options: TextSourceOptions = {}): TextDocument[] {
  const docs = [...iterateTextSource(path, options)];
  if (docs.length === 0) {
    throw new Error(`Text source ${path}: expected at least one non-empty document, found none.`);
  }
  return docs;
}

/**
 * The documents of {@link readTextSource} one at a time, reading one file (or one JSONL line) at a time,
 * so a corpus larger than memory can be tokenized. Iterating again reads the files again.
 */
export function iterateTextSource(path: string, options: TextSourceOptions = {}): Iterable<TextDocument> {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new Error(`Text source ${path}: expected a file or folder, found ${(err as NodeJS.ErrnoException).code ?? String(err)}.`);
  }
  if (st.isDirectory()) {
    const files = listTextFiles(path);
    if (files.length === 0) throw new Error(`Text source ${path}: expected .txt or .md files in the folder, found none.`);
    return {
      *[Symbol.iterator]() {
        for (const f of files) {
          const text = decodeUtf8Strict(readFileSync(f), `Text file ${f}`);
          if (text.trim() !== '') yield { text, source: relative(path, f) };
        }
      },
    };
  }
  const ext = extname(path).toLowerCase();
  if (JSONL_EXT.has(ext)) return { [Symbol.iterator]: () => readJsonl(path, options.field ?? 'text') };
  if (!TEXT_EXT.has(ext)) {
    throw new Error(`Text source ${path}: expected a folder or a .txt, .md or .jsonl file, found extension "${ext || '(none)'}".`);
  }
  return {
    *[Symbol.iterator]() {
      const text = decodeUtf8Strict(readFileSync(path), `Text file ${path}`);
      if ((options.split ?? 'paragraph') === 'file') {
        if (text.trim() !== '') yield { text, source: path };
        return;
      }
      let n = 0;
      for (const para of text.split(/\r?\n[ \t]*\r?\n(?:[ \t]*\r?\n)*/)) {
        n++;
        if (para.trim() !== '') yield { text: para, source: `${path}#${n}` };
      }
    },
  };
}

/** The .txt/.md files under a folder, recursively, sorted by relative path; hidden entries skipped. */
export function listTextFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith('.')) continue;
      const p = join(d, name);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else if (s.isFile() && TEXT_EXT.has(extname(name).toLowerCase())) out.push(p);
    }
  };
  walk(dir);
  return out.sort((a, b) => (relative(dir, a) < relative(dir, b) ? -1 : 1));
}

/** Reads a JSONL file line by line in 1 MiB chunks, yielding each line's text field. */
function* readJsonl(path: string, field: string): Generator<TextDocument> {
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.alloc(1 << 20);
    let pending = Buffer.alloc(0);
    let lineNo = 0;
    let offset = 0; // file offset of pending[0]
    for (;;) {
      const n = readSync(fd, chunk, 0, chunk.length, null);
      const buf = n > 0 ? Buffer.concat([pending, chunk.subarray(0, n)]) : pending;
      let start = 0;
      for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10, start)) {
        const doc = parseJsonlLine(buf.subarray(start, nl), path, ++lineNo, offset + start, field);
        if (doc !== null) yield doc;
        start = nl + 1;
      }
      if (n === 0) {
        if (start < buf.length) {
          const doc = parseJsonlLine(buf.subarray(start), path, ++lineNo, offset + start, field);
          if (doc !== null) yield doc;
        }
        break;
      }
      offset += start;
      pending = Buffer.from(buf.subarray(start));
    }
  } finally {
    closeSync(fd);
  }
}

function parseJsonlLine(bytes: Uint8Array, path: string, lineNo: number, offset: number, field: string): TextDocument | null {
  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0) {
    throw new Error(
      `JSONL file ${path} line ${lineNo} is not valid UTF-8 text: expected UTF-8, found byte 0x${bytes[bad]!.toString(16).padStart(2, '0')} at offset ${offset + bad}.`,
    );
  }
  const line = decodeUtf8Strict(bytes, `JSONL file ${path} line ${lineNo}`).replace(/\r$/, '');
  if (line.trim() === '') return null;
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch (err) {
    throw new Error(`JSONL file ${path} line ${lineNo}: expected a JSON object, found invalid JSON (${(err as Error).message}).`);
  }
  const value = typeof row === 'object' && row !== null && !Array.isArray(row) ? (row as Record<string, unknown>)[field] : undefined;
  if (typeof value !== 'string') {
    const found = typeof row !== 'object' || row === null || Array.isArray(row) ? `${Array.isArray(row) ? 'an array' : JSON.stringify(row)}` : value === undefined ? `no "${field}" field` : `a ${typeof value}`;
    throw new Error(`JSONL file ${path} line ${lineNo}: expected an object with a string "${field}" field, found ${found}.`);
  }
  if (value.trim() === '') return null;
  return { text: value, source: `${path}:${lineNo}` };
}

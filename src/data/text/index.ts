// Text sources: folders, files and JSONL read as documents, strict UTF-8, and the bundled Brown corpus.

export { readTextSource, iterateTextSource, listTextFiles, type TextDocument, type TextSourceOptions } from './sources.js';
export { brownCorpus, brownCorpusDir, detokenizeBrown, BROWN_GENRES, type BrownOptions } from './brown.js';
export { decodeUtf8Strict, firstInvalidUtf8 } from './utf8.js';

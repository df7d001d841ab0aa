// Tokenizers: the common interface, byte-level BPE (train, encode, tokenizer.json), GPT-2, characters,
// and any Hugging Face tokenizer.json through @huggingface/tokenizers.

export type { Tokenizer, EncodeOptions, HfTokenizerJson, HfAddedToken } from './tokenizer.js';
export { ByteLevelBPE, type BpeModelParts } from './bpe.js';
export { trainByteLevelBPE, type TrainBpeOptions } from './bpe-train.js';
export { gpt2Tokenizer, GPT2_EOT, GPT2_EOT_ID } from './gpt2.js';
export { CharTokenizer } from './char.js';
export { HfTokenizer } from './hf.js';
export { loadTokenizer, type LoadTokenizerOptions } from './load.js';
export { BYTE_TO_CHAR, GPT2_SPLIT_PATTERN, preTokenize } from './byte-level.js';

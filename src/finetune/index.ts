// finetune: supervised fine-tuning of chat models (JSONL data, chat templates, assistant-only loss, padded
// batches, vocabulary growth, held-out measurement) and the frozen-model export. Exported as kiln.finetune.

export { parseFinetuneJsonl, loadFinetuneData, toConversation, ROLES, type ChatMessage, type Conversation, type Role, type LineError, type ParseResult, type LoadFinetuneOptions } from './jsonl.js';
export { ChatTemplate, CHATML_TEMPLATE, CHAT_SPECIAL_TOKENS, IM_START, IM_END, type RenderOptions } from '../infer/chat-template.js';
export { tokenizerConfig, readTokenizerConfig, writeTokenizerConfig, type TokenizerConfig } from '../hub/tokenizer-config.js';
export { encodeConversation, encodePrompt, prepareRows, padBatch, PaddedBatches, IGNORE_INDEX, type EncodedExample, type TrainingRow, type ChatBatch } from './encode.js';
export { resizeTokenEmbeddings } from './vocab.js';
export { greedyReply, parseHeldout, scoreHeldout, formatScore, DEFAULT_REFUSAL_MARKER, type HeldoutPrompt, type HeldoutScore } from './evaluate.js';
export { loadSourceModel, type SourceModel } from './load.js';
export { finetune, type FinetuneOptions, type FinetuneResult, type LoRASettings } from './run.js';
export { exportModel, hfStateDict, EXPORT_DTYPES, type ExportDType, type ExportOptions, type ExportResult } from '../hub/export.js';

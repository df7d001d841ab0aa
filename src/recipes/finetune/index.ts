// finetune: supervised fine-tuning of chat models (JSONL data, assistant-only loss, padded batches, vocabulary
// growth, held-out measurement). Exported as kiln.recipes.finetune. Chat templates are kiln.infer's; loading and
// exporting model folders and tokenizer_config.json are kiln.hub's.

export { parseFinetuneJsonl, loadFinetuneData, toConversation, ROLES, type ChatMessage, type Conversation, type Role, type LineError, type ParseResult, type LoadFinetuneOptions, type LoadedData } from './jsonl.js';
export { encodeConversation, encodePrompt, prepareRows, padBatch, PaddedBatches, IGNORE_INDEX, type EncodedExample, type TrainingRow, type ChatBatch, type PaddedBatchesOptions, type PrepareResult } from './encode.js';
export { resizeTokenEmbeddings } from './vocab.js';
export { pretrainRows, type PretrainRowsOptions } from './mix.js';
export {
  greedyReply, greedyReplies, parseHeldout, scoreHeldout, scoreReplies, scoreSummary, formatScore, formatReport, isRefusal, hasFact, evaluateModel,
  DEFAULT_REFUSAL_MARKER, PROMPT_KINDS, type PromptKind, type HeldoutPrompt, type HeldoutReply, type HeldoutScore, type KindCount, type EvaluateOptions, type ReplyOptions,
} from './evaluate.js';
export { loadSourceModel, type SourceModel } from './load.js';
export { finetune, FINETUNE_DEFAULTS, type FinetuneOptions, type FinetuneResult, type LoRASettings } from './run.js';

// hub: Hugging Face model folders. The one loader (run folders, LoRA fine-tuning runs, frozen folders, Hugging
// Face GPT-2 folders), the frozen-model export, and tokenizer_config.json. Exported as kiln.hub.

export { loadModel, loadWeights, bestCheckpoint, type LoadedModel, type LoadModelOptions, type CheckpointChoice } from './load.js';
export { readWeights, WeightsVerifyError, type FileRecord, type VerifyOptions } from './verify.js';
export { exportModel, hfStateDict, EXPORT_DTYPES, type ExportDType, type ExportOptions, type ExportResult } from './export.js';
export {
  tokenizerConfig, readTokenizerConfig, writeTokenizerConfig, tokenString, chatSpecialTokens, type TokenizerConfig,
} from './tokenizer-config.js';

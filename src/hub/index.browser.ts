// hub in the browser build: a frozen model folder's files in memory (config.json, model.safetensors,
// tokenizer.json, tokenizer_config.json), to offer as downloads that `kiln generate --model DIR` loads.

export { modelFolderFiles, hfStateDict, EXPORT_DTYPES, type ExportDType, type ModelFolderFiles, type ModelFolderOptions } from './model-files.js';

// Complete models built from nn: the GPT (Hugging Face GPT-2 names and layout, presets, KV cache), the Llama-style
// decoder (LlamaForCausalLM names), the registry that picks one from a config, and the one decoding loop and sampler
// every generation path uses. Exported as kiln.models.

export { GPT, KVCache, type GPTForwardOptions, type GPTOutput, type GenerateOptions } from './gpt.js';
export { resolveGPTConfig, toHFConfig, gptConfigFromJSON, type GPTConfig, type ResolvedGPTConfig } from './gpt-config.js';
export { Conv1D, type Conv1DOptions } from './conv1d.js';
export {
  BatchDecoder, Sequence, acquireDecoder, generateTokens, checkSequenceOptions,
  type LanguageModel, type DecodingCache, type SequenceOptions, type StartRequest, type StepEvent, type FinishReason,
} from './generate.js';
export { Sampler, argmax, checkSamplingOptions, type SamplingOptions } from './sampling.js';
export { Llama } from './llama.js';
export {
  resolveLlamaConfig, toHFLlamaConfig, llamaConfigFromJSON, defaultHidden, type LlamaConfig, type ResolvedLlamaConfig,
} from './llama-config.js';
export { ARCHS, archOf, modelConfigFromJSON, createModel, hfConfigOf, type Arch, type CausalLM, type ModelConfig } from './arch.js';
export {
  checkMemory, gptParameterCount, gptLargestTensor, gptTrainingBytes, gptInferenceBytes, MAX_TENSOR_ELEMENTS,
  type GPTSize, type MemoryAvailable,
} from './memory.js';

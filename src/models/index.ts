// Complete models built from nn: the GPT (Hugging Face GPT-2 names and layout, presets, KV cache). Exported as kiln.models.

export { GPT, KVCache, type GPTForwardOptions, type GPTOutput, type GenerateOptions } from './gpt.js';
export { resolveGPTConfig, toHFConfig, gptConfigFromJSON, type GPTConfig, type ResolvedGPTConfig } from './gpt-config.js';
export { Conv1D, conv1d, type Conv1DOptions } from './conv1d.js';
export { qkvAttention } from './qkv-attention.js';
export { sampleToken, argmax, type SampleOptions } from './sample.js';

// Inference in the browser build: text generation with streaming over the one decoding loop, samplers and chat
// templates. Loading model folders and the HTTP server are Node only (index.ts).

export {
  generate, generateTokens, generateText, streamGenerate, TextStreamer, checkGenerateOptions,
  type GenerateOptions, type GenerationResult, type StreamChunk, type FinishReason, type LanguageModel,
} from './generate.js';
export { Sampler, argmax, checkSamplingOptions, type SamplingOptions } from '../models/sampling.js';
export {
  ChatTemplate, DEFAULT_CHAT_TEMPLATE, DEFAULT_CHAT_STOPS, CHATML_TEMPLATE, CHAT_SPECIAL_TOKENS, IM_START, IM_END, checkMessages,
  type ChatMessage, type Role, type RenderOptions,
} from './chat-template.js';

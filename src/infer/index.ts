// Inference: text generation with streaming over the one decoding loop (kiln.models' BatchDecoder and Sampler),
// chat templates, and the OpenAI-compatible HTTP server. Exported as kiln.infer.

export {
  generate, generateTokens, generateText, streamGenerate, TextStreamer, checkGenerateOptions,
  type GenerateOptions, type GenerationResult, type StreamChunk, type FinishReason, type LanguageModel,
} from './generate.js';
export { Sampler, argmax, checkSamplingOptions, type SamplingOptions } from '../models/sampling.js';
export {
  ChatTemplate, DEFAULT_CHAT_TEMPLATE, DEFAULT_CHAT_STOPS, CHATML_TEMPLATE, CHAT_SPECIAL_TOKENS, IM_START, IM_END, checkMessages,
  type ChatMessage, type Role, type RenderOptions,
} from './chat-template.js';
// The hub's one loader, here too because inference starts from it (kiln.infer.loadModel === kiln.hub.loadModel).
export { loadModel, loadWeights, bestCheckpoint, type LoadedModel, type CheckpointChoice } from '../hub/load.js';
export { startServer, isLoopback, type ServerOptions, type RunningServer } from './server.js';
export { Batcher, QueueFullError, defaultMaxBatch, type BatcherOptions, type BatchRequest, type BatchResult, type BatchChunk } from './batcher.js';

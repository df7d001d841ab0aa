// Inference: KV-cached generation with seeded sampling and streaming, chat templates, and the
// OpenAI-compatible HTTP server. Exported as kiln.infer.

export {
  generate, generateTokens, generateText, streamGenerate, TextStreamer,
  type GenerateOptions, type GenerationResult, type StreamChunk, type FinishReason,
} from './generate.js';
export { Sampler, argmax, checkSamplingOptions, type SamplingOptions } from './sampling.js';
export { createDecoder, FastGPTDecoder, type Decoder, type DecoderEngine, type LanguageModel } from './decoder.js';
export { matVecAvailable } from './matvec.js';
export {
  ChatTemplate, DEFAULT_CHAT_TEMPLATE, DEFAULT_CHAT_STOPS, CHATML_TEMPLATE, CHAT_SPECIAL_TOKENS, IM_START, IM_END, checkMessages,
  type ChatMessage, type Role, type RenderOptions,
} from './chat-template.js';
// The hub's one loader, here too because inference starts from it (kiln.infer.loadModel === kiln.hub.loadModel).
export { loadModel, loadWeights, bestCheckpoint, type LoadedModel } from '../hub/load.js';
export { startServer, FifoQueue, type ServerOptions, type RunningServer } from './server.js';

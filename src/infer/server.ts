// The OpenAI-compatible HTTP server on fastify: POST /v1/completions and /v1/chat/completions (with
// `stream: true` as server-sent events), GET /v1/models and GET /health. Bodies are validated by JSON schema
// (ajv, no type coercion) and rejected with OpenAI-style errors naming the field. Concurrent requests decode
// together (continuous batching, batcher.ts); beyond the batch they wait in a bounded FIFO queue (503 only when
// it is full); a client that disconnects frees its row at the next step. close() stops accepting and lets
// in-flight requests finish.
//
// Safe to expose: an optional API key (Authorization: Bearer, compared in constant time), a Host-header
// allow-list against DNS rebinding (loopback names by default), `model` checked against the served names, and
// chat content encoded as plain text so that special tokens typed by a client cannot forge turns.

import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { importOptional } from '../io/optional.js';
import { loadModel, type LoadedModel } from '../hub/load.js';
import { ChatTemplate, type ChatMessage } from './chat-template.js';
import { Batcher, QueueFullError, type BatchResult } from './batcher.js';
import type { FinishReason, GenerateOptions } from './generate.js';

export interface ServerOptions {
  /** A model folder (run or frozen model) or an already loaded model. */
  model: string | LoadedModel;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 8000; 0 picks a free one). */
  port?: number;
  /** Largest request body in bytes (default 1 MiB); bigger bodies get 413. */
  maxBodyBytes?: number;
  /** Largest max_tokens a request may ask for (default 512); more is a 400. */
  maxTokensLimit?: number;
  /**
   * Continuous batching: `maxBatch` requests decode together (default 16, fewer when the KV cache would pass
   * 512 MiB); `maxWaiting` more may wait for a row (default 256); past that, 503.
   */
  queue?: { maxBatch?: number; maxWaiting?: number };
  /** Requests must carry `Authorization: Bearer <apiKey>` (else 401). Default: none needed. */
  apiKey?: string;
  /**
   * Host header values (names or addresses, without the port) the server answers; others get 403, which stops
   * DNS rebinding. Default: localhost, 127.0.0.1, ::1, and `host` itself when it is a specific address. '*' allows any.
   */
  allowedHosts?: readonly string[];
  /** Names a request's `model` may use (default: the model's name); others get 404. */
  modelNames?: readonly string[];
  /** Log each request to stdout (default false). */
  logger?: boolean;
}

export interface RunningServer {
  /** http://host:port */
  url: string;
  /** Stops accepting connections, finishes in-flight requests, then resolves. */
  close(): Promise<void>;
  /** The fastify instance, for tests and embedding. */
  app: FastifyInstance;
  /** The continuous batcher every generation runs in. */
  batcher: Batcher;
}

// ---- request schemas (JSON Schema, checked by fastify's ajv) ----

const stopSchema = { anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: 4 }, { type: 'null' }] };

function samplingProps(maxTokensLimit: number): Record<string, unknown> {
  return {
    model: { type: 'string' },
    max_tokens: { type: ['integer', 'null'], minimum: 1, maximum: maxTokensLimit },
    max_completion_tokens: { type: ['integer', 'null'], minimum: 1, maximum: maxTokensLimit },
    temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
    top_p: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 1 },
    top_k: { type: ['integer', 'null'], minimum: 0 },
    repetition_penalty: { type: ['number', 'null'], exclusiveMinimum: 0 },
    seed: { type: ['integer', 'null'] },
    stop: stopSchema,
    stream: { type: ['boolean', 'null'] },
    n: { type: ['integer', 'null'], minimum: 1, maximum: 1 },
    user: { type: 'string' },
    stream_options: { type: ['object', 'null'] },
    presence_penalty: { type: ['number', 'null'] },
    frequency_penalty: { type: ['number', 'null'] },
  };
}

/** Friendly descriptions for fields whose schema is a choice (ajv's own message would be "must match a schema in anyOf"). */
const CHOICES: Record<string, string> = {
  prompt: 'a string, a list of one string, or a non-empty list of token ids',
  stop: 'a non-empty string or a list of up to 4 non-empty strings',
  content: 'a string',
};

interface SamplingBody {
  model?: string;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  repetition_penalty?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  stream?: boolean | null;
}
interface CompletionBody extends SamplingBody { prompt: string | string[] | number[] }
interface ChatBody extends SamplingBody { messages: ChatMessage[] }

/** An OpenAI-style error response. */
class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null,
    readonly type = status >= 500 ? 'server_error' : 'invalid_request_error', readonly code: string | null = null) {
    super(message);
  }
}

function errorBody(message: string, type: string, param: string | null, code: string | null = null): Record<string, unknown> {
  return { error: { message, type, param, code } };
}

/**
 * Starts the server and resolves once it listens.
 *
 * @example
 * ```ts
 * const server = await kiln.infer.startServer({ model: 'runs/tiny', port: 8000 });
 * // POST http://127.0.0.1:8000/v1/chat/completions { "messages": [{ "role": "user", "content": "hi" }] }
 * await server.close();
 * ```
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  // fastify is an optional peer dependency (npm install fastify), imported here rather than when Kiln loads; first,
  // so that its absence is said before a model loads.
  const { default: Fastify } = await importOptional('fastify', 'The HTTP server (kiln serve, startServer)', () => import('fastify'));
  const loaded = typeof options.model === 'string' ? loadModel(options.model) : options.model;
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  const maxTokensLimit = options.maxTokensLimit ?? 512;
  for (const [name, v] of [['maxBodyBytes', maxBodyBytes], ['maxTokensLimit', maxTokensLimit]] as const) {
    if (!Number.isInteger(v) || v <= 0) throw new Error(`startServer: ${name} must be a positive integer, got ${v}`);
  }
  const { model, tokenizer } = loaded;
  const batcher = new Batcher(model, tokenizer, { maxBatch: options.queue?.maxBatch, maxWaiting: options.queue?.maxWaiting ?? 256 });
  const template = new ChatTemplate(loaded.chatTemplate, loaded.specialTokens);
  const modelNames = [...(options.modelNames ?? [loaded.name])];
  if (modelNames.length === 0 || modelNames.some((n) => typeof n !== 'string' || n.length === 0)) {
    throw new Error('startServer: modelNames must be a non-empty list of non-empty names');
  }
  const modelId = modelNames[0];
  const bindHost = options.host ?? '127.0.0.1';
  const allowHost = hostChecker(options.allowedHosts, bindHost);
  const checkKey = options.apiKey === undefined ? null : keyChecker(options.apiKey);
  const created = Math.floor(Date.now() / 1000);
  const context = model.config.context;

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: maxBodyBytes,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });

  // JSON only: anything else is a 415 rather than a string that fails the schema.
  app.removeContentTypeParser(['text/plain']);

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send(errorBody(err.message, err.type, err.param, err.code));
    if (err.validation && err.validation.length) {
      const v = err.validation.find((e) => e.keyword === 'anyOf') ?? err.validation[0];
      const path = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
      const missing = v.keyword === 'required' ? String((v.params as { missingProperty?: string }).missingProperty) : null;
      const param = missing ? (path ? `${path}.${missing}` : missing) : path || null;
      const leaf = (param ?? '').split('.').pop() ?? '';
      const message = missing ? `'${param}' is required`
        : v.keyword === 'anyOf' && CHOICES[leaf] ? `Invalid value for '${param}': expected ${CHOICES[leaf]}`
          : v.keyword === 'maximum' && leaf.startsWith('max_') ? `Invalid value for '${param}': must be at most ${(v.params as { limit: number }).limit} on this server`
            : param ? `Invalid value for '${param}': ${v.message ?? 'invalid'}` : `Invalid request body: ${v.message ?? 'invalid'}`;
      return reply.code(400).send(errorBody(message, 'invalid_request_error', param));
    }
    const status = err.statusCode ?? 500;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(413).send(errorBody(`The request body is larger than this server's limit of ${maxBodyBytes} bytes`, 'invalid_request_error', null));
    }
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) {
      return reply.code(400).send(errorBody(`The request body is not valid JSON: ${err.message}`, 'invalid_request_error', null));
    }
    if (status < 500) return reply.code(status).send(errorBody(err.message, 'invalid_request_error', null));
    app.log.error(err);
    return reply.code(500).send(errorBody(`Internal error: ${err.message}`, 'server_error', null));
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send(errorBody(`No route ${req.method} ${req.url}; this server has GET /health, GET /v1/models, ` +
      'POST /v1/completions and POST /v1/chat/completions', 'invalid_request_error', null));
  });

  // Host first (a rebinding page must learn nothing, not even /health), then the key for the API routes.
  app.addHook('onRequest', async (req, reply) => {
    if (!allowHost(req.headers.host)) {
      return reply.code(403).send(errorBody(`Host ${JSON.stringify(req.headers.host ?? '')} is not allowed on this server; ` +
        'start it with --allowed-hosts naming the host clients use', 'invalid_request_error', null, 'host_not_allowed'));
    }
    if (checkKey && req.url.startsWith('/v1/')) {
      const auth = req.headers.authorization;
      const m = typeof auth === 'string' ? /^Bearer\s+(.+)$/i.exec(auth.trim()) : null;
      if (!m || !checkKey(m[1])) {
        const message = m ? 'Incorrect API key provided' : "You didn't provide an API key; send it as 'Authorization: Bearer <key>'";
        return reply.code(401).send(errorBody(message, 'invalid_request_error', null, 'invalid_api_key'));
      }
    }
    return undefined;
  });

  app.get('/health', async () => ({
    status: 'ok', model: modelId, queue: { running: batcher.running, waiting: batcher.pending, maxBatch: batcher.maxBatch },
  }));
  const modelCard = (id: string): Record<string, unknown> => ({ id, object: 'model', created, owned_by: 'kiln', context_length: context });
  app.get('/v1/models', async () => ({ object: 'list', data: modelNames.map(modelCard) }));
  app.get<{ Params: { id: string } }>('/v1/models/:id', async (req) => {
    if (!modelNames.includes(req.params.id)) throw modelNotFound(req.params.id, modelNames);
    return modelCard(req.params.id);
  });

  /** A request's `model`, when given, must be one of the served names. */
  const checkModel = (name: string | undefined): void => {
    if (name !== undefined && !modelNames.includes(name)) throw modelNotFound(name, modelNames);
  };

  /** Sampling options from a request, and the prompt ids checked against the context. */
  const prepare = (body: SamplingBody, promptIds: number[], defaultMax: number, extraStops: readonly string[]): GenerateOptions => {
    if (promptIds.length === 0) throw new ApiError(400, 'The prompt is empty', 'prompt');
    if (promptIds.length > context) {
      throw new ApiError(400, `The prompt is ${promptIds.length} tokens but the model's context is ${context} tokens`, 'prompt');
    }
    for (const id of promptIds) {
      if (id >= model.config.vocabSize) throw new ApiError(400, `Token id ${id} is outside the vocabulary of ${model.config.vocabSize}`, 'prompt');
    }
    const stops = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
    return {
      maxNewTokens: body.max_tokens ?? body.max_completion_tokens ?? defaultMax,
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? 1,
      topK: body.top_k ?? 0,
      repetitionPenalty: body.repetition_penalty ?? 1,
      seed: body.seed ?? undefined,
      stop: [...stops, ...extraStops],
    };
  };

  const encode = (text: string, param: string): number[] => {
    try {
      return tokenizer.encode(text);
    } catch (err) {
      throw new ApiError(400, `The ${param} cannot be tokenized: ${(err as Error).message}`, param);
    }
  };

  /** Runs one generation in the batcher, as one JSON response or as server-sent events. */
  const serve = async (reply: FastifyReply, kind: 'text' | 'chat', promptIds: number[],
    gen: GenerateOptions, stream: boolean): Promise<unknown> => {
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
    const object = kind === 'chat' ? (stream ? 'chat.completion.chunk' : 'chat.completion') : 'text_completion';
    const stamp = Math.floor(Date.now() / 1000);
    const abort = new AbortController();
    // A client that goes away frees its row at the next step.
    const onClose = (): void => { if (!reply.raw.writableFinished) abort.abort(); };
    reply.raw.on('close', onClose);
    const choice = (text: string, finish: FinishReason | null): Record<string, unknown> => kind === 'chat'
      ? (stream ? { index: 0, delta: text === '' && finish ? {} : { content: text }, logprobs: null, finish_reason: finish }
        : { index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finish })
      : { index: 0, text, logprobs: null, finish_reason: finish };
    const usage = (r: BatchResult): Record<string, number> =>
      ({ prompt_tokens: promptIds.length, completion_tokens: r.completionTokens, total_tokens: promptIds.length + r.completionTokens });
    const chunk = (text: string, finish: FinishReason | null, extra: Record<string, unknown> = {}): Record<string, unknown> =>
      ({ id, object, created: stamp, model: modelId, choices: [choice(text, finish)], ...extra });
    const raw = reply.raw;
    const send = (payload: unknown): void => { if (!raw.destroyed) raw.write(`data: ${JSON.stringify(payload)}\n\n`); };
    let done: Promise<BatchResult>;
    try {
      done = batcher.submit({
        promptIds, options: gen, signal: abort.signal,
        onChunk: stream ? (c) => { if (c.text) send(chunk(c.text, null)); } : undefined,
      });
    } catch (err) {
      reply.raw.off('close', onClose);
      if (err instanceof QueueFullError) throw new ApiError(503, err.message, null, 'server_error');
      if (err instanceof Error && /^generate: /.test(err.message)) throw new ApiError(400, err.message.replace(/^generate: /, ''));
      throw err;
    }
    if (!stream) {
      try {
        const r = await done;
        return { id, object, created: stamp, model: modelId, choices: [choice(r.text, r.finishReason)], usage: usage(r) };
      } finally {
        reply.raw.off('close', onClose);
      }
    }
    reply.hijack();
    raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    if (kind === 'chat') send({ id, object, created: stamp, model: modelId, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
    try {
      const r = await done;
      send(chunk('', r.finishReason, { usage: usage(r) }));
      if (!raw.destroyed) raw.write('data: [DONE]\n\n');
    } catch (err) {
      send(errorBody(`Generation failed: ${(err as Error).message}`, 'server_error', null));
    } finally {
      reply.raw.off('close', onClose);
      raw.end();
    }
    return undefined;
  };

  app.post<{ Body: CompletionBody }>('/v1/completions', {
    schema: {
      body: {
        type: 'object',
        required: ['prompt'],
        properties: {
          ...samplingProps(maxTokensLimit),
          prompt: {
            anyOf: [
              { type: 'string' },
              { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 1 },
              { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1 },
            ],
          },
          echo: { type: ['boolean', 'null'], enum: [false, null] },
          logprobs: { type: 'null' },
          suffix: { type: 'null' },
        },
      },
    },
  }, async (req, reply) => {
    const b = req.body;
    checkModel(b.model);
    const promptIds = typeof b.prompt === 'string' ? encode(b.prompt, 'prompt')
      : typeof b.prompt[0] === 'string' ? encode(b.prompt[0] as string, 'prompt') : (b.prompt as number[]).slice();
    // OpenAI's default for completions is 16 tokens.
    const gen = prepare(b, promptIds, Math.min(16, maxTokensLimit), []);
    return serve(reply, 'text', promptIds, gen, b.stream === true);
  });

  app.post<{ Body: ChatBody }>('/v1/chat/completions', {
    schema: {
      body: {
        type: 'object',
        required: ['messages'],
        properties: {
          ...samplingProps(maxTokensLimit),
          messages: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              required: ['role', 'content'],
              properties: {
                role: { type: 'string', enum: ['system', 'user', 'assistant'] },
                content: { type: 'string' },
                name: { type: 'string' },
              },
            },
          },
        },
      },
    },
  }, async (req, reply) => {
    const b = req.body;
    checkModel(b.model);
    const messages = b.messages.map((m) => ({ role: m.role, content: m.content }));
    let promptIds: number[];
    try {
      // Content is plain text: only the template's own control tokens become ids.
      promptIds = template.encode(messages, tokenizer, true);
    } catch (err) {
      throw new ApiError(400, (err as Error).message, 'messages');
    }
    // Chat replies run until the end of the turn, bounded by the server's limit.
    const gen = prepare(b, promptIds, maxTokensLimit, template.stops);
    return serve(reply, 'chat', promptIds, gen, b.stream === true);
  });

  await app.listen({ host: bindHost, port: options.port ?? 8000 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : options.port ?? 8000;
  const host = bindHost;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let closing: Promise<void> | null = null;
  const close = async (): Promise<void> => {
    // Keep-alive connections that go idle after their last in-flight response are closed as soon as they do,
    // rather than after the keep-alive timeout.
    const sweep = setInterval(() => app.server.closeIdleConnections(), 25);
    try {
      await app.close();
    } finally {
      clearInterval(sweep);
    }
  };
  return { url, app, batcher, close: () => (closing ??= close()) };
}

/** A 404 in OpenAI's shape for a model this server does not serve. */
function modelNotFound(name: string, served: readonly string[]): ApiError {
  return new ApiError(404, `The model ${JSON.stringify(name)} does not exist on this server; it serves ${served.map((n) => JSON.stringify(n)).join(', ')}`,
    'model', 'invalid_request_error', 'model_not_found');
}

/** Whether a bind address reaches beyond this machine (anything but loopback). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** The Host-header check: the allowed names (default loopback names, and a specific bind address). */
function hostChecker(allowed: readonly string[] | undefined, bindHost: string): (header: string | undefined) => boolean {
  const names = new Set((allowed ?? ['localhost', '127.0.0.1', '::1']).map((h) => h.replace(/^\[|\]$/g, '').toLowerCase()));
  if (allowed === undefined && !['0.0.0.0', '::', ''].includes(bindHost)) names.add(bindHost.replace(/^\[|\]$/g, '').toLowerCase());
  if (names.has('*')) return () => true;
  return (header) => {
    if (typeof header !== 'string' || header.length === 0) return false;
    // "name:port", "[v6]:port", "[v6]", "name"
    const m = /^\[([^\]]+)\](?::\d+)?$/.exec(header) ?? /^([^:]+)(?::\d+)?$/.exec(header);
    return m !== null && names.has(m[1].toLowerCase());
  };
}

/** A constant-time key comparison (both sides hashed to the same length first). */
function keyChecker(key: string): (given: string) => boolean {
  if (typeof key !== 'string' || key.length === 0) throw new Error('startServer: apiKey must be a non-empty string');
  const want = createHash('sha256').update(key).digest();
  return (given) => timingSafeEqual(createHash('sha256').update(given).digest(), want);
}

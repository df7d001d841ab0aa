// The playground's training worker: a small character-level GPT trained with Kiln's browser build (js backend, or
// a faster one the build registers), so the page never freezes. Messages in: start, stop, resume, generate,
// download. Messages out: progress (loss, tokens/s), eval (val loss against the unigram baseline, a sample),
// stopped, generated, files.

import * as kiln from 'kiln';

const CONTEXT = 32;
const BATCH = 8;
let run = null; // { tok, model, trainer, sampler, val, unigram, checkpoint, tokens, t0 }
let backendNote = '';

// The WebAssembly kernels when the server offers them; the reference backend otherwise (and the page says why).
// Loaded at the first start, when the model's size is known: a model of a quarter million parameters or more runs
// on every core when the page is cross-origin isolated (the playground server sends the headers). Measured in
// headless Chromium on 2 cores: the small model (4 x 192) trained 1.2-1.4x faster on 2 threads, while the tiny one
// (2 x 48) ran 15% slower, its kernels too small to split. The worker keeps the backend it loaded first.
let backendReady = null;
function loadBackend(layers, width) {
  const parameters = 12 * layers * width * width;
  const threads = parameters >= 250_000 ? (self.navigator.hardwareConcurrency ?? 1) : 1;
  backendReady ??= kiln.useWasmBackend(new URL('kiln-single.wasm', self.location.href), {
    threads,
    sharedSource: new URL('kiln.wasm', self.location.href),
    workerUrl: new URL('pool-worker.js', self.location.href),
  }).catch((err) => { backendNote = `WebAssembly unavailable (${err.message}); using the js backend`; });
  return backendReady;
}

function post(type, body = {}) { self.postMessage({ type, ...body }); }

/** Mean cross-entropy (nats per token) of the model on the validation windows. */
function valLoss(model, val) {
  return kiln.noGrad(() => {
    model.eval();
    let sum = 0;
    let n = 0;
    for (const w of kiln.data.sequentialWindows([val], { batchSize: BATCH, blockSize: CONTEXT })) {
      const x = new kiln.Tensor(w.x, [w.batchSize, CONTEXT]);
      const y = new kiln.Tensor(w.y, [w.batchSize, CONTEXT]);
      sum += model.loss(x, y).item() * w.batchSize;
      n += w.batchSize;
    }
    model.train();
    return sum / n;
  });
}

/** The unigram baseline: the cross-entropy of the training text's character frequencies on the validation text. */
function unigramLoss(trainIds, valIds, vocab) {
  const counts = new Float64Array(vocab).fill(1); // add-one smoothing
  for (const t of trainIds) counts[t]++;
  const total = counts.reduce((a, b) => a + b, 0);
  let sum = 0;
  for (const t of valIds) sum -= Math.log(counts[t] / total);
  return sum / valIds.length;
}

function sample(prompt, n) {
  const { model, tok } = run;
  model.eval();
  const text = kiln.infer.generateText(model, tok, prompt, { maxNewTokens: n, temperature: 0 }).text;
  model.train();
  return text;
}

function build(msg) {
  const text = msg.text;
  const tok = kiln.data.CharTokenizer.fromText(text);
  const ids = tok.encode(text);
  const cut = Math.floor(ids.length * 0.9);
  const trainIds = ids.slice(0, cut);
  const valIds = ids.slice(cut);
  kiln.manualSeed(msg.seed ?? 1);
  const model = new kiln.models.GPT({ vocabSize: tok.vocabSize, context: CONTEXT, width: msg.width ?? 48, layers: msg.layers ?? 2, heads: 4 });
  const sampler = new kiln.data.TokenWindowSampler([kiln.data.memoryTokens(trainIds)], { batchSize: BATCH, blockSize: CONTEXT, seed: 7 });
  const source = {
    next: () => { const w = sampler.next(); return { x: new kiln.Tensor(w.x, [BATCH, CONTEXT]), y: new kiln.Tensor(w.y, [BATCH, CONTEXT]) }; },
    state: () => sampler.state(),
    restore: (s) => sampler.setState(s),
  };
  const r = {
    tok, model, val: kiln.data.memoryTokens(valIds), unigram: unigramLoss(trainIds, valIds, tok.vocabSize),
    checkpoint: null, prompt: text.slice(0, 12), evalEvery: msg.evalEvery ?? 25, t0: 0, tokens: 0,
  };
  r.trainer = new kiln.Trainer({
    model, optimizer: new kiln.optim.AdamW(model.parameters(), { lr: msg.lr ?? 3e-3, weightDecay: 0 }), train: source,
    maxSteps: msg.steps ?? 400, progress: false, clipGradNorm: 1,
    loss: (m, b) => m.loss(b.x, b.y),
    onStep: (s) => {
      r.tokens += BATCH * CONTEXT;
      const secs = (performance.now() - r.t0) / 1000;
      post('progress', { step: s.step, loss: s.loss, tokensPerSecond: secs > 0 ? r.tokens / secs : 0 });
      if (s.step % r.evalEvery === 0) {
        post('eval', { step: s.step, valLoss: valLoss(model, r.val), unigram: r.unigram, sample: sample(r.prompt, 40) });
      }
    },
  });
  return r;
}

async function fit(resume) {
  run.t0 = performance.now();
  run.tokens = 0;
  const result = await run.trainer.fit(resume ? { resume } : {});
  run.checkpoint = run.trainer.checkpoint();
  post('stopped', {
    step: result.step, reason: result.stopReason, valLoss: valLoss(run.model, run.val), unigram: run.unigram,
    sample: sample(run.prompt, 40), backend: kiln.backendInfo().name,
  });
}

self.onmessage = async (e) => {
  const msg = e.data;
  try {
    if (msg.type === 'start') {
      await loadBackend(msg.layers ?? 2, msg.width ?? 48);
      run = build(msg);
      post('ready', {
        vocab: run.tok.vocabSize, parameters: run.model.parameters().reduce((a, p) => a + p.size, 0), unigram: run.unigram,
        backend: kiln.backendInfo().name, threads: kiln.backendInfo().threads ?? 1, note: backendNote,
      });
      await fit(null);
    } else if (msg.type === 'stop') {
      run?.trainer.stop();
    } else if (msg.type === 'resume') {
      if (!run?.checkpoint) throw new Error('nothing to resume: train first');
      if (msg.steps) run.trainer.options.maxSteps = run.trainer.step + msg.steps;
      await fit(run.checkpoint);
    } else if (msg.type === 'generate') {
      post('generated', { prompt: msg.prompt, text: sample(msg.prompt, msg.maxNewTokens ?? 60) });
    } else if (msg.type === 'download') {
      const { files } = kiln.hub.modelFolderFiles(run.model, run.tok, { source: 'kiln playground' });
      post('files', { files });
    }
  } catch (err) {
    post('error', { message: err instanceof Error ? err.message : String(err) });
  }
};

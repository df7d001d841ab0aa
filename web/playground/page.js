// The playground page: sends the text and settings to the training worker, shows what it reports (loss,
// throughput, validation loss against the unigram baseline, samples), and offers stop, resume, generation and the
// trained model folder as downloads. All text from the worker is shown with textContent, never as HTML.

const $ = (id) => document.getElementById(id);
const worker = new Worker('worker.js', { type: 'module' });
const losses = [];
/** The model sizes the page offers (layers, width). */
const SIZES = { tiny: { layers: 2, width: 48 }, small: { layers: 4, width: 192 } };
const state = { training: false, trained: false, valLoss: null, unigram: null, lastGenerated: null };
window.playground = state; // read by the browser test

fetch('sample.txt').then((r) => r.text()).then((t) => { if (!$('text').value) $('text').value = t; });

const textArea = $('text');
textArea.addEventListener('dragover', (e) => e.preventDefault());
textArea.addEventListener('drop', async (e) => {
  e.preventDefault();
  const file = e.dataTransfer.files[0];
  if (file) textArea.value = await file.text();
});

function setTraining(on) {
  state.training = on;
  $('train').disabled = on;
  $('stop').disabled = !on;
  $('resume').disabled = on || !state.trained;
  $('download').disabled = on || !state.trained;
  $('generate').disabled = on || !state.trained;
}

function status(text, error = false) {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

function draw() {
  const c = $('chart');
  const g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  if (losses.length < 2) return;
  const max = Math.max(...losses);
  const min = Math.min(...losses);
  g.beginPath();
  losses.forEach((l, i) => {
    const x = (i / (losses.length - 1)) * c.width;
    const y = c.height - ((l - min) / (max - min || 1)) * (c.height - 10) - 5;
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.strokeStyle = '#c25';
  g.stroke();
}

function download(name, data) {
  const url = URL.createObjectURL(new Blob([data]));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

worker.onmessage = (e) => {
  const m = e.data;
  if (m.type === 'ready') {
    $('unigram').textContent = m.unigram.toFixed(3);
    $('backend').textContent = m.threads > 1 ? `${m.backend}, ${m.threads} threads` : m.backend;
    state.backend = m.backend;
    state.threads = m.threads;
    status((m.note ? `${m.note}. ` : '') + `Training ${m.parameters.toLocaleString()} parameters over ${m.vocab} characters...`);
  } else if (m.type === 'progress') {
    losses.push(m.loss);
    $('step').textContent = String(m.step);
    $('loss').textContent = m.loss.toFixed(3);
    $('tps').textContent = Math.round(m.tokensPerSecond).toLocaleString();
    if (m.step % 5 === 0) draw();
  } else if (m.type === 'eval' || m.type === 'stopped') {
    state.valLoss = m.valLoss;
    state.unigram = m.unigram;
    state.step = m.step;
    $('val').textContent = m.valLoss.toFixed(3);
    $('sample').textContent = m.sample;
    if (m.type === 'stopped') {
      state.trained = true;
      setTraining(false);
      draw();
      status(`Stopped at step ${m.step} (${m.reason}). Val loss ${m.valLoss.toFixed(3)} against the unigram baseline's ${m.unigram.toFixed(3)}.`);
    }
  } else if (m.type === 'generated') {
    state.lastGenerated = m.text;
    $('output').textContent = m.text;
  } else if (m.type === 'files') {
    for (const [name, data] of Object.entries(m.files)) download(name, data);
    status('Downloaded config.json, model.safetensors, tokenizer.json and tokenizer_config.json: put them in one folder and run `npx kiln generate --model FOLDER`.');
  } else if (m.type === 'error') {
    status(m.message, true);
    setTraining(false);
  }
};

$('train').onclick = () => {
  const text = textArea.value;
  if (text.length < 200) { status('Give at least 200 characters of text.', true); return; }
  losses.length = 0;
  state.trained = false;
  setTraining(true);
  const size = SIZES[$('size').value] ?? SIZES.tiny;
  worker.postMessage({ type: 'start', text, steps: Number($('steps').value) || 400, ...size });
};
$('stop').onclick = () => worker.postMessage({ type: 'stop' });
$('resume').onclick = () => { setTraining(true); worker.postMessage({ type: 'resume', steps: Number($('steps').value) || 400 }); };
$('generate').onclick = () => worker.postMessage({ type: 'generate', prompt: $('prompt').value, maxNewTokens: 60 });
$('download').onclick = () => worker.postMessage({ type: 'download' });

# T4 of BENCHMARKS.md on PyTorch: greedy generation with the T3 model (V=4096, T=128, L=4, H=4, C=256),
# prompt 16 tokens, 112 new tokens, batch 1, with a KV cache kept as Hugging Face GPT-2 keeps it (past keys and
# values per layer, concatenated each step) and without one (the whole sequence every step).
# Also sampling at Kiln's CLI defaults (temperature 0.8, top-p 0.95) the way Hugging Face's TemperatureLogitsWarper
# and TopPLogitsWarper do, to report its cost over greedy. Threads: BENCH_THREADS (bench/run.ts sets Kiln's count).
# Usage: /usr/bin/python3 bench/t4_generate.py ['{"repeats": 5, "uncached": false}']; prints one JSON line:
#   {"torch": version, "threads": n, "cached_tokens_per_s": x, "sampling_tokens_per_s": s, "uncached_tokens_per_s": y}
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

V, T, L, H, C = 4096, 128, 4, 4, 256
PROMPT, NEW = 16, 112


class Conv1D(nn.Module):
    """Hugging Face GPT-2's Conv1D: weight stored (in, out), y = x @ W + b."""

    def __init__(self, nin, nout):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nin, nout) * 0.02)
        self.bias = nn.Parameter(torch.zeros(nout))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.weight.size(-1),)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = Conv1D(C, 3 * C)
        self.c_proj = Conv1D(C, C)
        self.register_buffer('mask', torch.tril(torch.ones(T, T, dtype=torch.bool)).view(1, 1, T, T), persistent=False)

    def split(self, x):  # (B, T, C) -> (B, H, T, HS)
        return x.view(x.size(0), x.size(1), H, C // H).permute(0, 2, 1, 3)

    def forward(self, x, past=None):
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = self.split(q), self.split(k), self.split(v)
        if past is not None:
            k = torch.cat((past[0], k), dim=-2)
            v = torch.cat((past[1], v), dim=-2)
        present = (k, v)
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(v.size(-1))
        tq, tk = q.size(-2), k.size(-2)
        causal = self.mask[:, :, tk - tq:tk, :tk]
        w = torch.where(causal, w, torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype))
        w = F.softmax(w, dim=-1)
        a = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous().view(x.size(0), tq, C)
        return self.c_proj(a), present


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.attn = Attention()
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.c_fc = Conv1D(C, 4 * C)
        self.c_proj = Conv1D(4 * C, C)

    def forward(self, x, past=None):
        a, present = self.attn(self.ln_1(x), past)
        x = x + a
        x = x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate='tanh'))
        return x, present


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList([Block() for _ in range(L)])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)

    def forward(self, idx, past=None, start=0):
        pos = torch.arange(start, start + idx.size(1))
        x = self.wte(idx) + self.wpe(pos)
        presents = []
        for i, block in enumerate(self.h):
            x, p = block(x, None if past is None else past[i])
            presents.append(p)
        x = self.ln_f(x[:, -1:, :])
        return F.linear(x, self.wte.weight), presents  # tied head, last position only


def sample_top_p(logits, temperature=0.8, top_p=0.95):
    """Hugging Face's temperature and top-p warpers, then a multinomial draw."""
    logits = logits / temperature
    sorted_logits, sorted_idx = torch.sort(logits, descending=False)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cum <= (1 - top_p)
    remove[..., -1:] = False  # keep at least one token
    logits = logits.masked_fill(remove.scatter(1, sorted_idx, remove), float('-inf'))
    return torch.multinomial(logits.softmax(dim=-1), num_samples=1)


def generate(model, prompt, cached, sample=False):
    idx = prompt
    with torch.inference_mode():
        if cached:
            logits, past = model(idx)
            out = [idx]
            n = idx.size(1)
            for _ in range(NEW):
                nxt = sample_top_p(logits[:, -1, :]) if sample else logits[:, -1, :].argmax(-1, keepdim=True)
                out.append(nxt)
                if len(out) - 1 == NEW:
                    break
                logits, past = model(nxt, past, n)
                n += 1
            return torch.cat(out, dim=1)
        for _ in range(NEW):
            logits, _ = model(idx)
            idx = torch.cat((idx, logits[:, -1, :].argmax(-1, keepdim=True)), dim=1)
        return idx


def seconds(model, prompt, cached, sample=False):
    t = time.perf_counter()
    generate(model, prompt, cached, sample)
    return time.perf_counter() - t


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def rate(model, prompt, cached, repeats, sample=False):
    generate(model, prompt, cached, sample)  # warm-up
    return NEW / median([seconds(model, prompt, cached, sample) for _ in range(repeats)])


WARM_S = 1.5  # warm-up: both paths in turn for at least this long, as Kiln's side does


def greedy_and_sampling(model, prompt, repeats):
    """Greedy and sampled generation timed in rotation, as Kiln's side does, so drift weighs on both alike."""
    start = time.perf_counter()
    while True:
        generate(model, prompt, True)
        generate(model, prompt, True, True)
        if time.perf_counter() - start >= WARM_S:
            break
    pairs = [(seconds(model, prompt, True), seconds(model, prompt, True, True)) for _ in range(repeats)]
    return (NEW / median([g for g, _ in pairs]), NEW / median([s for _, s in pairs]),
            median([s / g for g, s in pairs]))


def main():
    params = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    repeats = int(params.get('repeats', 5))
    torch.set_num_threads(int(os.environ.get('BENCH_THREADS') or 0) or os.cpu_count() or 1)
    torch.manual_seed(0)
    model = GPT().eval()
    prompt = torch.randint(0, V, (1, PROMPT))
    greedy, sampling, cost = greedy_and_sampling(model, prompt, repeats)
    out = {'torch': torch.__version__, 'threads': torch.get_num_threads(),
           'cached_tokens_per_s': greedy, 'sampling_tokens_per_s': sampling, 'sampling_cost_over_greedy': cost}
    if params.get('uncached'):
        a = generate(model, prompt, True)
        b = generate(model, prompt, False)
        out['uncached_tokens_per_s'] = rate(model, prompt, False, max(1, repeats // 2))
        out['cache_matches_recompute'] = bool(torch.equal(a, b))
    print(json.dumps(out))


if __name__ == '__main__':
    main()

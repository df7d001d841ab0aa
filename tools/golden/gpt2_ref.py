# A plain-PyTorch GPT-2 (the Hugging Face GPT2LMHeadModel forward, no `transformers` needed), used as the oracle
# for test/golden/gpt.json, test/golden/hf-gpt2-tiny/ and check_export.py.
#
# Layout decisions (these are Kiln's too, so files move to and from Hugging Face unchanged):
# - parameter names are HF GPT-2's state_dict names: transformer.wte.weight (V, C), transformer.wpe.weight (P, C),
#   transformer.h.{i}.ln_1.{weight,bias} (C), transformer.h.{i}.attn.c_attn.{weight (C, 3C), bias (3C)},
#   transformer.h.{i}.attn.c_proj.{weight (C, C), bias (C)}, transformer.h.{i}.ln_2.{weight,bias} (C),
#   transformer.h.{i}.mlp.c_fc.{weight (C, 4C), bias (4C)}, transformer.h.{i}.mlp.c_proj.{weight (4C, C), bias (C)},
#   transformer.ln_f.{weight,bias} (C). lm_head.weight is tied to transformer.wte.weight and not stored.
# - c_attn / c_proj / c_fc are HF "Conv1D": weight stored (in_features, out_features), y = x @ W + b
#   (the transpose of nn.Linear's (out, in)).
# - c_attn's output columns are [q | k | v], each C wide; head h of q is columns h*hs .. (h+1)*hs of the q block.
# - attention scores are q.k / sqrt(hs), causal mask, softmax; MLP is tanh-GELU ("gelu_new"); LayerNorm eps 1e-5
#   (pre-norm); no dropout.

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Conv1D(nn.Module):
    def __init__(self, nx, nf):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(nx, nf))  # (in, out)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return x @ self.weight + self.bias


class Attention(nn.Module):
    def __init__(self, C, n_head):
        super().__init__()
        self.n_head = n_head
        self.c_attn = Conv1D(C, 3 * C)
        self.c_proj = Conv1D(C, C)

    def forward(self, x):
        B, T, C = x.shape
        nh = self.n_head
        hs = C // nh
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)
        v = v.view(B, T, nh, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, T)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.c_fc = Conv1D(C, 4 * C)
        self.c_proj = Conv1D(4 * C, C)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, C, n_head, eps):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, eps=eps)
        self.attn = Attention(C, n_head)
        self.ln_2 = nn.LayerNorm(C, eps=eps)
        self.mlp = MLP(C)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT2(nn.Module):
    """cfg: dict with vocab_size, n_positions, n_embd, n_layer, n_head, layer_norm_epsilon (HF GPT2Config names)."""

    def __init__(self, cfg):
        super().__init__()
        V, P, C = cfg["vocab_size"], cfg["n_positions"], cfg["n_embd"]
        eps = cfg.get("layer_norm_epsilon", 1e-5)
        self.cfg = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(V, C),
            wpe=nn.Embedding(P, C),
            h=nn.ModuleList([Block(C, cfg["n_head"], eps) for _ in range(cfg["n_layer"])]),
            ln_f=nn.LayerNorm(C, eps=eps),
        ))

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tr = self.transformer
        pos = torch.arange(T)
        x = tr.wte(idx) + tr.wpe(pos)[None]
        for block in tr.h:
            x = block(x)
        x = tr.ln_f(x)
        logits = x @ tr.wte.weight.t()  # tied lm_head, (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss


def init_gpt2_(model, gen, perturb=True, std=0.02):
    """GPT-2 init drawn in float64 from `gen`, in state_dict order: weights N(0, std) (GPT-2: 0.02), c_proj weights
    N(0, std/sqrt(2*n_layer)), biases 0, LN weight 1 / bias 0; then (perturb=True) biases += N(0, 0.02),
    LN weight += N(0, 0.1), LN bias += N(0, 0.1), so every gradient is exercised."""
    n_layer = model.cfg["n_layer"]
    with torch.no_grad():
        for name, p in model.state_dict().items():
            shape = p.shape
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                v = torch.ones(shape, dtype=torch.float64)
                if perturb:
                    v += 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
            elif ".ln_" in name or name.startswith("transformer.ln_f"):
                v = torch.zeros(shape, dtype=torch.float64)
                if perturb:
                    v += 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
            elif name.endswith(".bias"):
                v = torch.zeros(shape, dtype=torch.float64)
                if perturb:
                    v += 0.02 * torch.randn(shape, generator=gen, dtype=torch.float64)
            else:
                sd = std / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else std
                v = sd * torch.randn(shape, generator=gen, dtype=torch.float64)
            p.copy_(v.to(p.dtype))


def load_hf_state_dict(model, tensors):
    """Load HF GPT-2 tensors (with or without the 'transformer.' prefix, ignoring attn.bias / attn.masked_bias
    buffers and a tied lm_head.weight) into `model`, converting to the model's dtype. Returns the names used."""
    own = model.state_dict()
    norm = {}
    for name, t in tensors.items():
        if name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
            continue
        key = name if name.startswith("transformer.") or name == "lm_head.weight" else "transformer." + name
        norm[key] = t
    lm_head = norm.pop("lm_head.weight", None)
    missing = [k for k in own if k not in norm]
    extra = [k for k in norm if k not in own]
    if missing or extra:
        raise ValueError(f"state dict mismatch: missing {missing}, unexpected {extra}")
    with torch.no_grad():
        for k, p in own.items():
            if tuple(norm[k].shape) != tuple(p.shape):
                raise ValueError(f"{k}: expected shape {list(p.shape)}, found {list(norm[k].shape)}")
            p.copy_(norm[k].to(p.dtype))
    if lm_head is not None and not torch.equal(lm_head.to(torch.float64), norm["transformer.wte.weight"].to(torch.float64)):
        raise ValueError("lm_head.weight differs from transformer.wte.weight; this reference only supports a tied head")
    return sorted(norm)

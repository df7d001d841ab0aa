#!/usr/bin/python3
# Writes test/golden/llama.json: a Llama-style decoder (Hugging Face LlamaForCausalLM's forward, written here in
# plain torch, no transformers) on small configs with fixed weights: logits, loss and every parameter gradient.
# Run `/usr/bin/python3 tools/golden/llama_ref.py` (torch 1.13, Debian python3-torch); output is deterministic.
#
# The forward follows modeling_llama.py: embed_tokens -> per layer x + o_proj(attn(input_layernorm(x))),
# + down_proj(silu(gate_proj(h)) * up_proj(h)) of post_attention_layernorm(h) -> norm -> lm_head. RMSNorm is
# x * rsqrt(mean(x^2) + eps) * weight; rotary embeddings use rotate_half with inv_freq = theta^(-2i/head_dim) on
# q and k of every head; grouped-query attention repeats each key/value head num_heads / num_kv_heads times
# (repeat_kv); causal softmax attention scaled by 1/sqrt(head_dim); no biases, no dropout.
# Weights are drawn in float64, rounded to float32 (what Kiln loads), and the forward runs in float64.

import json
import math
import sys

import torch

torch.set_num_threads(1)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope(x, theta):
    # x (B, NH, T, HS)
    T, HS = x.shape[-2], x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, HS, 2, dtype=torch.float64) / HS))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)  # (T, HS/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (T, HS)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def forward(p, cfg, idx):
    C, NH, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    HS, eps, theta = C // NH, cfg["rms_norm_eps"], cfg["rope_theta"]
    B, T = idx.shape
    x = p["model.embed_tokens.weight"][idx]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{l}."
        h = rms_norm(x, p[pre + "input_layernorm.weight"], eps)
        q = (h @ p[pre + "self_attn.q_proj.weight"].T).view(B, T, NH, HS).transpose(1, 2)
        k = (h @ p[pre + "self_attn.k_proj.weight"].T).view(B, T, KV, HS).transpose(1, 2)
        v = (h @ p[pre + "self_attn.v_proj.weight"].T).view(B, T, KV, HS).transpose(1, 2)
        q, k = rope(q, theta), rope(k, theta)
        k = k[:, :, None].expand(B, KV, NH // KV, T, HS).reshape(B, NH, T, HS)  # repeat_kv
        v = v[:, :, None].expand(B, KV, NH // KV, T, HS).reshape(B, NH, T, HS)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HS) + mask, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p[pre + "self_attn.o_proj.weight"].T
        h = rms_norm(x, p[pre + "post_attention_layernorm.weight"], eps)
        g = h @ p[pre + "mlp.gate_proj.weight"].T
        u = h @ p[pre + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ p[pre + "mlp.down_proj.weight"].T
    x = rms_norm(x, p["model.norm.weight"], eps)
    head = p["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else p["lm_head.weight"]
    return x @ head.T


def shapes(cfg):
    C, V, I = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    KW = C // cfg["num_attention_heads"] * cfg["num_key_value_heads"]
    out = [("model.embed_tokens.weight", (V, C))]
    for l in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{l}."
        out += [(pre + "self_attn.q_proj.weight", (C, C)), (pre + "self_attn.k_proj.weight", (KW, C)),
                (pre + "self_attn.v_proj.weight", (KW, C)), (pre + "self_attn.o_proj.weight", (C, C)),
                (pre + "mlp.gate_proj.weight", (I, C)), (pre + "mlp.up_proj.weight", (I, C)),
                (pre + "mlp.down_proj.weight", (C, I)), (pre + "input_layernorm.weight", (C,)),
                (pre + "post_attention_layernorm.weight", (C,))]
    out.append(("model.norm.weight", (C,)))
    if not cfg["tie_word_embeddings"]:
        out.append(("lm_head.weight", (V, C)))
    return out


def arr(t):
    t = t.detach()
    return {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "data": t.reshape(-1).tolist()}


def make_case(cfg, seed, B, T):
    gen = torch.Generator().manual_seed(seed)
    params = {}
    for name, shape in shapes(cfg):
        if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            v = 1 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            v = 0.2 * torch.randn(shape, generator=gen, dtype=torch.float64)  # larger than 0.02 so every path matters
        params[name] = v.float().double().requires_grad_()
    idx = torch.randint(0, cfg["vocab_size"], (B, T), generator=gen)
    targets = torch.randint(0, cfg["vocab_size"], (B, T), generator=gen)
    targets[0, 1] = -100  # an ignored position
    logits = forward(params, cfg, idx)
    loss = torch.nn.functional.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-100)
    loss.backward()
    return {
        "config": cfg,
        "state_dict": {k: arr(v.float()) for k, v in params.items()},
        "idx": arr(idx.int()), "targets": arr(targets.int()),
        "logits": arr(logits), "loss": loss.item(),
        "grads": {k: arr(v.grad) for k, v in params.items()},
    }


def hf_config(**kw):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "rope_scaling": None}
    cfg.update(kw)
    return cfg


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "test/golden/llama.json"
    gqa = hf_config(vocab_size=32, hidden_size=16, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=16, rms_norm_eps=1e-5, rope_theta=500.0,
                    tie_word_embeddings=False)
    mqa = hf_config(vocab_size=24, hidden_size=24, intermediate_size=40, num_hidden_layers=1, num_attention_heads=3,
                    num_key_value_heads=1, max_position_embeddings=12, rms_norm_eps=1e-6, rope_theta=10000.0,
                    tie_word_embeddings=True)
    doc = {
        "meta": {"generator": "tools/golden/llama_ref.py", "torch": torch.__version__, "param_dtype": "float32",
                 "compute_dtype": "float64",
                 "layout": "Hugging Face LlamaForCausalLM state_dict names; Linear weights (out_features, in_features); "
                           "rotate_half RoPE; repeat_kv grouped-query attention; no biases; target [0, 1] is -100"},
        "cases": {"gqa_untied": make_case(gqa, 1, 2, 8), "mqa_tied": make_case(mqa, 2, 2, 9)},
    }
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()

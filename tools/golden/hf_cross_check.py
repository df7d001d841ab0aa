#!/usr/bin/env python3
# Cross-checks the GPT golden files against Hugging Face transformers' own GPT2LMHeadModel (needs `transformers`;
# `safetensors` optional). Proves that gpt.json and hf-gpt2-tiny/ are in exactly HF's layout, not just ours.
#
#   python3 tools/golden/hf_cross_check.py        # prints PASS/FAIL lines, exit status 0 when all pass
#
# The shims below only fill in torch APIs that newer transformers import but torch 1.13 lacks; on torch >= 2.1 they
# do nothing. (With transformers 4.57.6 on torch 1.13 three more edits inside transformers were needed, see README.)

import json
import os
import sys
import types

import torch
import torch.utils._pytree as _pytree

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "..", "test", "golden")

if not hasattr(_pytree, "register_pytree_node"):
    _pytree.register_pytree_node = lambda *a, **k: None
for _name in ["float8_e4m3fn", "float8_e5m2", "uint16", "uint32", "uint64", "float8_e8m0fnu", "float8_e4m3fnuz",
              "float8_e5m2fnuz"]:
    if not hasattr(torch, _name):
        setattr(torch, _name, torch.uint8)
if not hasattr(torch, "vmap"):
    import functorch
    torch.vmap = functorch.vmap


def _disable(fn=None, recursive=True):
    return fn if fn is not None else (lambda f: f)


if not hasattr(torch, "compiler"):
    torch.compiler = types.SimpleNamespace(disable=_disable, is_compiling=lambda: False,
                                           is_dynamo_compiling=lambda: False)
if not hasattr(torch, "_dynamo"):
    torch._dynamo = types.SimpleNamespace(allow_in_graph=lambda f: f, is_compiling=lambda: False, disable=_disable)

import transformers  # noqa: E402
from transformers.models.gpt2.modeling_gpt2 import GPT2Config, GPT2LMHeadModel  # noqa: E402

sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402


def T(d):
    return torch.tensor(d["data"], dtype=torch.float64).reshape(d["shape"])


def report(name, diff, tol):
    ok = diff <= tol
    print(f"{'PASS' if ok else 'FAIL'} {name}: max |diff| {diff:.3g} (tolerance {tol:g})")
    return ok


def main():
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    ok = True

    g = json.load(open(os.path.join(GOLDEN, "gpt.json")))
    c = g["config"]
    cfg = GPT2Config(vocab_size=c["vocab_size"], n_positions=c["n_positions"], n_embd=c["n_embd"],
                     n_layer=c["n_layer"], n_head=c["n_head"], layer_norm_epsilon=c["layer_norm_epsilon"],
                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    cfg._attn_implementation = "eager"
    m = GPT2LMHeadModel(cfg).double().eval()
    res = m.load_state_dict({k: T(v) for k, v in g["state_dict"].items()}, strict=False)
    if list(res.unexpected_keys) or [k for k in res.missing_keys if k != "lm_head.weight"]:
        print(f"FAIL gpt.json state_dict names: {res}")
        return 1
    idx = torch.tensor(g["idx"]["data"]).reshape(g["idx"]["shape"])
    tg = torch.tensor(g["targets"]["data"]).reshape(g["targets"]["shape"])
    logits = m(idx).logits
    ok &= report("gpt.json logits", (logits - T(g["logits"])).abs().max().item(), 1e-12)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tg.reshape(-1))
    ok &= report("gpt.json loss", abs(loss.item() - g["loss"]), 1e-12)
    loss.backward()
    params = dict(m.named_parameters())  # HF dedups the tied lm_head: its gradient lands in wte
    if sorted(params) != sorted(g["grads"]):
        print(f"FAIL gpt.json gradient names: HF {sorted(params)} vs golden {sorted(g['grads'])}")
        ok = False
    else:
        d = max((params[k].grad - T(v)).abs().max().item() for k, v in g["grads"].items())
        ok &= report("gpt.json gradients (all parameters)", d, 1e-12)

    folder = os.path.join(GOLDEN, "hf-gpt2-tiny")
    cfg2 = GPT2Config.from_json_file(os.path.join(folder, "config.json"))
    cfg2._attn_implementation = "eager"
    m2 = GPT2LMHeadModel(cfg2).double().eval()
    try:
        from safetensors.torch import load_file
        sd2, how = load_file(os.path.join(folder, "model.safetensors")), "safetensors package"
    except ImportError:
        sd2, how = safetensors_io.read(os.path.join(folder, "model.safetensors"))[0], "tools/golden reader"
    res = m2.load_state_dict(sd2, strict=False)
    if list(res.unexpected_keys) or [k for k in res.missing_keys if k != "lm_head.weight"]:
        print(f"FAIL hf-gpt2-tiny state_dict names: {res}")
        return 1
    lj = json.load(open(os.path.join(folder, "logits.json")))
    idx = torch.tensor(lj["idx"]["data"]).reshape(lj["idx"]["shape"])
    with torch.no_grad():
        d = (m2(idx).logits - T(lj["logits"])).abs().max().item()
    ok &= report(f"hf-gpt2-tiny logits (weights read with the {how})", d, 1e-12)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
# Replays test/golden/ops.json data-driven, through a PyTorch stand-in for Kiln's call conventions (the KILN table
# below), exactly as a Kiln test would: resolve args ({"input": i} -> tensor), call op(...args, kwargs?), compare the
# output and the gradients of sum(output * grad_weight). Proves the file describes itself; also a worked example
# of how to read it.   /usr/bin/python3 tools/golden/verify_ops.py

import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "..", "..", "test", "golden", "ops.json")


def _dims(d):
    return tuple(d) if isinstance(d, list) else d


def _reduce(fn_all, fn_dim):
    def f(x, dims=None, keep=False, opts=None):
        return fn_all(x) if dims is None else fn_dim(x, _dims(dims), keep)
    return f


def _var(x, dims=None, keep=False, opts=None):
    if isinstance(dims, dict):  # var(x, {unbiased})
        opts, dims = dims, None
    u = (opts or {}).get("unbiased", True)
    return torch.var(x, unbiased=u) if dims is None else torch.var(x, dim=_dims(dims), unbiased=u, keepdim=keep)


def _ce(logits, target, o=None):
    o = o or {}
    return F.cross_entropy(logits, target, ignore_index=o.get("ignoreIndex", -100),
                           label_smoothing=o.get("labelSmoothing", 0.0), reduction=o.get("reduction", "mean"))


def _clamp(x, lo, hi):
    return torch.clamp(x, min=lo, max=hi)


KILN = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
    "maximum": torch.maximum, "minimum": torch.minimum,
    "neg": torch.neg, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "abs": torch.abs,
    "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "silu": F.silu,
    "gelu": lambda x, o=None: F.gelu(x, approximate=(o or {}).get("approximate", "none")),
    "clamp": _clamp,
    "where": lambda c, a, b: torch.where(c != 0, a, b),
    "sum": _reduce(torch.sum, lambda x, d, k: torch.sum(x, dim=d, keepdim=k)),
    "mean": _reduce(torch.mean, lambda x, d, k: torch.mean(x, dim=d, keepdim=k)),
    "max": _reduce(torch.max, lambda x, d, k: torch.amax(x, dim=d, keepdim=k)),
    "min": _reduce(torch.min, lambda x, d, k: torch.amin(x, dim=d, keepdim=k)),
    "var": _var,
    "argmax": lambda x, d, k: torch.argmax(x, dim=d, keepdim=k),
    "matmul": torch.matmul,
    "reshape": torch.reshape, "transpose": torch.transpose, "permute": lambda x, p: x.permute(p),
    "squeeze": lambda x, d=None: x.squeeze() if d is None else x.squeeze(d),
    "unsqueeze": torch.unsqueeze, "expand": lambda x, s: x.expand(s),
    "narrow": torch.narrow, "indexSelect": torch.index_select, "gather": torch.gather,
    "cat": lambda ts, d: torch.cat(ts, dim=d), "stack": lambda ts, d: torch.stack(ts, dim=d),
    "softmax": lambda x, d: F.softmax(x, dim=d), "logSoftmax": lambda x, d: F.log_softmax(x, dim=d),
    "layerNorm": lambda x, w, b, o: F.layer_norm(x, (x.shape[-1],), w, b, o["eps"]),
    "embedding": F.embedding,
    "crossEntropy": _ce,
    "nllLoss": lambda lp, t, o=None: F.nll_loss(lp, t, ignore_index=(o or {}).get("ignoreIndex", -100),
                                                reduction=(o or {}).get("reduction", "mean")),
    "mseLoss": lambda a, b, o=None: F.mse_loss(a, b, reduction=(o or {}).get("reduction", "mean")),
    "l1Loss": lambda a, b, o=None: F.l1_loss(a, b, reduction=(o or {}).get("reduction", "mean")),
    "binaryCrossEntropyWithLogits": lambda a, b, o=None: F.binary_cross_entropy_with_logits(
        a, b, reduction=(o or {}).get("reduction", "mean")),
}


def tensor(d):
    dt = torch.float64 if d["dtype"] == "float64" else torch.int64
    return torch.tensor(d["data"], dtype=dt).reshape(d["shape"])


def resolve(a, ins):
    if isinstance(a, dict) and set(a) == {"input"}:
        return ins[a["input"]]
    if isinstance(a, list):
        return [resolve(x, ins) for x in a]
    return a


def main():
    doc = json.load(open(PATH))
    bad = 0
    for c in doc["cases"]:
        ins = []
        for d in c["inputs"]:
            t = tensor(d)
            ins.append(t.requires_grad_(True) if d["requires_grad"] else t)
        args = [resolve(a, ins) for a in c["args"]]
        if c["op"] in ("reshape", "permute", "expand") and isinstance(args[1], list):
            args[1] = tuple(args[1])
        out = KILN[c["op"]](*args, c["kwargs"]) if c["kwargs"] else KILN[c["op"]](*args)
        want = tensor(c["output"])
        err = []
        if list(out.shape) != c["output"]["shape"] or not torch.allclose(out.to(want.dtype), want, rtol=0, atol=1e-12):
            err.append("output")
        if c["grad_weight"] is not None and any(d["requires_grad"] for d in c["inputs"]):
            (out * tensor(c["grad_weight"])).sum().backward()
            for i, (d, g) in enumerate(zip(c["inputs"], c["grads"])):
                if (g is None) != (not d["requires_grad"]):
                    err.append(f"grads[{i}] presence")
                elif g is not None:
                    got = ins[i].grad if ins[i].grad is not None else torch.zeros_like(ins[i])
                    if not torch.allclose(got, tensor(g), rtol=0, atol=1e-12):
                        err.append(f"grads[{i}]")
        if err:
            bad += 1
            print(f"FAIL {c['name']}: {', '.join(err)}")
    print(f"{'PASS' if not bad else 'FAIL'}: {len(doc['cases']) - bad}/{len(doc['cases'])} ops.json cases replay")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

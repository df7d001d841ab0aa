#!/usr/bin/python3
# Writes Kiln's golden test fixtures under test/golden/ from PyTorch (torch 1.13, Debian's python3-torch).
# Run `/usr/bin/python3 tools/golden/make_golden.py [all|ops|stack|optim|gpt|hf|safetensors]`; output is deterministic.
#
# ---------------------------------------------------------------------------------------------------------------
# ops.json: Kiln call conventions assumed (camelCase, PyTorch-like; tensors first, then plain arguments, then one
# options object). In a case, "args" spells out the positional arguments of the call: {"input": i} stands for the
# tensor inputs[i] (also inside lists, as for cat/stack); every other entry is a plain JSON value. "kwargs" is the
# trailing options object (omitted from the call when empty). So `kiln[op](...resolve(args), kwargs?)`.
#
#   add(a, b) sub(a, b) mul(a, b) div(a, b)      NumPy broadcasting; b may be a plain number
#   pow(a, b)                                     b a number or a tensor (tensor^tensor cases have a positive base)
#   neg(x) exp(x) log(x) sqrt(x) abs(x) tanh(x) sigmoid(x) relu(x) silu(x)
#   gelu(x)                                       exact (erf) form
#   gelu(x, {approximate: 'tanh'})                tanh approximation (GPT-2's "gelu_new")
#   clamp(x, min, max)                            min or max may be null (no bound on that side)
#   maximum(a, b) minimum(a, b)                   element-wise, broadcasting
#   where(cond, a, b)                             cond is a float64 tensor of 0/1 (nonzero = take a), broadcasting
#   sum(x, dims?, keepDim?) mean(x, dims?, keepDim?) max(x, dims?, keepDim?) min(x, dims?, keepDim?)
#                                                 dims: an int or a list of ints (negatives allowed); omitted = all
#                                                 axes (result shape []); max/min return values only
#   var(x, dims?, keepDim?, {unbiased})           unbiased true divides by n-1 (PyTorch default), false by n
#   argmax(x, dim, keepDim)                       int32 output, no gradient
#   matmul(a, b)                                  torch.matmul rules: 1-D.1-D, 2-D, 1-D@2-D, 2-D@1-D, batched with
#                                                 broadcast batch dims
#   reshape(x, shape)                             shape may hold one -1
#   transpose(x, dim0, dim1) permute(x, dims)
#   squeeze(x, dim?)                              no dim = drop every size-1 axis
#   unsqueeze(x, dim)
#   expand(x, shape)                              -1 keeps that axis
#   narrow(x, dim, start, length)                 the slice start .. start+length along dim
#   indexSelect(x, dim, index)                    index: 1-D int32 tensor (repeats allowed: gradients accumulate)
#   gather(x, dim, index)                         index: int32 tensor, same rank as x
#   cat(tensors, dim) stack(tensors, dim)
#   softmax(x, dim) logSoftmax(x, dim)
#   layerNorm(x, weight, bias, {eps})             over the last axis (weight's shape); weight/bias may be null
#   embedding(indices, weight)                    indices int32 of any shape -> shape + [C]
#   crossEntropy(logits, target, {ignoreIndex, labelSmoothing, reduction})
#                                                 logits (N, C), target int32 (N); reduction 'mean' (default; mean
#                                                 over non-ignored rows) | 'sum' | 'none'; ignoreIndex default -100
#   nllLoss(logProbs, target, {ignoreIndex, reduction})
#   mseLoss(input, target, {reduction}) l1Loss(input, target, {reduction})
#   binaryCrossEntropyWithLogits(logits, target, {reduction})      target holds probabilities in [0, 1]
#
# Gradients: for each case, grads[i] = d/d inputs[i] of (output * grad_weight).sum(), computed in float64, where
# grad_weight is a fixed random tensor of the output's shape stored in the case. grads[i] is null when
# inputs[i].requires_grad is false (integer inputs, conditions, loss targets).
# ---------------------------------------------------------------------------------------------------------------

import json
import math
import os
import sys
import zlib

sys.dont_write_bytecode = True  # keep __pycache__ out of the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import gpt2_ref  # noqa: E402
import safetensors_io  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "test", "golden")
SCRIPT = "tools/golden/make_golden.py"
F64 = torch.float64

torch.set_num_threads(1)  # fixed reduction order: the same bytes on every rerun


def meta(sub, **extra):
    m = {"generator": f"{SCRIPT} {sub}", "torch": torch.__version__}
    m.update(extra)
    return m


def tj(t, dtype=None):
    """Tensor -> {"shape", "dtype", "data"} with the data flat, row-major, as exact Python floats or ints."""
    t = t.detach()
    if dtype is None:
        dtype = {torch.float64: "float64", torch.float32: "float32", torch.int64: "int32", torch.int32: "int32",
                 torch.bool: "int32"}[t.dtype]
    flat = t.reshape(-1)
    if dtype == "int32":
        data = [int(v) for v in flat.to(torch.int64).tolist()]
    else:
        data = flat.to(F64).tolist()
    return {"shape": list(t.shape), "dtype": dtype, "data": data}


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def write_json(path, obj, list_key=None):
    """Compact JSON; with list_key, each element of obj[list_key] (and every other top-level key) on its own
    line so diffs stay readable."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if list_key is None:
        text = dumps(obj) + "\n"
    else:
        parts = []
        for k, v in obj.items():
            if k == list_key:
                inner = ",\n".join(dumps(x) for x in v)
                parts.append(dumps(k) + ":[\n" + inner + "\n]")
            else:
                parts.append(dumps(k) + ":" + dumps(v))
        text = "{\n" + ",\n".join(parts) + "\n}\n"
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(text)} bytes)")


# ------------------------------------------------------------------------------------------------------ ops.json

class OpCases:
    def __init__(self):
        self.cases = []
        self.names = set()

    def start(self, name):
        assert name not in self.names, name
        self.names.add(name)
        self.name = name
        self.g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        return self

    # random draws, all float64
    def randn(self, *shape, scale=1.0):
        return scale * torch.randn(shape, generator=self.g, dtype=F64)

    def rand(self, *shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(shape, generator=self.g, dtype=F64)

    def pos(self, *shape):
        return self.rand(*shape, lo=0.5, hi=2.0)

    def away(self, *shape):
        """Random signs, magnitude in [0.5, 2]: safe denominators, no kinks near 0."""
        s = torch.where(self.rand(*shape) < 0.5, -1.0, 1.0).to(F64)
        return s * self.pos(*shape)

    def ints(self, shape, lo, hi):
        return torch.randint(lo, hi, shape, generator=self.g, dtype=torch.int64)

    def emit(self, op, inputs, args=None, extra=(), kwargs=None, fn=None, expr=""):
        """inputs: list of (label, tensor, requires_grad); args default: the inputs in order, then `extra`."""
        if args is None:
            args = [{"input": i} for i in range(len(inputs))] + list(extra)
        kwargs = kwargs or {}
        leaves = []
        for _, t, rg in inputs:
            if t.dtype.is_floating_point:
                leaves.append(t.detach().clone().to(F64).requires_grad_(rg))
            else:
                leaves.append(t.detach().clone().to(torch.int64))
        out = fn(*leaves)
        case = {"name": self.name, "op": op, "args": args, "kwargs": kwargs, "torch": expr, "inputs": []}
        for (label, t, rg), leaf in zip(inputs, leaves):
            d = tj(leaf, "float64" if leaf.dtype.is_floating_point else "int32")
            d["name"] = label
            d["requires_grad"] = bool(rg)
            case["inputs"].append(d)
        if out.dtype.is_floating_point:
            w = self.randn(*out.shape)
            case["output"] = tj(out)
            case["grad_weight"] = tj(w)
            if any(rg for _, _, rg in inputs):
                (out * w).sum().backward()
            grads = []
            for (_, _, rg), leaf in zip(inputs, leaves):
                if not rg:
                    grads.append(None)
                else:
                    gr = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
                    grads.append(tj(gr))
            case["grads"] = grads
        else:
            case["output"] = tj(out, "int32")
            case["grad_weight"] = None
            case["grads"] = [None] * len(inputs)
        self.cases.append(case)


def I(i):
    return {"input": i}


def build_ops():
    c = OpCases()

    # -- binary element-wise, with broadcasting
    binary = [
        ("add", lambda a, b: a + b, "torch.add(a, b)"),
        ("sub", lambda a, b: a - b, "torch.sub(a, b)"),
        ("mul", lambda a, b: a * b, "torch.mul(a, b)"),
        ("div", lambda a, b: a / b, "torch.div(a, b)"),
        ("maximum", torch.maximum, "torch.maximum(a, b)"),
        ("minimum", torch.minimum, "torch.minimum(a, b)"),
    ]
    shapes = [("same", (3, 4), (3, 4)), ("row", (3, 4), (4,)), ("col", (3, 4), (3, 1)),
              ("left", (4,), (3, 4)), ("3d", (2, 1, 4), (3, 1)), ("scalar_tensor", (2, 3), ())]
    for op, fn, expr in binary:
        for tag, sa, sb in shapes:
            c.start(f"{op}_{tag}")
            a = c.randn(*sa)
            b = c.away(*sb) if op == "div" else c.randn(*sb)
            c.emit(op, [("a", a, True), ("b", b, True)], fn=fn, expr=expr)
    for op, fn, expr, k in [("add", lambda a: a + 1.5, "a + 1.5", 1.5), ("sub", lambda a: a - 0.25, "a - 0.25", 0.25),
                            ("mul", lambda a: a * -2.0, "a * -2.0", -2.0), ("div", lambda a: a / 4.0, "a / 4.0", 4.0)]:
        c.start(f"{op}_number")
        c.emit(op, [("a", c.randn(3, 4), True)], extra=[k], fn=fn, expr=expr)

    # -- pow
    c.start("pow_number_2")
    c.emit("pow", [("a", c.randn(3, 4), True)], extra=[2.0], fn=lambda a: a ** 2.0, expr="torch.pow(a, 2.0)")
    c.start("pow_number_3")
    c.emit("pow", [("a", c.randn(3, 4), True)], extra=[3.0], fn=lambda a: a ** 3.0, expr="torch.pow(a, 3.0)")
    c.start("pow_number_half")
    c.emit("pow", [("a", c.pos(3, 4), True)], extra=[0.5], fn=lambda a: a ** 0.5, expr="torch.pow(a, 0.5)")
    c.start("pow_number_neg")
    c.emit("pow", [("a", c.pos(3, 4), True)], extra=[-1.5], fn=lambda a: a ** -1.5, expr="torch.pow(a, -1.5)")
    c.start("pow_tensor_same")
    c.emit("pow", [("a", c.pos(3, 4), True), ("b", c.randn(3, 4), True)], fn=torch.pow, expr="torch.pow(a, b)")
    c.start("pow_tensor_row")
    c.emit("pow", [("a", c.pos(3, 4), True), ("b", c.randn(4), True)], fn=torch.pow, expr="torch.pow(a, b)")

    # -- unary
    unary = [
        ("neg", torch.neg, "randn"), ("exp", torch.exp, "randn"), ("log", torch.log, "pos"),
        ("sqrt", torch.sqrt, "pos"), ("abs", torch.abs, "away"), ("tanh", torch.tanh, "randn"),
        ("sigmoid", torch.sigmoid, "randn"), ("relu", torch.relu, "randn"), ("silu", F.silu, "randn"),
        ("gelu", F.gelu, "randn"),
    ]
    for op, fn, draw in unary:
        for tag, shape in [("2d", (3, 4)), ("3d", (2, 3, 5))]:
            c.start(f"{op}_{tag}")
            x = getattr(c, draw)(*shape) * (2.0 if op in ("gelu", "silu", "relu", "tanh", "sigmoid") else 1.0)
            expr = {"silu": "F.silu(x)", "gelu": "F.gelu(x)"}.get(op, f"torch.{op}(x)")
            c.emit(op, [("x", x, True)], fn=fn, expr=expr)
    for tag, shape in [("2d", (3, 4)), ("3d", (2, 3, 5))]:
        c.start(f"gelu_tanh_{tag}")
        c.emit("gelu", [("x", 2.0 * c.randn(*shape), True)], kwargs={"approximate": "tanh"},
               fn=lambda x: F.gelu(x, approximate="tanh"), expr="F.gelu(x, approximate='tanh')")

    # -- clamp
    c.start("clamp_both")
    c.emit("clamp", [("x", c.randn(4, 5), True)], extra=[-0.5, 0.5], fn=lambda x: torch.clamp(x, -0.5, 0.5),
           expr="torch.clamp(x, -0.5, 0.5)")
    c.start("clamp_min_only")
    c.emit("clamp", [("x", c.randn(4, 5), True)], extra=[0.1, None], fn=lambda x: torch.clamp(x, min=0.1),
           expr="torch.clamp(x, min=0.1)")
    c.start("clamp_max_only")
    c.emit("clamp", [("x", c.randn(4, 5), True)], extra=[None, -0.2], fn=lambda x: torch.clamp(x, max=-0.2),
           expr="torch.clamp(x, max=-0.2)")

    # -- where
    c.start("where_same")
    cond = (c.rand(3, 4) < 0.5).to(F64)
    c.emit("where", [("cond", cond, False), ("a", c.randn(3, 4), True), ("b", c.randn(3, 4), True)],
           fn=lambda k, a, b: torch.where(k != 0, a, b), expr="torch.where(cond != 0, a, b)")
    c.start("where_broadcast")
    cond = (c.rand(3, 1) < 0.5).to(F64)
    cond[0, 0] = 1.0
    cond[1, 0] = 0.0
    c.emit("where", [("cond", cond, False), ("a", c.randn(3, 4), True), ("b", c.randn(4), True)],
           fn=lambda k, a, b: torch.where(k != 0, a, b), expr="torch.where(cond != 0, a, b)")

    # -- reductions over x (2, 3, 4)
    red_specs = [("all", None, None), ("dim1", 1, False), ("dim1_keep", 1, True), ("dimneg1_keep", -1, True),
                 ("dims02", [0, 2], False), ("dims02_keep", [0, 2], True), ("dimsneg", [-1, -2], False)]
    for op in ["sum", "mean", "max", "min"]:
        for tag, dims, keep in red_specs:
            c.start(f"{op}_{tag}")
            x = c.randn(2, 3, 4)
            if dims is None:
                fn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}[op]
                if op in ("max", "min"):
                    f2 = (lambda x, op=op: x.max()) if op == "max" else (lambda x: x.min())
                    c.emit(op, [("x", x, True)], fn=f2, expr=f"x.{op}()")
                else:
                    c.emit(op, [("x", x, True)], fn=fn, expr=f"torch.{op}(x)")
                continue
            d = tuple(dims) if isinstance(dims, list) else dims
            tfn = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}[op]
            tname = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}[op]
            c.emit(op, [("x", x, True)], extra=[dims, keep],
                   fn=lambda x, tfn=tfn, d=d, keep=keep: tfn(x, dim=d, keepdim=keep),
                   expr=f"torch.{tname}(x, dim={d}, keepdim={keep})")
    for tag, dims, keep, unb in [("all_unbiased", None, None, True), ("all_biased", None, None, False),
                                 ("dimneg1_unbiased", -1, False, True), ("dim1_keep_biased", 1, True, False),
                                 ("dims02_keep_unbiased", [0, 2], True, True), ("dims02_biased", [0, 2], False, False)]:
        c.start(f"var_{tag}")
        x = c.randn(2, 3, 4)
        if dims is None:
            c.emit("var", [("x", x, True)], kwargs={"unbiased": unb}, fn=lambda x, u=unb: torch.var(x, unbiased=u),
                   expr=f"torch.var(x, unbiased={unb})")
        else:
            d = tuple(dims) if isinstance(dims, list) else dims
            c.emit("var", [("x", x, True)], extra=[dims, keep], kwargs={"unbiased": unb},
                   fn=lambda x, d=d, k=keep, u=unb: torch.var(x, dim=d, unbiased=u, keepdim=k),
                   expr=f"torch.var(x, dim={d}, unbiased={unb}, keepdim={keep})")
    for tag, dim, keep in [("dim1", 1, False), ("dimneg1_keep", -1, True), ("dim0", 0, False)]:
        c.start(f"argmax_{tag}")
        c.emit("argmax", [("x", c.randn(2, 3, 4), False)], extra=[dim, keep],
               fn=lambda x, d=dim, k=keep: torch.argmax(x, dim=d, keepdim=k),
               expr=f"torch.argmax(x, dim={dim}, keepdim={keep})")

    # -- matmul
    for tag, sa, sb in [("dot", (4,), (4,)), ("2d", (3, 4), (4, 5)), ("vec_mat", (4,), (4, 5)),
                        ("mat_vec", (3, 4), (4,)), ("batched", (2, 3, 4), (2, 4, 5)),
                        ("batched_2d", (2, 3, 4), (4, 5)), ("broadcast_batch", (2, 1, 3, 4), (5, 4, 2))]:
        c.start(f"matmul_{tag}")
        c.emit("matmul", [("a", c.randn(*sa), True), ("b", c.randn(*sb), True)], fn=torch.matmul,
               expr="torch.matmul(a, b)")

    # -- shape ops
    for tag, src, shape in [("2d", (2, 3, 4), [6, 4]), ("infer", (2, 3, 4), [4, -1]), ("flat", (3, 4), [12]),
                            ("up", (6, 2), [2, 3, 2])]:
        c.start(f"reshape_{tag}")
        c.emit("reshape", [("x", c.randn(*src), True)], extra=[shape], fn=lambda x, s=shape: x.reshape(s),
               expr=f"x.reshape({shape})")
    for tag, src, d0, d1 in [("2d", (3, 4), 0, 1), ("3d_01", (2, 3, 4), 0, 1), ("3d_last", (2, 3, 4), -1, -2),
                             ("4d_12", (2, 3, 4, 5), 1, 2)]:
        c.start(f"transpose_{tag}")
        c.emit("transpose", [("x", c.randn(*src), True)], extra=[d0, d1],
               fn=lambda x, a=d0, b=d1: x.transpose(a, b), expr=f"x.transpose({d0}, {d1})")
    for tag, src, perm in [("3d", (2, 3, 4), [2, 0, 1]), ("4d", (2, 3, 4, 5), [0, 2, 1, 3])]:
        c.start(f"permute_{tag}")
        c.emit("permute", [("x", c.randn(*src), True)], extra=[perm], fn=lambda x, p=perm: x.permute(p),
               expr=f"x.permute({perm})")
    c.start("squeeze_dim")
    c.emit("squeeze", [("x", c.randn(3, 1, 4), True)], extra=[1], fn=lambda x: x.squeeze(1), expr="x.squeeze(1)")
    c.start("squeeze_neg")
    c.emit("squeeze", [("x", c.randn(3, 4, 1), True)], extra=[-1], fn=lambda x: x.squeeze(-1), expr="x.squeeze(-1)")
    c.start("squeeze_all")
    c.emit("squeeze", [("x", c.randn(1, 3, 1, 4), True)], fn=lambda x: x.squeeze(), expr="x.squeeze()")
    for tag, dim in [("0", 0), ("1", 1), ("neg1", -1)]:
        c.start(f"unsqueeze_{tag}")
        c.emit("unsqueeze", [("x", c.randn(3, 4), True)], extra=[dim], fn=lambda x, d=dim: x.unsqueeze(d),
               expr=f"x.unsqueeze({dim})")
    for tag, src, shape in [("col", (3, 1), [3, 4]), ("new_axis", (3, 1), [2, 3, 4]), ("row", (1, 4), [3, 4]),
                            ("keep", (3, 1), [2, -1, 4])]:
        c.start(f"expand_{tag}")
        c.emit("expand", [("x", c.randn(*src), True)], extra=[shape], fn=lambda x, s=shape: x.expand(s),
               expr=f"x.expand({shape})")
    for tag, src, dim, start, length in [("dim0", (4, 5), 0, 1, 2), ("dim1", (4, 5), 1, 2, 3),
                                         ("last", (2, 3, 4), -1, 1, 2), ("full", (3, 4), 0, 0, 3)]:
        c.start(f"narrow_{tag}")
        c.emit("narrow", [("x", c.randn(*src), True)], extra=[dim, start, length],
               fn=lambda x, d=dim, s=start, n=length: x.narrow(d, s, n), expr=f"x.narrow({dim}, {start}, {length})")
    c.start("indexSelect_dim0")
    c.emit("indexSelect", [("x", c.randn(5, 3), True), ("index", torch.tensor([4, 0, 2, 0]), False)],
           args=[I(0), 0, I(1)], fn=lambda x, i: torch.index_select(x, 0, i), expr="torch.index_select(x, 0, index)")
    c.start("indexSelect_dim1")
    c.emit("indexSelect", [("x", c.randn(3, 5), True), ("index", torch.tensor([1, 1, 3]), False)],
           args=[I(0), 1, I(1)], fn=lambda x, i: torch.index_select(x, 1, i), expr="torch.index_select(x, 1, index)")
    c.start("indexSelect_neg")
    c.emit("indexSelect", [("x", c.randn(2, 3, 4), True), ("index", torch.tensor([3, 0]), False)],
           args=[I(0), -1, I(1)], fn=lambda x, i: torch.index_select(x, -1, i),
           expr="torch.index_select(x, -1, index)")
    c.start("gather_dim1")
    c.emit("gather", [("x", c.randn(3, 4), True), ("index", c.ints((3, 2), 0, 4), False)],
           args=[I(0), 1, I(1)], fn=lambda x, i: torch.gather(x, 1, i), expr="torch.gather(x, 1, index)")
    c.start("gather_dim0")
    c.emit("gather", [("x", c.randn(3, 4), True), ("index", torch.tensor([[0, 2, 2, 1], [0, 0, 1, 2]]), False)],
           args=[I(0), 0, I(1)], fn=lambda x, i: torch.gather(x, 0, i), expr="torch.gather(x, 0, index)")
    c.start("gather_last")
    c.emit("gather", [("x", c.randn(2, 3, 5), True), ("index", c.ints((2, 3, 1), 0, 5), False)],
           args=[I(0), -1, I(1)], fn=lambda x, i: torch.gather(x, -1, i), expr="torch.gather(x, -1, index)")
    for op in ["cat", "stack"]:
        specs = ([("dim0_two", [(2, 3), (4, 3)], 0), ("dim1_three", [(2, 1), (2, 3), (2, 2)], 1),
                  ("last_3d", [(2, 3, 1), (2, 3, 2)], -1)] if op == "cat" else
                 [("dim0_two", [(2, 3), (2, 3)], 0), ("dim1_three", [(2, 3), (2, 3), (2, 3)], 1),
                  ("last_three", [(2, 3), (2, 3), (2, 3)], -1)])
        for tag, shapes_, dim in specs:
            c.start(f"{op}_{tag}")
            ins = [(f"t{i}", c.randn(*s), True) for i, s in enumerate(shapes_)]
            tfn = torch.cat if op == "cat" else torch.stack
            c.emit(op, ins, args=[[I(i) for i in range(len(ins))], dim],
                   fn=lambda *ts, tfn=tfn, d=dim: tfn(list(ts), dim=d), expr=f"torch.{op}([t0, ...], dim={dim})")

    # -- softmax family
    for op, tfn in [("softmax", F.softmax), ("logSoftmax", F.log_softmax)]:
        tname = "softmax" if op == "softmax" else "log_softmax"
        for tag, shape, dim in [("last", (3, 5), -1), ("dim0", (3, 5), 0), ("3d_mid", (2, 3, 4), 1),
                                ("3d_last", (2, 3, 4), 2)]:
            c.start(f"{op}_{tag}")
            c.emit(op, [("x", 2.0 * c.randn(*shape), True)], extra=[dim], fn=lambda x, f=tfn, d=dim: f(x, dim=d),
                   expr=f"F.{tname}(x, dim={dim})")

    # -- layer norm
    for tag, shape in [("2d", (4, 8)), ("3d", (2, 3, 8))]:
        c.start(f"layerNorm_{tag}")
        C_ = shape[-1]
        x = c.randn(*shape) * 1.5 + 0.3
        w = 1.0 + 0.2 * c.randn(C_)
        b = 0.2 * c.randn(C_)
        c.emit("layerNorm", [("x", x, True), ("weight", w, True), ("bias", b, True)], kwargs={"eps": 1e-5},
               fn=lambda x, w, b, C_=C_: F.layer_norm(x, (C_,), w, b, 1e-5),
               expr="F.layer_norm(x, (C,), weight, bias, eps=1e-5)")
    c.start("layerNorm_no_affine")
    c.emit("layerNorm", [("x", c.randn(3, 6), True)], args=[I(0), None, None], kwargs={"eps": 1e-5},
           fn=lambda x: F.layer_norm(x, (6,), None, None, 1e-5), expr="F.layer_norm(x, (6,), None, None, eps=1e-5)")

    # -- embedding
    c.start("embedding_2d")
    c.emit("embedding", [("indices", torch.tensor([[1, 3, 1], [5, 0, 3]]), False), ("weight", c.randn(6, 4), True)],
           fn=lambda i, w: F.embedding(i, w), expr="F.embedding(indices, weight)")
    c.start("embedding_1d")
    c.emit("embedding", [("indices", torch.tensor([2, 2, 2, 0]), False), ("weight", c.randn(3, 5), True)],
           fn=lambda i, w: F.embedding(i, w), expr="F.embedding(indices, weight)")

    # -- losses
    def ce_case(tag, kwargs, target_fix=None):
        c.start(f"crossEntropy_{tag}")
        logits = 2.0 * c.randn(6, 5)
        target = c.ints((6,), 0, 5)
        if target_fix:
            target_fix(target)
        tk = {}
        if "ignoreIndex" in kwargs:
            tk["ignore_index"] = kwargs["ignoreIndex"]
        if "labelSmoothing" in kwargs:
            tk["label_smoothing"] = kwargs["labelSmoothing"]
        if "reduction" in kwargs:
            tk["reduction"] = kwargs["reduction"]
        expr = "F.cross_entropy(logits, target" + "".join(f", {k}={v!r}" for k, v in tk.items()) + ")"
        c.emit("crossEntropy", [("logits", logits, True), ("target", target, False)], kwargs=kwargs,
               fn=lambda lg, t: F.cross_entropy(lg, t, **tk), expr=expr)

    def ign(v):
        def fix(t):
            t[1] = v
            t[4] = v
        return fix

    ce_case("mean", {})
    ce_case("ignore", {"ignoreIndex": -100}, ign(-100))
    ce_case("ignore_minus1", {"ignoreIndex": -1}, ign(-1))
    ce_case("smoothing", {"labelSmoothing": 0.1})
    ce_case("smoothing_ignore", {"ignoreIndex": -1, "labelSmoothing": 0.1}, ign(-1))
    ce_case("sum", {"reduction": "sum"})
    ce_case("none", {"reduction": "none"})
    ce_case("none_ignore", {"reduction": "none", "ignoreIndex": -100}, ign(-100))
    ce_case("sum_smoothing", {"reduction": "sum", "labelSmoothing": 0.1})

    for tag, kwargs in [("mean", {}), ("ignore", {"ignoreIndex": -100}), ("sum", {"reduction": "sum"}),
                        ("none", {"reduction": "none"})]:
        c.start(f"nllLoss_{tag}")
        logp = F.log_softmax(2.0 * c.randn(6, 5), dim=-1)
        target = c.ints((6,), 0, 5)
        tk = {}
        if "ignoreIndex" in kwargs:
            target[2] = -100
            tk["ignore_index"] = -100
        if "reduction" in kwargs:
            tk["reduction"] = kwargs["reduction"]
        expr = "F.nll_loss(logProbs, target" + "".join(f", {k}={v!r}" for k, v in tk.items()) + ")"
        c.emit("nllLoss", [("logProbs", logp, True), ("target", target, False)], kwargs=kwargs,
               fn=lambda lp, t, tk=tk: F.nll_loss(lp, t, **tk), expr=expr)

    for op, tfn, tname in [("mseLoss", F.mse_loss, "mse_loss"), ("l1Loss", F.l1_loss, "l1_loss"),
                           ("binaryCrossEntropyWithLogits", F.binary_cross_entropy_with_logits,
                            "binary_cross_entropy_with_logits")]:
        for tag, red in [("mean", None), ("sum", "sum"), ("none", "none")]:
            c.start(f"{op}_{tag}")
            x = 2.0 * c.randn(3, 4)
            y = c.rand(3, 4) if op.startswith("binary") else c.randn(3, 4)
            kwargs = {} if red is None else {"reduction": red}
            tk = {} if red is None else {"reduction": red}
            expr = f"F.{tname}(input, target" + (f", reduction={red!r}" if red else "") + ")"
            c.emit(op, [("input", x, True), ("target", y, False)], kwargs=kwargs,
                   fn=lambda a, b, f=tfn, tk=tk: f(a, b, **tk), expr=expr)
    c.start("binaryCrossEntropyWithLogits_hard")
    x = 3.0 * c.randn(8)
    y = (c.rand(8) < 0.5).to(F64)
    c.emit("binaryCrossEntropyWithLogits", [("input", x, True), ("target", y, False)],
           fn=lambda a, b: F.binary_cross_entropy_with_logits(a, b),
           expr="F.binary_cross_entropy_with_logits(input, target)")
    return c.cases


def make_ops():
    cases = build_ops()
    obj = {
        "meta": meta("ops", compute_dtype="float64",
                     convention="call kiln[op](...args, kwargs?) with {input: i} in args standing for inputs[i]; "
                                "grads[i] = d(sum(output * grad_weight))/d inputs[i], null where requires_grad is "
                                "false; see the comment block atop the generator for each op's signature",
                     count=len(cases)),
        "cases": cases,
    }
    write_json(os.path.join(OUT, "ops.json"), obj, list_key="cases")


# ---------------------------------------------------------------------------------------------------- stack.json

class Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.ln = nn.LayerNorm(8, eps=1e-5)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(F.gelu(self.ln(self.fc1(x))))


def sd_json(model):
    return {k: tj(v) for k, v in model.state_dict().items()}


def make_stack():
    torch.manual_seed(1234)
    model = Stack()  # PyTorch default init (kaiming-uniform weights, uniform biases), float32
    g = torch.Generator().manual_seed(1235)
    with torch.no_grad():  # LN params off their defaults so their gradients are tested
        model.ln.weight.copy_((1.0 + 0.2 * torch.randn(8, generator=g, dtype=F64)).float())
        model.ln.bias.copy_((0.2 * torch.randn(8, generator=g, dtype=F64)).float())
    x = torch.randn(5, 6, generator=g, dtype=F64).float()
    y = torch.randint(0, 3, (5,), generator=g)
    init = sd_json(model)
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    obj = {
        "meta": meta("stack", dtype="float32", compute_dtype="float32"),
        "model": {
            "description": "fc1 = Linear(6, 8) -> ln = LayerNorm(8, eps 1e-5) -> GELU (exact, erf) -> "
                           "fc2 = Linear(8, 3) -> cross-entropy (mean over the batch)",
            "layers": [{"name": "fc1", "type": "Linear", "in": 6, "out": 8, "bias": True},
                       {"name": "ln", "type": "LayerNorm", "shape": [8], "eps": 1e-5},
                       {"type": "GELU", "approximate": "none"},
                       {"name": "fc2", "type": "Linear", "in": 8, "out": 3, "bias": True}],
            "linear_weight_layout": "(out_features, in_features), y = x @ W^T + b (nn.Linear)",
        },
        "state_dict": init,
        "input": tj(x),
        "target": tj(y, "int32"),
        "logits": tj(logits),
        "loss": loss.item(),
        "grads": {k: tj(p.grad) for k, p in model.named_parameters()},
    }
    write_json(os.path.join(OUT, "stack.json"), obj)


# ---------------------------------------------------------------------------------------------------- optim.json

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


WARMUP, TOTAL, FLOOR = 3, 10, 0.1


def warmup_cosine(step):
    """LR multiplier at 0-based optimizer step `step` (LambdaLR's last_epoch)."""
    if step < WARMUP:
        return step / WARMUP
    progress = min(1.0, (step - WARMUP) / (TOTAL - WARMUP))
    return FLOOR + (1.0 - FLOOR) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optim():
    torch.manual_seed(99)
    base = Small()
    g = torch.Generator().manual_seed(100)
    # one batch per step; targets alternate large/small so some steps are clipped and some are not
    batches = []
    for s in range(10):
        scale = 3.0 if s % 2 == 0 else 0.3
        bx = torch.randn(8, 4, generator=g, dtype=F64).float()
        by = (scale * torch.randn(8, 3, generator=g, dtype=F64)).float()
        batches.append((bx, by))
    init_sd = {k: v.clone() for k, v in base.state_dict().items()}
    names = list(init_sd)
    weights = [n for n in names if n.endswith("weight")]
    biases = [n for n in names if n.endswith("bias")]

    runs = [
        {"name": "sgd_momentum", "optimizer": "SGD",
         "hyper": {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": False, "weightDecay": 0.01},
         "param_groups": [{"params": names}], "schedule": None},
        {"name": "sgd_nesterov", "optimizer": "SGD",
         "hyper": {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": True, "weightDecay": 0.0},
         "param_groups": [{"params": names}], "schedule": None},
        {"name": "adam_l2", "optimizer": "Adam",
         "hyper": {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weightDecay": 0.01},
         "param_groups": [{"params": names}], "schedule": None},
        {"name": "adamw_groups_warmup_cosine", "optimizer": "AdamW",
         "hyper": {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weightDecay": 0.1},
         "param_groups": [{"params": weights}, {"params": biases, "weightDecay": 0.0}],
         "schedule": {"type": "warmupCosine", "warmupSteps": WARMUP, "totalSteps": TOTAL, "minRatio": FLOOR,
                      "formula": "lr(s) = baseLr * f(s), s = 0-based optimizer step; f(s) = s / 3 for s < 3; "
                                 "else f(s) = 0.1 + 0.9 * 0.5 * (1 + cos(pi * min(1, (s - 3) / (10 - 3)))). "
                                 "So step 0 runs with lr 0 (its Adam moments still update and its step count "
                                 "still advances). Implemented as torch.optim.lr_scheduler.LambdaLR(f), "
                                 "scheduler.step() after optimizer.step()."}},
    ]
    out_runs = []
    for run in runs:
        model = Small()
        model.load_state_dict(init_sd)
        params = dict(model.named_parameters())
        h = run["hyper"]
        groups = []
        for pg in run["param_groups"]:
            grp = {"params": [params[n] for n in pg["params"]]}
            if "weightDecay" in pg:
                grp["weight_decay"] = pg["weightDecay"]
            groups.append(grp)
        if run["optimizer"] == "SGD":
            opt = torch.optim.SGD(groups, lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                                  nesterov=h["nesterov"], weight_decay=h["weightDecay"])
        elif run["optimizer"] == "Adam":
            opt = torch.optim.Adam(groups, lr=h["lr"], betas=tuple(h["betas"]), eps=h["eps"],
                                   weight_decay=h["weightDecay"])
        else:
            opt = torch.optim.AdamW(groups, lr=h["lr"], betas=tuple(h["betas"]), eps=h["eps"],
                                    weight_decay=h["weightDecay"])
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine) if run["schedule"] else None
        steps = []
        for s in range(10):
            opt.zero_grad()
            x, y = batches[s]
            loss = F.mse_loss(model(x), y)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            lr = opt.param_groups[0]["lr"]
            steps.append({"step": s, "lr": lr, "loss": loss.item(), "gradNorm": norm.item(),
                          "clipped": bool(norm.item() > 1.0)})
            opt.step()
            if sched:
                sched.step()
        r = dict(run)
        r["steps"] = steps
        r["final_params"] = sd_json(model)
        out_runs.append(r)
    obj = {
        "meta": meta("optim", dtype="float32", compute_dtype="float32"),
        "model": {"description": "fc1 = Linear(4, 5) -> tanh -> fc2 = Linear(5, 3); loss = mseLoss(output, target) "
                                 "(mean); step s uses batches[s]",
                  "param_order": names},
        "batches": [{"input": tj(bx), "target": tj(by)} for bx, by in batches],
        "initial_params": {k: tj(v) for k, v in init_sd.items()},
        "clip": {"maxNorm": 1.0, "normType": 2,
                 "formula": "total = sqrt(sum over all params of sum(grad^2)); coef = maxNorm / (total + 1e-6); "
                            "if coef < 1, every grad *= coef (torch.nn.utils.clip_grad_norm_); gradNorm in each "
                            "step is `total`, before clipping"},
        "step_order": "zeroGrad; loss = mse(model(batches[s].input), batches[s].target); backward; gradNorm = clipGradNorm(params, 1.0); "
                      "lr = the group lr for this step; optimizer.step(); scheduler.step(). Loss is recorded before "
                      "the step; final_params after 10 steps. SGD: first momentum buffer = grad (no dampening); "
                      "weight decay (SGD, Adam) adds wd * param to the clipped grad (L2); AdamW decays param by "
                      "lr * wd before the Adam update. A group's weightDecay overrides the optimizer's.",
        "runs": out_runs,
    }
    write_json(os.path.join(OUT, "optim.json"), obj)


# ------------------------------------------------------------------------------------------------------ gpt.json

GPT_CFG = {"vocab_size": 64, "n_positions": 16, "n_embd": 32, "n_layer": 2, "n_head": 2, "layer_norm_epsilon": 1e-5}
GPT_LAYOUT = ("Hugging Face GPT-2 state_dict names and layout: c_attn/c_proj/c_fc are Conv1D with weight "
              "(in_features, out_features) and y = x @ W + b; c_attn output columns are [q | k | v]; lm_head is "
              "tied to transformer.wte.weight (logits = h @ wte^T) and not stored; attn.bias mask buffers are not "
              "stored; tanh-GELU, pre-LayerNorm eps 1e-5, attention scaled by 1/sqrt(head_size), no dropout")


def make_gpt_model(seed, std=0.02):
    """Weights are float32 values (drawn in float64, rounded to float32); the model computes in float64."""
    model = gpt2_ref.GPT2(GPT_CFG)
    g = torch.Generator().manual_seed(seed)
    model.float()
    gpt2_ref.init_gpt2_(model, g, perturb=True, std=std)
    model.double()  # exact float32 values, computed in float64
    return model, g


def make_gpt():
    model, g = make_gpt_model(2024)
    B, T = 2, 8
    idx = torch.randint(0, GPT_CFG["vocab_size"], (B, T), generator=g)
    targets = torch.randint(0, GPT_CFG["vocab_size"], (B, T), generator=g)
    sd = {k: tj(v, "float32") for k, v in model.state_dict().items()}
    logits, loss = model(idx, targets)
    loss.backward()
    grads = {k: tj(p.grad) for k, p in model.named_parameters()}
    cfg = dict(GPT_CFG, activation_function="gelu_new", tie_word_embeddings=True, bias=True, dropout=0.0)
    obj = {
        "meta": meta("gpt", param_dtype="float32", compute_dtype="float64",
                     hf_cross_check="tools/golden/hf_cross_check.py loads this file into transformers' "
                                    "GPT2LMHeadModel and compares logits, loss and every gradient",
                     init="GPT-2 init (N(0, 0.02); c_proj weights N(0, 0.02/sqrt(2*n_layer)); biases 0; LN 1/0), "
                          "then biases += N(0, 0.02), LN weight/bias += N(0, 0.1)"),
        "config": cfg,
        "layout": GPT_LAYOUT,
        "batch": B,
        "seq_len": T,
        "state_dict": sd,
        "idx": tj(idx, "int32"),
        "targets": tj(targets, "int32"),
        "logits": tj(logits),
        "loss": loss.item(),
        "grads": grads,
    }
    write_json(os.path.join(OUT, "gpt.json"), obj)


# ------------------------------------------------------------------------------------------------- hf-gpt2-tiny

HF_CONFIG = {
    "activation_function": "gelu_new",
    "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.1,
    "bos_token_id": 63,
    "embd_pdrop": 0.1,
    "eos_token_id": 63,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "model_type": "gpt2",
    "n_ctx": 16,
    "n_embd": 32,
    "n_head": 2,
    "n_inner": None,
    "n_layer": 2,
    "n_positions": 16,
    "reorder_and_upcast_attn": False,
    "resid_pdrop": 0.1,
    "scale_attn_by_inverse_layer_idx": False,
    "scale_attn_weights": True,
    "summary_activation": None,
    "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True,
    "summary_type": "cls_index",
    "summary_use_proj": True,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "transformers_version": "4.41.2",
    "use_cache": True,
    "vocab_size": 64,
}


def make_hf():
    folder = os.path.join(OUT, "hf-gpt2-tiny")
    os.makedirs(folder, exist_ok=True)
    # std 0.2 rather than GPT-2's 0.02: attention is then far from uniform and logits are O(1), so a wrong mask,
    # scale or head split shows up plainly in a forward-only check
    model, g = make_gpt_model(4242, std=0.2)
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write(json.dumps(HF_CONFIG, indent=2) + "\n")
    tensors = sorted((k, v.float()) for k, v in model.state_dict().items())
    header = safetensors_io.write(os.path.join(folder, "model.safetensors"), tensors, {"format": "pt"})
    idx = torch.randint(0, 64, (2, 16), generator=g)
    with torch.no_grad():
        logits, _ = model(idx)
    obj = {"meta": meta("hf", compute_dtype="float64",
                        init="GPT-2 init scaled up: weights N(0, 0.2), c_proj N(0, 0.2/sqrt(2*n_layer)), biases N(0, 0.02), "
                             "LN weight 1 + N(0, 0.1), LN bias N(0, 0.1); float32 weights",
                        note="expected logits of GPT2LMHeadModel(config.json) with model.safetensors for idx; the "
                             "same format is what check_export.py reads from a folder Kiln exported"),
           "idx": tj(idx, "int32"),
           "logits": tj(logits)}
    write_json(os.path.join(folder, "logits.json"), obj)
    print(f"wrote test/golden/hf-gpt2-tiny/model.safetensors ({len(header) - 1} tensors)")


# ------------------------------------------------------------------------------------------- safetensors sample

def make_safetensors():
    folder = os.path.join(OUT, "safetensors")
    os.makedirs(folder, exist_ok=True)
    f16_vals = [1.0, -2.5, 1.0 / 3.0, 65504.0, 6.103515625e-05, 5.960464477539063e-08]  # max, min normal, subnormal
    bf16_vals = [1.0, -0.5, 3.140625, 1e-3, -3.0e38, 0.0]
    tensors = {
        "bf16": torch.tensor(bf16_vals, dtype=torch.float64).to(torch.bfloat16).reshape(2, 3),
        "empty": torch.zeros(0, 3, dtype=torch.float32),
        "f16": torch.tensor(f16_vals[:3], dtype=torch.float64).to(torch.float16),
        "f16_edge": torch.tensor(f16_vals[3:], dtype=torch.float64).to(torch.float16),
        "f32": torch.tensor([[0.1, -1.5, 3.0e38], [1.0e-40, -0.0, 7.0]], dtype=torch.float64).float(),
        "f64": torch.tensor([0.1, -1.0 / 3.0, 1e300], dtype=torch.float64),
        "i32": torch.tensor([[-2147483648, 2147483647], [0, -7]], dtype=torch.int32),
        "i64": torch.tensor([-5, 4294967296, 9007199254740991], dtype=torch.int64),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
    }
    names = sorted(tensors)
    metadata = {"format": "pt", "producer": "kiln tools/golden/make_golden.py", "note": "hello, safetensors"}
    path = os.path.join(folder, "sample.safetensors")
    header = safetensors_io.write(path, [(n, tensors[n]) for n in names], metadata)
    with open(path, "rb") as f:
        blob = f.read()
    hlen = int.from_bytes(blob[:8], "little")
    back, back_meta = safetensors_io.read(path)
    assert back_meta == metadata
    desc = {}
    for n in names:
        t = tensors[n]
        assert torch.equal(back[n], t), n
        info = header[n]
        begin = info["data_offsets"][0]
        dtype = info["dtype"]
        esz = safetensors_io.DTYPES[dtype][1]
        entry = {"dtype": dtype, "shape": info["shape"], "data_offsets": info["data_offsets"],
                 "aligned": (8 + hlen + begin) % esz == 0}
        if t.dtype.is_floating_point:
            entry["data"] = t.reshape(-1).to(F64).tolist()
        else:
            entry["data"] = [int(v) for v in t.reshape(-1).tolist()]
        desc[n] = entry
    obj = {
        "meta": meta("safetensors",
                     note="written by tools/golden/safetensors_io.py (tensors in name order, header padded with spaces "
                          "to a multiple of 8); data holds the exact decoded values (F16/BF16 widened to float64, "
                          "-0.0 and the float32 subnormal 1e-40 included); cross-read with the official safetensors "
                          "package. aligned tells whether a tensor's offset (from the start of the file) is a multiple "
                          "of its element size; a reader should copy out of the file buffer rather than view it"),
        "file": "sample.safetensors",
        "file_size": len(blob),
        "header_length": hlen,
        "data_start": 8 + hlen,
        "metadata": metadata,
        "tensors": desc,
    }
    write_json(os.path.join(folder, "sample.json"), obj)


# ------------------------------------------------------------------------------------------------------- driver

TARGETS = {"ops": make_ops, "stack": make_stack, "optim": make_optim, "gpt": make_gpt, "hf": make_hf,
           "safetensors": make_safetensors}


def main(argv):
    which = argv[1:] or ["all"]
    for w in which:
        if w != "all" and w not in TARGETS:
            raise SystemExit(f"unknown target {w!r}; expected all or one of {', '.join(TARGETS)}")
    for name, fn in TARGETS.items():
        if "all" in which or name in which:
            fn()


if __name__ == "__main__":
    main(sys.argv)

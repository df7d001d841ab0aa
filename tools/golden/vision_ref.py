#!/usr/bin/python3
# Writes test/golden/vision.json from PyTorch (torch 1.13, Debian's python3-torch): the vision ops and layers of Kiln
# (conv2d, max/avg/adaptive-avg pooling, BatchNorm) with their gradients, in float64.
# Run `/usr/bin/python3 tools/golden/vision_ref.py`; output is deterministic (seeded, one thread, no timestamps).
#
# Schema. A tensor is {"shape": [...], "dtype": "float64" or "int32", "data": [...]} (row-major).
#   conv: [{name, x, w, b (or null), options: {stride, padding, dilation, groups} in Kiln's spelling
#           (padding a pair or 'same'/'valid'), out, g, dx, dw, db (or null)}]
#         g is a fixed random weight; dx, dw, db = gradients of (out * g).sum().
#   pool: [{name, op: 'max' | 'avg' | 'adaptive', x, kernel (max/avg) or output (adaptive), options: Kiln's options
#           object (stride, padding, dilation, ceilMode, countIncludePad, divisorOverride), out, indices (max), g, dx}]
#   batchnorm: [{name, layer: 'BatchNorm1d' | 'BatchNorm2d', features, options: {eps, momentum (null = cumulative),
#           affine}, weight, bias (the affine parameters set before training, or null),
#           steps: [{x, g, out, dx, dweight, dbias}] in training mode, one after another on the same layer,
#           running_mean, running_var, num_batches_tracked after the steps,
#           eval: {x, g, out, dx, dweight, dbias} in evaluation mode after the steps}]

import json
import os
import sys

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
DT = torch.float64
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'test', 'golden', 'vision.json')


def t(x):
    out = {"shape": list(x.shape), "dtype": "float64", "data": [float(v) for v in x.detach().reshape(-1).tolist()]}
    if not x.is_floating_point():
        out = {"shape": list(x.shape), "dtype": "int32", "data": [int(v) for v in x.reshape(-1).tolist()]}
    return out


def rand(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=DT)


def conv_case(gen, name, x_shape, w_shape, bias, **kw):
    x = rand(gen, *x_shape).requires_grad_()
    w = rand(gen, *w_shape).requires_grad_()
    b = rand(gen, w_shape[0]).requires_grad_() if bias else None
    out = F.conv2d(x, w, b, **kw)
    g = rand(gen, *out.shape)
    (out * g).sum().backward()
    pad = kw.get("padding", 0)
    options = {"stride": kw.get("stride", 1), "padding": pad if isinstance(pad, str) else pad,
               "dilation": kw.get("dilation", 1), "groups": kw.get("groups", 1)}
    return {"name": name, "x": t(x), "w": t(w), "b": t(b) if b is not None else None, "options": options,
            "out": t(out), "g": t(g), "dx": t(x.grad), "dw": t(w.grad), "db": t(b.grad) if b is not None else None}


def conv_cases(gen):
    return [
        conv_case(gen, "5x5 padding 2 (T5 conv1-like)", (2, 1, 8, 8), (4, 1, 5, 5), True, padding=2),
        conv_case(gen, "stride 2, padding (1, 0)", (2, 3, 7, 8), (5, 3, 3, 3), True, stride=2, padding=(1, 0)),
        conv_case(gen, "stride (2, 1), no bias", (1, 2, 9, 6), (3, 2, 2, 3), False, stride=(2, 1)),
        conv_case(gen, "padding same, odd kernel", (2, 3, 6, 5), (4, 3, 3, 3), True, padding="same"),
        conv_case(gen, "padding same, even kernel (extra pad at the far side)", (1, 2, 5, 6), (3, 2, 4, 2), True, padding="same"),
        conv_case(gen, "padding same with dilation 2", (1, 2, 7, 7), (2, 2, 3, 3), False, padding="same", dilation=2),
        conv_case(gen, "padding valid", (1, 2, 5, 5), (2, 2, 3, 3), True, padding="valid"),
        conv_case(gen, "dilation (2, 3), padding 2", (2, 2, 9, 10), (3, 2, 3, 2), True, dilation=(2, 3), padding=2),
        conv_case(gen, "groups 2", (2, 4, 6, 6), (6, 2, 3, 3), True, groups=2, padding=1),
        conv_case(gen, "depthwise (groups = channels)", (2, 3, 5, 5), (6, 1, 3, 3), True, groups=3),
        conv_case(gen, "1x1", (3, 4, 4, 3), (5, 4, 1, 1), True),
    ]


def pool_case(gen, name, op, x_shape, size, **kw):
    x = rand(gen, *x_shape).requires_grad_()
    idx = None
    if op == "max":
        out, idx = F.max_pool2d(x, size, return_indices=True, **kw)
    elif op == "avg":
        out = F.avg_pool2d(x, size, **kw)
    else:
        out = F.adaptive_avg_pool2d(x, size)
    g = rand(gen, *out.shape)
    (out * g).sum().backward()
    names = {"stride": "stride", "padding": "padding", "dilation": "dilation", "ceil_mode": "ceilMode",
             "count_include_pad": "countIncludePad", "divisor_override": "divisorOverride"}
    case = {"name": name, "op": op, "x": t(x), "options": {names[k]: v for k, v in kw.items()}, "out": t(out),
            "g": t(g), "dx": t(x.grad)}
    case["output" if op == "adaptive" else "kernel"] = size
    if idx is not None:
        case["indices"] = t(idx)
    return case


def pool_cases(gen):
    return [
        pool_case(gen, "max 2x2", "max", (2, 3, 6, 6), 2),
        pool_case(gen, "max 3x3 stride 2 padding 1", "max", (2, 2, 7, 8), 3, stride=2, padding=1),
        pool_case(gen, "max ceil mode, 3-D input", "max", (3, 7, 7), (3, 2), stride=(2, 2), ceil_mode=True),
        pool_case(gen, "max dilation 2", "max", (1, 2, 9, 9), 2, stride=1, dilation=2, padding=1),
        pool_case(gen, "avg 2x2", "avg", (2, 3, 6, 6), 2),
        pool_case(gen, "avg 3x3 stride 2 padding 1, padded zeros counted", "avg", (2, 2, 7, 8), 3, stride=2, padding=1),
        pool_case(gen, "avg padded zeros not counted, ceil mode", "avg", (1, 2, 7, 6), 3, stride=2, padding=1,
                  count_include_pad=False, ceil_mode=True),
        pool_case(gen, "avg divisor override", "avg", (1, 2, 6, 6), (2, 3), stride=(2, 1), divisor_override=4),
        pool_case(gen, "adaptive to 1x1", "adaptive", (2, 3, 5, 7), 1),
        pool_case(gen, "adaptive uneven (3, 2)", "adaptive", (2, 2, 7, 5), [3, 2]),
        pool_case(gen, "adaptive even (2, 2)", "adaptive", (1, 3, 6, 4), [2, 2]),
    ]


def bn_step(layer, x, g):
    x = x.clone().requires_grad_()
    out = layer(x)
    if layer.weight is not None:
        layer.weight.grad = None
        layer.bias.grad = None
    (out * g).sum().backward()
    affine = layer.weight is not None
    return {"x": t(x), "g": t(g), "out": t(out), "dx": t(x.grad),
            "dweight": t(layer.weight.grad) if affine else None, "dbias": t(layer.bias.grad) if affine else None}


def bn_case(gen, name, cls, features, x_shape, steps, **kw):
    layer = getattr(torch.nn, cls)(features, dtype=DT, **kw)
    weight = bias = None
    if layer.weight is not None:
        with torch.no_grad():
            layer.weight.copy_(1 + 0.5 * rand(gen, features))
            layer.bias.copy_(rand(gen, features))
        weight, bias = t(layer.weight), t(layer.bias)
    layer.train()
    recorded = []
    for i in range(steps):
        x = 1.5 * rand(gen, *x_shape) + 0.3 * (i + 1)
        recorded.append(bn_step(layer, x, rand(gen, *x_shape)))
    stats = {"running_mean": t(layer.running_mean), "running_var": t(layer.running_var),
             "num_batches_tracked": int(layer.num_batches_tracked)}
    layer.eval()
    ev = bn_step(layer, 2 * rand(gen, *x_shape), rand(gen, *x_shape))
    return {"name": name, "layer": cls, "features": features,
            "options": {"eps": layer.eps, "momentum": layer.momentum, "affine": layer.affine},
            "weight": weight, "bias": bias, "steps": recorded, **stats, "eval": ev}


def bn_cases(gen):
    return [
        bn_case(gen, "BatchNorm2d, 4 training steps", "BatchNorm2d", 3, (4, 3, 3, 2), 4),
        bn_case(gen, "BatchNorm2d momentum 0.3, eps 1e-3, no affine", "BatchNorm2d", 2, (3, 2, 2, 2), 3,
                momentum=0.3, eps=1e-3, affine=False),
        bn_case(gen, "BatchNorm1d (N, C), cumulative average (momentum None)", "BatchNorm1d", 4, (6, 4), 3, momentum=None),
        bn_case(gen, "BatchNorm1d (N, C, L)", "BatchNorm1d", 3, (2, 3, 5), 2),
    ]


def main():
    gen = torch.Generator().manual_seed(1234)
    doc = {"meta": {"generator": "tools/golden/vision_ref.py", "torch": torch.__version__},
           "conv": conv_cases(gen), "pool": pool_cases(gen), "batchnorm": bn_cases(gen)}
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT)}: {len(doc['conv'])} conv, {len(doc['pool'])} pool, {len(doc['batchnorm'])} batchnorm cases")


if __name__ == "__main__":
    sys.exit(main())

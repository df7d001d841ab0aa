#!/usr/bin/python3
# Writes test/golden/rnn.json: torch.nn.RNN (tanh, relu), LSTM and GRU over whole sequences with given initial
# states, stacked and bidirectional, batch_first both ways, with and without biases: the outputs, final states, and
# the gradients of every parameter, the input and the initial states.
# Run `/usr/bin/python3 tools/golden/rnn_ref.py` (torch 1.13, Debian python3-torch); output is deterministic.
#
# Each case: the module's config (Kiln's option names), its state_dict (PyTorch names, which Kiln's layers share),
# input x, h0 (and c0), output, h_n (and c_n). The loss is sum(output * w_out) + sum(h_n * w_h) (+ sum(c_n * w_c))
# with the fixed random weights stored in the case; grads holds d loss / d parameter under the parameter's name,
# grad_input, grad_h0 and grad_c0 the input's and states'. Parameters are drawn uniform(-0.6, 0.6) and everything
# runs in float64; values are rounded to float32 first, so a float32 load holds exactly the same numbers.

import json
import os
import sys

import torch

sys.dont_write_bytecode = True
torch.set_num_threads(1)
F64 = torch.float64
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "test", "golden", "rnn.json")


def tj(t):
    t = t.detach()
    return {"shape": list(t.shape), "dtype": "float64", "data": t.reshape(-1).to(F64).tolist()}


def f32(t):
    """Rounded to float32, kept as float64: the same numbers a float32 load sees."""
    return t.to(torch.float32).to(F64)


def case(name, kind, input_size, hidden, layers, bidirectional, batch_first, bias, T, B, seed, nonlinearity="tanh"):
    g = torch.Generator().manual_seed(seed)
    args = dict(num_layers=layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional)
    if kind == "RNN":
        m = torch.nn.RNN(input_size, hidden, nonlinearity=nonlinearity, **args)
    else:
        m = getattr(torch.nn, kind)(input_size, hidden, **args)
    m = m.to(F64)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(f32(torch.rand(p.shape, generator=g, dtype=F64) * 1.2 - 0.6))
    D = 2 if bidirectional else 1
    x = f32(torch.randn((B, T, input_size) if batch_first else (T, B, input_size), generator=g, dtype=F64))
    h0 = f32(torch.randn(layers * D, B, hidden, generator=g, dtype=F64) * 0.5)
    c0 = f32(torch.randn(layers * D, B, hidden, generator=g, dtype=F64) * 0.5)
    x.requires_grad_(True)
    h0.requires_grad_(True)
    c0.requires_grad_(True)
    if kind == "LSTM":
        out, (hn, cn) = m(x, (h0, c0))
    else:
        out, hn = m(x, h0)
        cn = None
    w_out = f32(torch.randn(out.shape, generator=g, dtype=F64))
    w_h = f32(torch.randn(hn.shape, generator=g, dtype=F64))
    loss = (out * w_out).sum() + (hn * w_h).sum()
    w_c = None
    if cn is not None:
        w_c = f32(torch.randn(cn.shape, generator=g, dtype=F64))
        loss = loss + (cn * w_c).sum()
    loss.backward()
    config = {"inputSize": input_size, "hiddenSize": hidden, "numLayers": layers, "bidirectional": bidirectional,
              "batchFirst": batch_first, "bias": bias}
    if kind == "RNN":
        config["nonlinearity"] = nonlinearity
    c = {"name": name, "kind": kind, "config": config,
         "state_dict": {k: tj(v) for k, v in m.state_dict().items()},
         "input": tj(x), "h0": tj(h0), "output": tj(out), "h_n": tj(hn), "w_out": tj(w_out), "w_h": tj(w_h),
         "grads": {k: tj(p.grad) for k, p in m.named_parameters()},
         "grad_input": tj(x.grad), "grad_h0": tj(h0.grad)}
    if kind == "LSTM":
        c.update({"c0": tj(c0), "c_n": tj(cn), "w_c": tj(w_c), "grad_c0": tj(c0.grad)})
    return c


def main():
    cases = [
        case("lstm 2 layers bidirectional time-major", "LSTM", 5, 4, 2, True, False, True, 4, 3, 1),
        case("lstm 2 layers batch-first", "LSTM", 3, 5, 2, False, True, True, 5, 2, 2),
        case("lstm no bias, one layer, batch-first bidirectional", "LSTM", 4, 3, 1, True, True, False, 3, 2, 3),
        case("gru 2 layers bidirectional batch-first", "GRU", 5, 4, 2, True, True, True, 4, 3, 4),
        case("gru one layer time-major no bias", "GRU", 3, 5, 1, False, False, False, 5, 2, 5),
        case("rnn tanh 2 layers bidirectional time-major", "RNN", 4, 3, 2, True, False, True, 4, 2, 6),
        case("rnn relu 2 layers batch-first", "RNN", 3, 4, 2, False, True, True, 5, 3, 7, "relu"),
    ]
    meta = {"generator": "tools/golden/rnn_ref.py", "torch": torch.__version__}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("{\"meta\":" + json.dumps(meta, separators=(",", ":")) + ",\"cases\":[\n")
        f.write(",\n".join(json.dumps(c, separators=(",", ":"), allow_nan=False) for c in cases))
        f.write("\n]}\n")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()

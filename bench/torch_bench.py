"""PyTorch and numpy side of Kiln's reference workloads (BENCHMARKS.md), run by bench/run.ts with /usr/bin/python3.

Usage: python3 bench/torch_bench.py t1 M,N,K [M,N,K ...]   |   python3 bench/torch_bench.py t2 DATA_DIR
Prints one JSON object. t1: versions, threads, and for each shape the GFLOP/s of numpy (OpenBLAS, the practical
peak) and of torch.matmul, medians after warm-up. t2: the MNIST MLP's training samples/s and test accuracy, on
the split bench/run.ts writes to DATA_DIR. torch missing gives "not installed"; a torch GEMM rate under
50 GFLOP/s at the largest shape is reported as not sane (reference BLAS instead of OpenBLAS).
"""
import json
import os
import sys
import time


def rates(fn, flops, warm_s=0.3, sample_s=0.1, samples=5):
    """GFLOP/s of samples of about sample_s each, after warm_s of warm-up."""
    t0 = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - t0 < warm_s:
        fn()
        calls += 1
    per_call = (time.perf_counter() - t0) / calls
    reps = max(1, int(sample_s / max(per_call, 1e-9)))
    out = []
    for _ in range(samples):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        out.append(flops * reps / (time.perf_counter() - t) / 1e9)
    return out


def load_torch():
    try:
        import torch
    except ImportError:
        return None, "not installed"
    except Exception as e:  # installed but broken
        return None, str(e).splitlines()[0]
    # Importing torch can leave OpenMP (and so OpenBLAS, numpy's too) at one thread on some VMs: use them all,
    # or KILN_BENCH_THREADS when bench/run.ts asks for fewer.
    torch.set_num_threads(int(os.environ.get("KILN_BENCH_THREADS") or 0) or os.cpu_count() or 1)
    return torch, None


_operands = {}


def gemm_rates(lib, m, n, k, torch):
    """Samples of numpy's or torch's float32 GEMM rate at (m, k) @ (k, n)."""
    import numpy as np
    key = (m, n, k)
    if key not in _operands:
        _operands.clear()
        rng = np.random.default_rng(0)
        _operands[key] = (rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32))
    a, b = _operands[key]
    flops = 2.0 * m * n * k
    if lib == "numpy":
        return rates(lambda: a @ b, flops)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    with torch.no_grad():
        return rates(lambda: torch.matmul(ta, tb), flops)


def gpt_step(V, T, L, H, C, B, warmup=3, steps=10):
    """T3: the same GPT-2 style model as bench/t3-gpt.ts (pre-LayerNorm, eps 1e-5, causal attention, tanh-GELU MLP
    4x wide, biases, tied LM head, no dropout), AdamW lr 3e-4, betas 0.9/0.999, wd 0.1, random tokens."""
    import math
    import resource
    torch, err = load_torch()
    if torch is None:
        return {"error": err}
    nn, F = torch.nn, torch.nn.functional
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(C, eps=1e-5), nn.LayerNorm(C, eps=1e-5)
            self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
            self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)))

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (z.view(b, t, H, C // H).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H))
            att = F.softmax(att.masked_fill(~self.mask[:t, :t], float("-inf")), dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
            x = x + self.c_proj(y)
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
            self.h = nn.ModuleList([Block() for _ in range(L)])
            self.ln_f = nn.LayerNorm(C, eps=1e-5)

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for blk in self.h:
                x = blk(x)
            logits = self.ln_f(x) @ self.wte.weight.t()
            return F.cross_entropy(logits.view(-1, V), targets.view(-1))

    model = GPT()
    # GPT-2 initialisation, as Kiln's GPT: N(0, 0.02), residual projections N(0, 0.02 / sqrt(2 L)), zero biases.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "ln_" not in name:
                std = 0.02 / math.sqrt(2 * L) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                torch.nn.init.normal_(p, 0.0, std)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.999), weight_decay=0.1)
    # the same tokens as bench/t3-gpt.ts
    i = torch.arange(B * T, dtype=torch.int64)
    idx, targets = ((i * 7919 + 17) % V).view(B, T), ((i * 104729 + 13) % V).view(B, T)
    times, losses = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(idx, targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"ms_per_step": times[len(times) // 2], "params": params, "first_loss": losses[0], "last_loss": losses[-1],
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def serve():
    """One JSON request per stdin line, one JSON answer per stdout line; bench/run.ts interleaves these requests
    with its own measurements so that load from elsewhere on the machine hits both sides alike."""
    import numpy as np
    torch, err = load_torch()
    print(json.dumps({"numpy": np.__version__, "torch": torch.__version__ if torch else None, "torch_error": err,
                      "threads": torch.get_num_threads() if torch else None}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["op"] == "gpt":
                ans = gpt_step(req["V"], req["T"], req["L"], req["H"], req["C"], req["B"])
            elif req["op"] == "gemm":
                if req["lib"] == "torch" and torch is None:
                    ans = {"error": err}
                else:
                    ans = {"rates": gemm_rates(req["lib"], req["m"], req["n"], req["k"], torch)}
            else:
                ans = {"error": f"unknown op {req['op']}"}
        except Exception as e:
            ans = {"error": str(e).splitlines()[0]}
        print(json.dumps(ans), flush=True)


def t2(data_dir):
    """The MNIST MLP of T2 with the same model, loss, optimizer, batch and epochs as bench/t2-mnist.ts."""
    import numpy as np
    torch, err = load_torch()
    if torch is None:
        return {"error": err}
    torch.manual_seed(0)
    load = lambda name, dt: np.fromfile(os.path.join(data_dir, name), dtype=dt)
    train_x = torch.from_numpy(load("train_x.bin", np.float32).reshape(-1, 784))
    train_y = torch.from_numpy(load("train_y.bin", np.int32).astype(np.int64))
    test_x = torch.from_numpy(load("test_x.bin", np.float32).reshape(-1, 784))
    test_y = torch.from_numpy(load("test_y.bin", np.int32).astype(np.int64))
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = train_x.shape[0]
    samples, seconds = 0, 0.0
    for epoch in range(1, 4):
        model.train()
        order = torch.randperm(n)
        t0 = time.perf_counter()
        for b in range(0, n, 128):
            idx = order[b:b + 128]
            x, y = train_x[idx], train_y[idx]
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            loss.item()
        if epoch > 1:
            samples += n
            seconds += time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        acc = (model(test_x).argmax(1) == test_y).float().mean().item()
    return {"samples_per_s": samples / seconds, "accuracy": acc, "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "serve":
        serve()
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "t2":
        print(json.dumps(t2(sys.argv[2])))
        return 0
    print(json.dumps({"error": "usage: torch_bench.py serve | t2 DATA_DIR"}))
    return 2


if __name__ == "__main__":
    sys.exit(main())

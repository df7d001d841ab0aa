"""PyTorch and numpy side of Kiln's reference workloads (BENCHMARKS.md), run by bench/run.ts with /usr/bin/python3.

Usage: python3 bench/torch_bench.py JOB 'JSON-PARAMS'  (one fresh process per round; prints one JSON line)
Jobs: env (versions, threads, the OpenBLAS kernel in use), t1kernel (numpy and torch GEMM into a preallocated
output, out=), t1api (numpy `a @ b` allocating: the first call in this process and the median of the following
ones), mlp (an MLP training loop on random data, steps/s), t2 (the MNIST MLP on the split bench/run.ts writes), t5 (the MNIST CNN, same split),
gpt (T3/T3b training steps), t6 (the char-level LSTM LM on the Brown ids bench/run.ts writes). Threads: BENCH_THREADS (set by bench/run.ts to Kiln's thread count) for torch, and
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS in the environment for OpenBLAS. Memory: RSS growth during the timed steps
(VmHWM after the timed steps, with the high-water mark reset after warm-up, minus VmRSS after warm-up).
"""
import json
import os
import statistics
import sys
import time


def threads():
    return int(os.environ.get("BENCH_THREADS") or 0) or os.cpu_count() or 1


def _status_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RssGrowth:
    """RSS growth over a stretch of code: reset the high-water mark (Linux clear_refs 5), then VmHWM - VmRSS."""

    def __init__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.exact = True
        except OSError:
            self.exact = False
        self.base = _status_mb("VmRSS")
        self.peak = self.base

    def sample(self):  # used only where the high-water mark cannot be reset
        self.peak = max(self.peak, _status_mb("VmRSS"))

    def growth_mb(self):
        peak = _status_mb("VmHWM") if self.exact else max(self.peak, _status_mb("VmRSS"))
        return peak - self.base


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
    except ModuleNotFoundError as e:
        if e.name == "torch":
            return None, "not installed"
        return None, str(e).splitlines()[0]
    except Exception as e:  # installed but broken
        return None, str(e).splitlines()[0]
    torch.set_num_threads(threads())
    return torch, None


def openblas_info():
    """The OpenBLAS libraries loaded in this process and the kernel (core) each runs: threadpoolctl when present,
    else OpenBLAS's own openblas_get_corename/openblas_get_config through ctypes, else numpy.show_config()."""
    try:
        import threadpoolctl
        return {"method": "threadpoolctl", "libs": [
            {"lib": i.get("filepath"), "corename": i.get("architecture"), "threads": i.get("num_threads"),
             "version": i.get("version")} for i in threadpoolctl.threadpool_info() if i.get("internal_api") == "openblas"]}
    except ImportError:
        pass
    import ctypes
    libs = []
    with open("/proc/self/maps") as f:
        paths = sorted({line.split()[-1] for line in f if "openblas" in line.split()[-1].lower()})
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            libs.append({"lib": path, "corename": lib.openblas_get_corename().decode(),
                         "config": lib.openblas_get_config().decode().strip(), "threads": lib.openblas_get_num_threads()})
        except (OSError, AttributeError):
            continue
    if libs:
        return {"method": "ctypes (threadpoolctl not installed)", "libs": libs}
    import contextlib
    import io
    import numpy as np
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        np.show_config()
    return {"method": "numpy.show_config (threadpoolctl not installed)", "libs": [], "show_config": buf.getvalue()}


def job_env(_p):
    import numpy as np
    np.ones((64, 64), dtype=np.float32) @ np.ones((64, 64), dtype=np.float32)  # loads numpy's BLAS
    torch, err = load_torch()
    if torch is not None:
        torch.ones(64, 64) @ torch.ones(64, 64)
    return {"numpy": np.__version__, "torch": torch.__version__ if torch else None, "torch_error": err,
            "torch_path": torch.__file__ if torch else None, "threads": torch.get_num_threads() if torch else None,
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
                                                   "OPENBLAS_L2_SIZE")},
            "openblas": openblas_info()}


def operands(m, n, k):
    import numpy as np
    rng = np.random.default_rng(0)
    return rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)


def job_t1kernel(p):
    """GFLOP/s per shape (median of samples after warm-up) of one library (p["lib"]: numpy or torch, one per process,
    so that neither's threads sit in the other's measurement), into a preallocated output (out=)."""
    import numpy as np
    torch = None
    if p["lib"] == "torch":
        torch, err = load_torch()
        if torch is None:
            return {"error": err}
    kw = {k: p[k] for k in ("warm_s", "sample_s", "samples") if k in p}
    out = []
    for m, n, k in p["shapes"]:
        a, b = operands(m, n, k)
        c = np.empty((m, n), dtype=np.float32)
        flops = 2.0 * m * n * k
        if torch is None:
            out.append(statistics.median(rates(lambda: np.matmul(a, b, out=c), flops, **kw)))
        else:
            ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
            with torch.no_grad():
                out.append(statistics.median(rates(lambda: torch.matmul(ta, tb, out=tc), flops, **kw)))
    return {"gflops": out}


def job_t1api(p):
    """numpy `a @ b`, allocating its result: the first call in this fresh process, then the median of the rest."""
    m, n, k = p["shape"]
    a, b = operands(m, n, k)
    flops = 2.0 * m * n * k
    t = time.perf_counter()
    a @ b
    first = time.perf_counter() - t
    times = []
    t_end = time.perf_counter() + p.get("follow_s", 1.0)
    while len(times) < p.get("min_calls", 5) or (time.perf_counter() < t_end and len(times) < p.get("max_calls", 50)):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return {"first_gflops": flops / first / 1e9, "follow_gflops": flops / statistics.median(times) / 1e9,
            "calls": len(times)}


def job_mlp(p):
    """A plain MLP 784-256-256-10 (Linear/ReLU), cross-entropy, Adam lr 1e-3, batch 128, random data."""
    torch, err = load_torch()
    if torch is None:
        return {"error": err}
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(p["warmup"]):
        step()
    mem = RssGrowth()
    t = time.perf_counter()
    for _ in range(p["steps"]):
        step()
        mem.sample()
    secs = time.perf_counter() - t
    return {"steps_per_s": p["steps"] / secs, "rss_growth_mb": mem.growth_mb(), "rss_exact": mem.exact}


def job_gpt(p):
    return gpt_step(**{k: p[k] for k in ("V", "T", "L", "H", "C", "B", "warmup", "steps")})


def gpt_step(V, T, L, H, C, B, warmup=3, steps=10):
    """T3: the same GPT-2 style model as bench/t3-gpt.ts (pre-LayerNorm, eps 1e-5, causal attention, tanh-GELU MLP
    4x wide, biases, tied LM head, no dropout), AdamW lr 3e-4, betas 0.9/0.999, wd 0.1, random tokens."""
    import math
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
    mem = None
    for i in range(warmup + steps):
        if i == warmup:
            mem = RssGrowth()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(idx, targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
            mem.sample()
    return {"ms_per_step": statistics.median(times), "params": params, "first_loss": losses[0], "last_loss": losses[-1],
            "rss_growth_mb": mem.growth_mb(), "rss_exact": mem.exact, "threads": torch.get_num_threads()}


def job_t2(p):
    """The MNIST MLP of T2 with the same model, loss, optimizer, batch and epochs as bench/t2-mnist.ts; with
    max_batches (quick mode), epochs 2-3 stop after that many batches each and there is no accuracy."""
    data_dir, max_batches = p["dir"], p.get("max_batches")
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
        seen = 0
        for k, b in enumerate(range(0, n, 128)):
            if max_batches is not None and k >= max_batches:
                break
            idx = order[b:b + 128]
            x, y = train_x[idx], train_y[idx]
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            loss.item()
            seen += idx.shape[0]
        if epoch > 1:
            samples += seen
            seconds += time.perf_counter() - t0
    acc = None
    if max_batches is None:
        model.eval()
        with torch.no_grad():
            acc = (model(test_x).argmax(1) == test_y).float().mean().item()
    return {"samples_per_s": samples / seconds, "accuracy": acc, "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def job_t6(p):
    """The char-level LSTM language model of T6 with the same model, loss, optimizer, batch and sequence as
    bench/t6-lstm.ts, on the character ids bench/run.ts writes (int32, the Brown corpus); median step after warm-up."""
    import numpy as np
    torch, err = load_torch()
    if torch is None:
        return {"error": err}
    torch.manual_seed(0)
    ids = torch.from_numpy(np.fromfile(p["ids"], dtype=np.int32).astype(np.int64))
    V, E, H, L, B, T = int(p["vocab"]), 128, 256, 2, 32, 128
    warmup, steps = int(p.get("warmup", 10)), int(p.get("steps", 20))

    class CharLSTM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, E)
            self.lstm = torch.nn.LSTM(E, H, num_layers=L, batch_first=True)
            self.head = torch.nn.Linear(H, V)

        def forward(self, idx):
            return self.head(self.lstm(self.embed(idx))[0])

    model = CharLSTM()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(1)
    offs = torch.arange(T + 1)
    times, first, last = [], None, None
    for i in range(warmup + steps):
        starts = torch.randint(0, ids.numel() - T - 1, (B, 1), generator=gen)
        w = ids[starts + offs]
        x, y = w[:, :-1], w[:, 1:]
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x).reshape(-1, V), y.reshape(-1))
        loss.backward()
        opt.step()
        last = loss.item()
        if i == 0:
            first = last
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1000
    return {"tokens_per_s": B * T / (ms / 1000), "ms_per_step": ms, "first_loss": first, "last_loss": last,
            "params": sum(q.numel() for q in model.parameters()), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def job_t5(p):
    """The MNIST CNN of T5 (BENCHMARKS.md) with the same model, loss, optimizer, batch and epochs as bench/t5-cnn.ts:
    conv 5x5 1->32 pad 2, ReLU, max-pool 2; conv 5x5 32->64 pad 2, ReLU, max-pool 2; flatten; linear 3136->128, ReLU,
    dropout 0.5; linear 128->10; Adam lr 1e-3, batch 64; training samples/s over epochs 2-3 of 3, test accuracy after.
    With max_batches (quick mode), epochs 2-3 stop after that many batches each and there is no accuracy."""
    data_dir, max_batches = p["dir"], p.get("max_batches")
    epochs = int(p.get("epochs", 3))
    import numpy as np
    torch, err = load_torch()
    if torch is None:
        return {"error": err}
    torch.manual_seed(0)
    load = lambda name, dt: np.fromfile(os.path.join(data_dir, name), dtype=dt)
    train_x = torch.from_numpy(load("train_x.bin", np.float32).reshape(-1, 1, 28, 28))
    train_y = torch.from_numpy(load("train_y.bin", np.int32).astype(np.int64))
    test_x = torch.from_numpy(load("test_x.bin", np.float32).reshape(-1, 1, 28, 28))
    test_y = torch.from_numpy(load("test_y.bin", np.int32).astype(np.int64))
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    n = train_x.shape[0]
    batch = 64
    samples, seconds = 0, 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n)
        t0 = time.perf_counter()
        seen = 0
        for k, b in enumerate(range(0, n, batch)):
            if max_batches is not None and k >= max_batches:
                break
            idx = order[b:b + batch]
            x, y = train_x[idx], train_y[idx]
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            loss.item()
            seen += idx.shape[0]
        if epoch > 1:
            samples += seen
            seconds += time.perf_counter() - t0
    acc = None
    if max_batches is None:
        model.eval()
        with torch.no_grad():
            acc = (model(test_x).argmax(1) == test_y).float().mean().item()
    return {"samples_per_s": samples / seconds, "accuracy": acc, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "mkldnn": torch.backends.mkldnn.is_available()}


JOBS = {"env": job_env, "t1kernel": job_t1kernel, "t1api": job_t1api, "mlp": job_mlp, "t2": job_t2, "gpt": job_gpt, "t5": job_t5, "t6": job_t6}


def main():
    if len(sys.argv) not in (2, 3) or sys.argv[1] not in JOBS:
        print(json.dumps({"error": f"usage: torch_bench.py {'|'.join(JOBS)} [JSON]"}))
        return 2
    params = json.loads(sys.argv[2]) if len(sys.argv) == 3 else {}
    try:
        out = JOBS[sys.argv[1]](params)
    except Exception as e:  # one line for the table; the traceback on stderr
        import traceback
        traceback.print_exc()
        out = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time to quality (bench row "ttq"), PyTorch's side: the same run as bench/ttq.ts trains in Kiln.

Usage: /usr/bin/python3 bench/ttq.py '{"dir": "/tmp/x"}'  (prints one JSON line)
Reads the files `bench/ttq.ts data` wrote into dir (meta.json, batches.i32, val.i32): the same GPT-2 style model as
Kiln's GPT (pre-LayerNorm, eps 1e-5, causal attention, tanh-GELU MLP 4x wide, tied LM head, GPT-2 initialisation),
AdamW (betas 0.9/beta2, eps 1e-8, weight decay on matrices only), linear warmup then cosine to min_lr * lr, global
gradient-norm clipping, the same training windows in the same order; every eval_every steps the loss over the whole
held-out split (every token after the first predicted once, windows of T, the rest in a shorter last window) with
the clock stopped. Threads: BENCH_THREADS (torch.set_num_threads).
"""
import json
import math
import os
import sys
import time


def main():
    import numpy as np
    import torch
    nn, F = torch.nn, torch.nn.functional
    p = json.loads(sys.argv[1])
    d = p["dir"]
    with open(os.path.join(d, "meta.json")) as f:
        m = json.load(f)
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS") or 0) or os.cpu_count() or 1)
    V, T, L, H, C, B = (m[k] for k in ("V", "T", "L", "H", "C", "B"))
    steps, drop, bias = m["steps"], m["dropout"], m["bias"]
    batches = torch.from_numpy(np.fromfile(os.path.join(d, "batches.i32"), dtype=np.int32).astype(np.int64)).view(steps, B, T + 1)
    val = torch.from_numpy(np.fromfile(os.path.join(d, "val.i32"), dtype=np.int32).astype(np.int64))
    torch.manual_seed(m["seed"])

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(C, eps=1e-5, elementwise_affine=True), nn.LayerNorm(C, eps=1e-5)
            self.c_attn, self.c_proj = nn.Linear(C, 3 * C, bias=bias), nn.Linear(C, C, bias=bias)
            self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C, bias=bias), nn.Linear(4 * C, C, bias=bias)
            self.drop = nn.Dropout(drop)
            self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)))

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q, k, v = (z.view(b, t, H, C // H).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H))
            att = F.softmax(att.masked_fill(~self.mask[:t, :t], float("-inf")), dim=-1)
            y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
            x = x + self.drop(self.c_proj(y))
            return x + self.drop(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
            self.drop = nn.Dropout(drop)
            self.h = nn.ModuleList([Block() for _ in range(L)])
            self.ln_f = nn.LayerNorm(C, eps=1e-5)

        def forward(self, idx, targets, reduction="mean"):
            x = self.drop(self.wte(idx) + self.wpe(torch.arange(idx.shape[1])))
            for blk in self.h:
                x = blk(x)
            logits = self.ln_f(x) @ self.wte.weight.t()
            return F.cross_entropy(logits.view(-1, V), targets.reshape(-1), reduction=reduction)

    model = GPT()
    with torch.no_grad():  # GPT-2 initialisation, as Kiln's GPT
        for name, q in model.named_parameters():
            if name.endswith("bias"):
                q.zero_()
            elif "ln_" not in name:
                std = 0.02 / math.sqrt(2 * L) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                torch.nn.init.normal_(q, 0.0, std)
    params = list(model.parameters())
    groups = [{"params": [q for q in params if q.dim() >= 2], "weight_decay": m["weight_decay"]},
              {"params": [q for q in params if q.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=m["lr"], betas=(0.9, m["beta2"]), eps=1e-8)
    warmup, floor = m["warmup"], m["min_lr"]

    def factor(s):  # Kiln's cosineWithWarmup
        if s < warmup:
            return s / warmup
        progress = min(1.0, (s - warmup) / (steps - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)

    def held_out():
        model.eval()
        n = val.numel()
        full = (n - 1) // T
        total = 0.0
        with torch.no_grad():
            for w0 in range(0, full, B):
                rows = min(B, full - w0)
                seg = val[w0 * T: (w0 + rows) * T + 1]
                total += model(seg[:-1].view(rows, T), seg[1:].view(rows, T), reduction="sum").item()
            rest = n - 1 - full * T
            if rest > 0:
                seg = val[full * T:]
                total += model(seg[:-1].view(1, rest), seg[1:].view(1, rest), reduction="sum").item()
        model.train()
        return total / (n - 1)

    evals, train_s, eval_s = [], 0.0, 0.0
    model.train()
    for i in range(steps):
        t0 = time.perf_counter()
        batch = batches[i]
        opt.zero_grad(set_to_none=True)
        loss = model(batch[:, :T], batch[:, 1:])
        loss.backward()
        if m["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(params, m["clip"])
        opt.step()
        sched.step()
        loss.item()
        train_s += time.perf_counter() - t0
        if (i + 1) % m["eval_every"] == 0 or i + 1 == steps:
            t1 = time.perf_counter()
            evals.append({"step": i + 1, "train_s": train_s, "loss": held_out()})
            eval_s += time.perf_counter() - t1
    print(json.dumps({"evals": evals, "train_s": train_s, "eval_s": eval_s, "params": sum(q.numel() for q in params),
                      "final_loss": evals[-1]["loss"], "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line for the table; the traceback on stderr
        import traceback
        traceback.print_exc()
        print(json.dumps({"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}))

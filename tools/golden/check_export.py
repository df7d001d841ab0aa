#!/usr/bin/python3
# Checks a GPT folder that Kiln exported (config.json + model.safetensors in Hugging Face GPT-2 layout + logits.json)
# against PyTorch: loads the weights into the plain GPT-2 of gpt2_ref.py (which matches transformers'
# GPT2LMHeadModel, see hf_cross_check.py), runs logits.json's idx and compares with the logits Kiln wrote.
#
#   /usr/bin/python3 tools/golden/check_export.py FOLDER [--atol 1e-4] [--rtol 1e-4]
#
# logits.json: {"idx": {"shape": [B, T], "data": [...]}, "logits": {"shape": [B, T, V], "data": [...]}} (flat
# row-major data; plain nested lists are accepted too), the format of test/golden/hf-gpt2-tiny/logits.json.
# Prints PASS or FAIL with the largest difference; exit status 0 on PASS, 1 on FAIL, 2 on unreadable input.

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import gpt2_ref  # noqa: E402
import safetensors_io  # noqa: E402


def as_tensor(v, dtype, what):
    if isinstance(v, dict):
        if "data" not in v or "shape" not in v:
            raise ValueError(f"logits.json: {what} must have 'shape' and 'data'")
        return torch.tensor(v["data"], dtype=dtype).reshape(v["shape"])
    return torch.tensor(v, dtype=dtype)


def load_config(folder):
    with open(os.path.join(folder, "config.json")) as f:
        raw = json.load(f)
    cfg = {}
    for key in ["vocab_size", "n_positions", "n_embd", "n_layer", "n_head"]:
        if key not in raw:
            raise ValueError(f"config.json: missing '{key}' (expected Hugging Face GPT2Config field names)")
        cfg[key] = int(raw[key])
    cfg["layer_norm_epsilon"] = float(raw.get("layer_norm_epsilon", 1e-5))
    act = raw.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError(f"config.json: activation_function '{act}' is not supported here (expected gelu_new)")
    if raw.get("n_inner") not in (None, 4 * cfg["n_embd"]):
        raise ValueError(f"config.json: n_inner {raw['n_inner']} is not supported here (expected null or 4*n_embd)")
    return cfg


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folder")
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--rtol", type=float, default=1e-4)
    a = ap.parse_args(argv)
    try:
        cfg = load_config(a.folder)
        tensors, meta = safetensors_io.read(os.path.join(a.folder, "model.safetensors"))
        with open(os.path.join(a.folder, "logits.json")) as f:
            lj = json.load(f)
        idx = as_tensor(lj["idx"], torch.int64, "idx")
        want = as_tensor(lj["logits"], torch.float64, "logits")
        model = gpt2_ref.GPT2(cfg).double().eval()
        gpt2_ref.load_hf_state_dict(model, tensors)
    except (OSError, ValueError, KeyError) as e:
        print(f"FAIL (unreadable export): {e}")
        return 2
    if idx.dim() == 1:
        idx = idx[None]
    if idx.shape[1] > cfg["n_positions"]:
        print(f"FAIL: idx has {idx.shape[1]} positions, the model's n_positions is {cfg['n_positions']}")
        return 1
    with torch.no_grad():
        got, _ = model(idx)
    if want.numel() != got.numel():
        print(f"FAIL: logits shape {list(want.shape)} in logits.json, PyTorch computed {list(got.shape)}")
        return 1
    want = want.reshape(got.shape)
    diff = (got - want).abs()
    bound = a.atol + a.rtol * got.abs()
    worst = (diff - bound).argmax()
    ok = bool((diff <= bound).all())
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in tensors.values()})
    print(f"{'PASS' if ok else 'FAIL'}: {a.folder}: {len(tensors)} tensors ({', '.join(dtypes)}), "
          f"idx {list(idx.shape)}, max |diff| {diff.max().item():.3g} (atol {a.atol:g}, rtol {a.rtol:g}); "
          f"worst at flat index {worst.item()}: kiln {want.reshape(-1)[worst].item():.8g}, "
          f"pytorch {got.reshape(-1)[worst].item():.8g}; torch {torch.__version__}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

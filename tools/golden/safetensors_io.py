# A small, dependency-free safetensors writer and reader (the `safetensors` Python package is not in Debian).
# Used by make_golden.py to write test fixtures and by check_export.py to read folders Kiln exported.
#
# Format (https://github.com/huggingface/safetensors): 8-byte little-endian unsigned header length N, then N bytes
# of UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}} padded with
# spaces to a multiple of 8, then the raw little-endian tensor bytes; offsets are relative to the end of the header.

import json
import struct
import sys

import torch

# safetensors dtype name -> (torch dtype, bytes per element)
DTYPES = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
TORCH_TO_ST = {v[0]: k for k, v in DTYPES.items()}


def tensor_bytes(t):
    """Raw little-endian bytes of a contiguous tensor (bf16/f16 go through an int16 view)."""
    t = t.detach().contiguous().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.view(torch.int16)
    if t.numel() == 0:
        return b""
    assert sys.byteorder == "little", "this writer assumes a little-endian machine"
    return t.numpy().tobytes()


def encode(tensors, metadata=None):
    """tensors: ordered list of (name, torch tensor); written in the given order. Returns (bytes, header dict)."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name, t in tensors:
        data = tensor_bytes(t)
        header[name] = {
            "dtype": TORCH_TO_ST[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(chunks), header


def write(path, tensors, metadata=None):
    blob, header = encode(tensors, metadata)
    with open(path, "wb") as f:
        f.write(blob)
    return header


def read(path):
    """Returns (dict name -> torch tensor, metadata dict). Handles unaligned offsets (copies)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: file is {len(blob)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} runs past the end of the {len(blob)}-byte file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dtype, size = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        shape = info["shape"]
        count = 1
        for d in shape:
            count *= d
        if end - begin != count * size or base + end > len(blob):
            raise ValueError(f"{path}: tensor {name} has data_offsets {begin}..{end}, expected {count * size} bytes")
        raw = bytearray(blob[base + begin:base + end])
        if count == 0:
            out[name] = torch.zeros(shape, dtype=dtype)
            continue
        if dtype in (torch.float16, torch.bfloat16):
            t = torch.frombuffer(raw, dtype=torch.int16).view(dtype)
        else:
            t = torch.frombuffer(raw, dtype=dtype)
        out[name] = t.reshape(shape).clone()
    return out, meta

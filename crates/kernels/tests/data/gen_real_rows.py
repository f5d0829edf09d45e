"""Writes real_rows.json: the first blocks (up to 512 elements) of one row of raw bytes from real GGUF tensors of each type the three
test models use, with the row dequantized by gguf-py (the GGUF reference package's own numpy
implementation, independent of jikji). Run from anywhere:

    python3 crates/kernels/tests/data/gen_real_rows.py ~/.cache/jikji/models
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf.quants import dequantize

PICKS = [
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "blk.0.ffn_down.weight"),   # Q4_1
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "token_embd.weight"),       # Q8_0
    ("qwen2.5-coder-0.5b-instruct.gguf", "blk.0.attn_q.weight"),    # Q5_0
    ("qwen2.5-coder-0.5b-instruct.gguf", "blk.11.ffn_down.weight"), # Q4_K
    ("qwen2.5-coder-0.5b-instruct.gguf", "blk.0.ffn_down.weight"),  # Q6_K
    ("qwen2.5-coder-0.5b-instruct.gguf", "blk.0.attn_norm.weight"), # F32
]


def main():
    models = os.path.expanduser(sys.argv[1] if len(sys.argv) > 1 else "~/.cache/jikji/models")
    out = []
    for fname, tname in PICKS:
        r = gguf.GGUFReader(os.path.join(models, fname))
        t = next(t for t in r.tensors if t.name == tname)
        qt = t.tensor_type
        cols = int(t.shape[0])
        block, tsize = gguf.GGML_QUANT_SIZES[qt]
        row_bytes = cols // block * tsize
        raw = np.asarray(t.data).reshape(-1).view(np.uint8)
        row = 3 if raw.size >= 4 * row_bytes else 0
        n = min(cols, max(block, 512 // block * block))
        rb = raw[row * row_bytes:row * row_bytes + n // block * tsize].copy()
        vals = dequantize(rb, qt).reshape(-1).astype("<f4")
        assert vals.size == n
        out.append({
            "model": fname,
            "tensor": tname,
            "type": qt.name,
            "row": row,
            "n": n,
            "bytes_hex": rb.tobytes().hex(),
            "values_f32le_hex": vals.tobytes().hex(),
        })
        print(fname, tname, qt.name, cols, file=sys.stderr)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "real_rows.json")
    with open(path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()

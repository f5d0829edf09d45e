#!/usr/bin/env python3
"""A GGUF's shape without its weights, small enough to travel where a model cannot.

    gguf-skeleton.py pack SRC.gguf OUT.skel [--seed-bytes N]
    gguf-skeleton.py unpack IN.skel OUT.gguf

`pack` keeps the whole header (metadata with the vocabulary and chat template, tensor
names, shapes, types and offsets) and the first N bytes (default 16 KiB) of every tensor's
data, xz-compressed: a few MB for a model of a GB. `unpack` writes a file of the original's
exact size and layout whose every tensor is its kept bytes repeated. Each quantized block is
then a real block of that tensor (its scales are real half floats, never NaN), so the file
loads, runs and decodes at the speed of the real model; its text is of course not the
model's. It is for speed measurements on a machine that no model file can reach (the lent
GPU machine takes 64 MiB of files in all): run both engines on the same unpacked file.

Needs only the Python standard library.
"""

import lzma
import struct
import sys

MAGIC = b"JKSK1"
# GGUF metadata value types whose size is fixed, by type id.
FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
# Bytes of one block, by ggml tensor type id: a kept prefix is whole blocks, so that
# repeating it keeps every block's scales where the type has them.
BLOCK_BYTES = {0: 4, 1: 2, 2: 18, 3: 20, 6: 22, 7: 24, 8: 34, 9: 36, 10: 84, 11: 110,
               12: 144, 13: 176, 14: 210, 15: 292, 16: 66, 17: 74, 18: 98, 19: 50, 20: 18,
               21: 110, 22: 82, 23: 136, 24: 1, 25: 2, 26: 4, 27: 8, 28: 8, 29: 56, 30: 2}


class Reader:
    def __init__(self, f):
        self.f = f

    def take(self, n):
        b = self.f.read(n)
        if len(b) != n:
            sys.exit("gguf-skeleton: truncated GGUF header")
        return b

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def string(self):
        return self.take(self.u64())

    def value(self, ty):
        if ty in FIXED:
            raw = self.take(FIXED[ty])
            return struct.unpack("<I", raw)[0] if ty == 4 else raw
        if ty == 8:
            return self.string()
        if ty == 9:
            ety, n = self.u32(), self.u64()
            if ety in FIXED:
                self.take(FIXED[ety] * n)
            else:
                for _ in range(n):
                    self.value(ety)
            return None
        sys.exit(f"gguf-skeleton: unknown metadata type {ty}")


def header(path):
    """(header bytes up to the data, data offset, [(offset, size, block bytes)] of the
    tensors, file size)."""
    with open(path, "rb") as f:
        r = Reader(f)
        if r.take(4) != b"GGUF":
            sys.exit(f"gguf-skeleton: {path} is not a GGUF file")
        version = r.u32()
        if version < 2:
            sys.exit(f"gguf-skeleton: GGUF version {version} is too old")
        n_tensors, n_kv = r.u64(), r.u64()
        alignment = 32
        for _ in range(n_kv):
            key = r.string()
            ty = r.u32()
            v = r.value(ty)
            if key == b"general.alignment" and ty == 4:
                alignment = v
        offsets, types = [], []
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.u32()
            r.take(8 * n_dims)
            ty = r.u32()
            if ty not in BLOCK_BYTES:
                sys.exit(f"gguf-skeleton: tensor {name.decode()} has ggml type {ty}, not in the table")
            types.append(ty)
            offsets.append(r.u64())
        end = f.tell()
        data = (end + alignment - 1) // alignment * alignment
        f.seek(0, 2)
        size = f.tell()
        f.seek(0)
        head = f.read(data)
    spans = []
    order = sorted(range(len(offsets)), key=lambda i: offsets[i])
    for k, i in enumerate(order):
        nxt = offsets[order[k + 1]] if k + 1 < len(order) else size - data
        spans.append((offsets[i], nxt - offsets[i], BLOCK_BYTES[types[i]]))
    return head, data, spans, size


def pack(src, out, seed_bytes):
    head, data, spans, size = header(src)
    parts = [MAGIC, struct.pack("<QQQI", len(head), data, size, len(spans)), head]
    with open(src, "rb") as f:
        for off, n, block in spans:
            f.seek(data + off)
            seed = f.read(min(n, max(block, seed_bytes // block * block)))
            parts += [struct.pack("<QQI", off, n, len(seed)), seed]
    blob = lzma.compress(b"".join(parts), preset=6)
    with open(out, "wb") as f:
        f.write(blob)
    print(f"{out}: {len(blob):,} bytes for {size:,} ({len(spans)} tensors)")


def unpack(skel, out):
    with open(skel, "rb") as f:
        raw = lzma.decompress(f.read())
    if not raw.startswith(MAGIC):
        sys.exit(f"gguf-skeleton: {skel} is not a skeleton")
    p = len(MAGIC)
    hlen, data, size, n = struct.unpack_from("<QQQI", raw, p)
    p += 28
    with open(out, "wb") as f:
        f.write(raw[p : p + hlen])
        p += hlen
        for _ in range(n):
            off, length, slen = struct.unpack_from("<QQI", raw, p)
            p += 20
            seed = raw[p : p + slen]
            p += slen
            f.seek(data + off)
            chunk = seed * max(1, (1 << 24) // max(1, slen))
            left = length
            while left > 0:
                piece = chunk[: min(left, len(chunk))]
                f.write(piece)
                left -= len(piece)
        f.truncate(size)
    print(f"{out}: {size:,} bytes")


def main():
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] == "pack":
        seed = int(a[a.index("--seed-bytes") + 1]) if "--seed-bytes" in a else 16384
        pack(a[1], a[2], seed)
    elif len(a) == 3 and a[0] == "unpack":
        unpack(a[1], a[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

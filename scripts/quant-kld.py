#!/usr/bin/env python3
"""Quantization quality: Q4 against a Q8 base of the same model, jikji against
llama-perplexity on the same files (a benchmark-style check, not a CI test).

  flock /work/build.lock python3 scripts/quant-kld.py [--models smollm2-135m,qwen2.5-0.5b] [--chunks 4] [--quant Q4_K_M]

No F16 original of the catalog models ships in a registry package, so for each model:
1. llama-quantize --allow-requantize turns the shipped file into F16 (its weights exactly,
   dequantized), then F16 into Q8_0 (the base) and into --quant (the file under test);
2. llama-perplexity -fa off writes the Q8_0 base logits over -c 512 chunks of English
   running text (exllamav2==0.3.2's wiki.utf8); jikji writes its own base from the same
   Q8_0 file, and the two base files are compared byte for byte;
3. both engines read llama.cpp's base with the quantized model (`--kl-divergence`), and every
   statistic of the KL-divergence, Δp and same-top blocks is compared: the check fails when
   one differs by more than 1 % (relative, or 0.01 absolute on percentages near zero).
Prints a Markdown table of the main statistics. Needs target/release/jikji, llama-quantize
and llama-perplexity in LLAMA_BIN (scripts/build-llamacpp.sh), and the models (`jikji pull`).
Quantized files and bases go to --work (default /tmp/jikji-quant-kld) and are never committed.
"""
import argparse, filecmp, os, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JIKJI = os.path.join(ROOT, "target/release/jikji")
BIN = os.path.expanduser(os.environ.get("LLAMA_BIN", "~/.cache/jikji/llama.cpp-0.3.36/build/bin"))
MODELS = os.path.expanduser(os.environ.get("JIKJI_MODELS", "~/.cache/jikji/models"))
FILES = {"smollm2-135m": "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma3-270m": "gemma-3-270m-q4_k_m.gguf", "qwen2.5-0.5b": "qwen2.5-coder-0.5b-instruct.gguf"}

# (label in the output, regex capturing the value); the same lines on both sides.
STATS = [
    ("Mean PPL(Q)", r"Mean PPL\(Q\)\s+:\s+([-\d.]+)"),
    ("Mean PPL(base)", r"Mean PPL\(base\)\s+:\s+([-\d.]+)"),
    ("Mean ln(PPL(Q)/PPL(base))", r"Mean ln\(PPL\(Q\)/PPL\(base\)\)\s+:\s+([-\d.]+)"),
    ("Mean KLD", r"Mean\s+KLD:\s+([-\d.]+)"),
    ("Maximum KLD", r"Maximum KLD:\s+([-\d.]+)"),
    ("99.9% KLD", r"99\.9%\s+KLD:\s+([-\d.]+)"),
    ("99.0% KLD", r"99\.0%\s+KLD:\s+([-\d.]+)"),
    ("95.0% KLD", r"95\.0%\s+KLD:\s+([-\d.]+)"),
    ("90.0% KLD", r"90\.0%\s+KLD:\s+([-\d.]+)"),
    ("Median KLD", r"Median\s+KLD:\s+([-\d.]+)"),
    ("Mean Δp %", r"Mean\s+Δp:\s+([-\d.]+)"),
    ("Maximum Δp %", r"Maximum Δp:\s+([-\d.]+)"),
    ("99.0% Δp %", r"99\.0%\s+Δp:\s+([-\d.]+)"),
    ("Median Δp %", r"Median\s+Δp:\s+([-\d.]+)"),
    ("1.0% Δp %", r" 1\.0%\s+Δp:\s+([-\d.]+)"),
    ("Minimum Δp %", r"Minimum Δp:\s+([-\d.]+)"),
    ("RMS Δp %", r"RMS Δp\s+:\s+([-\d.]+)"),
    ("Same top p %", r"Same top p:\s+([-\d.]+)"),
]


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{(out.stdout + out.stderr)[-3000:]}")
    return out.stdout + out.stderr


def quantize(src, dst, kind, requant):
    if not os.path.exists(dst):
        run([os.path.join(BIN, "llama-quantize")] + (["--allow-requantize"] if requant else []) + [src, dst + ".part", kind, "2"])
        os.replace(dst + ".part", dst)
    return dst


def stats(text):
    got = {}
    for label, rx in STATS:
        m = re.search(rx, text)
        if m:
            got[label] = float(m.group(1))
    return got


def close(a, b):
    return abs(a - b) <= max(0.01 * abs(b), 0.01 if abs(b) < 1.0 else 0.0, 1e-6)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-0.5b")
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--quant", default="Q4_K_M")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--work", default="/tmp/jikji-quant-kld")
    a = ap.parse_args()
    wiki = os.path.join(MODELS, "eval-data", "exllamav2-0.3.2", "wiki.utf8")
    if not os.path.exists(wiki):
        run([sys.executable, os.path.join(ROOT, "scripts/bench-eval.py"), "--models", "smollm2-135m", "--chunks", "1", "--mmlu", "4"])
    os.makedirs(a.work, exist_ok=True)
    failures, rows = [], []
    for short in a.models.split(","):
        src = os.path.join(MODELS, FILES[short])
        f16 = quantize(src, os.path.join(a.work, f"{short}-F16.gguf"), "F16", True)
        q8 = quantize(f16, os.path.join(a.work, f"{short}-Q8_0.gguf"), "Q8_0", False)
        q4 = quantize(f16, os.path.join(a.work, f"{short}-{a.quant}.gguf"), a.quant, False)
        common = ["-c", "512", "--chunks", str(a.chunks), "-t", a.threads]
        base_l = os.path.join(a.work, f"{short}-Q8_0.llama.kld")
        base_j = os.path.join(a.work, f"{short}-Q8_0.jikji.kld")
        run([os.path.join(BIN, "llama-perplexity"), "-m", q8, "-f", wiki, "-fa", "off", "--kl-divergence-base", base_l] + common)
        run([JIKJI, "eval", "perplexity", "-m", q8, "-f", wiki, "--kl-divergence-base", base_j] + common)
        same_base = filecmp.cmp(base_l, base_j, shallow=False)
        if not same_base:
            failures.append(f"{short}: jikji's Q8_0 base differs from llama.cpp's")
        lq = stats(run([os.path.join(BIN, "llama-perplexity"), "-m", q4, "-fa", "off", "--kl-divergence-base", base_l, "--kl-divergence", "-t", a.threads]))
        jq = stats(run([JIKJI, "eval", "perplexity", "-m", q4, "--kl-divergence-base", base_l, "--kl-divergence", "-t", a.threads]))
        print(f"\n{short}: {a.quant} against the Q8_0 base, {a.chunks} chunks of 512 (base files {'identical' if same_base else 'DIFFER'})")
        print(f"{'statistic':28} {'llama.cpp':>12} {'jikji':>12}")
        for label, _ in STATS:
            lv, jv = lq.get(label), jq.get(label)
            ok = lv is not None and jv is not None and close(jv, lv)
            print(f"{label:28} {lv if lv is not None else 'missing':>12} {jv if jv is not None else 'missing':>12}{'' if ok else '   <-- differs'}")
            if not ok:
                failures.append(f"{short}: {label}: llama.cpp {lv}, jikji {jv}")
        rows.append((short, lq, jq, same_base))
    print(f"\n| model | {a.quant} vs Q8_0 | PPL(Q) llama.cpp / jikji | mean KLD llama.cpp / jikji | 99% KLD | RMS Δp % | same top % | bases identical |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for short, lq, jq, same in rows:
        def pair(k):
            return f"{lq.get(k)} / {jq.get(k)}"
        print(f"| {short} | {a.chunks}×512 | {pair('Mean PPL(Q)')} | {pair('Mean KLD')} | {pair('99.0% KLD')} | {pair('RMS Δp %')} | {pair('Same top p %')} | {'yes' if same else 'no'} |")
    if failures:
        sys.exit("differences beyond 1 %:\n" + "\n".join(failures))
    print("\nall statistics within 1 % of llama-perplexity's")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Tiny random-weight EXAONE 3.5 model (`exaone` in GGUF) with two references.

  scripts/make_tiny_exaone.py [SEED] [OUTDIR]      (defaults: 1, tests/fixtures/tiny)

Writes OUTDIR/exaone-SEED.gguf and OUTDIR/exaone-SEED.json.

Why not transformers + convert_hf_to_gguf.py as for the other tiny models: transformers has
no built-in EXAONE 3.5 class, and the converter needs torch, which this machine cannot
install. EXAONE 3.5 is mathematically a Llama with renamed tensors and NEOX rotary pairs,
so:
- the weights are drawn as a Hugging Face EXAONE checkpoint (`transformer.h.N.attn.
  attention.q_proj`, `mlp.c_fc_0/1`, `ln_1/2`, ...) and written to GGUF with llama.cpp's
  own gguf-py (vendored in the llama-cpp-python 0.3.36 source package): tensor names come
  from its `TensorNameMap` for MODEL_ARCH.EXAONE, keys and the llama-3 `rope_freqs.weight`
  follow `conversion/exaone.py` line by line; the tokenizer metadata is copied from
  `exaone4-1.gguf` (the same toy BPE vocabulary);
- reference 1, "llama_math": transformers' `LlamaForCausalLM` forward (rotate_half rope
  with llama-3 frequency scaling, GQA, SwiGLU, RMS norm) re-implemented in numpy float64
  on the checkpoint's weights: full logits rows and a 16-token greedy continuation;
- reference 2, "llama.cpp": llama.cpp's own logits for the GGUF file, from a 60-line
  program over its public API (`scripts/llama_logits.cpp`, compiled here against the
  built static libraries): every position's row in one batch, then its own 16-token greedy
  continuation. (llama-server only reports probabilities, and drops them for tokens that
  end inside a UTF-8 character, which this toy vocabulary has.)

Both references' rows are stored like the other tiny fixtures': top-8 `(id, logit)` at
every position, the full last row, and the greedy ids.

Needs numpy, g++, the llama.cpp source (LLAMA_CPP_VENDOR, default
~/.cache/jikji/llama.cpp-0.3.36/src/vendor/llama.cpp) and its build directory with the
static libraries (LLAMA_CPP_BUILD, default ~/.cache/jikji/llama.cpp-0.3.36/build).
"""
import json, math, os, subprocess, sys
import numpy as np

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
outdir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "tests/fixtures/tiny")
home = os.path.expanduser("~/.cache/jikji/llama.cpp-0.3.36")
vendor = os.environ.get("LLAMA_CPP_VENDOR", home + "/src/vendor/llama.cpp")
sys.path.insert(0, vendor + "/gguf-py")
import gguf  # noqa: E402  (llama.cpp's own gguf-py)

name = f"exaone-{seed}"
rng = np.random.default_rng(seed)

# ---- the toy vocabulary and prompts of the other tiny fixtures
tok_src = gguf.GGUFReader(os.path.join(root, "tests/fixtures/tiny/exaone4-1.gguf"))
src_ref = json.load(open(os.path.join(root, "tests/fixtures/tiny/exaone4-1.json")))
n_vocab = len(tok_src.fields["tokenizer.ggml.tokens"].data)
prompts = [(p["text"], p["ids"]) for p in src_ref["prompts"]]

# ---- an EXAONE 3.5 config (small), llama-3 rope scaling as the real 3.5 models have
cfg = dict(architectures=["ExaoneForCausalLM"], model_type="exaone", vocab_size=n_vocab, hidden_size=64,
           num_layers=3, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
           activation_function="silu", layer_norm_epsilon=1e-5, max_position_embeddings=4096,
           rope_theta=10000.0, tie_word_embeddings=False,
           rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64})
E, L, H, KV, FF = cfg["hidden_size"], cfg["num_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"]
D = E // H
EPS = cfg["layer_norm_epsilon"]

def w(*shape, scale=0.15):
    return (rng.standard_normal(shape) * scale).astype(np.float32)

# Hugging Face names and layouts ([out, in] for linear weights).
hf = {"transformer.wte.weight": w(n_vocab, E, scale=1.0), "transformer.ln_f.weight": (1 + w(E, scale=0.1)),
      "lm_head.weight": w(n_vocab, E)}
for i in range(L):
    p = f"transformer.h.{i}."
    hf[p + "ln_1.weight"] = 1 + w(E, scale=0.1)
    hf[p + "attn.attention.q_proj.weight"] = w(H * D, E)
    hf[p + "attn.attention.k_proj.weight"] = w(KV * D, E)
    hf[p + "attn.attention.v_proj.weight"] = w(KV * D, E)
    hf[p + "attn.attention.out_proj.weight"] = w(E, H * D)
    hf[p + "ln_2.weight"] = 1 + w(E, scale=0.1)
    hf[p + "mlp.c_fc_0.weight"] = w(FF, E)
    hf[p + "mlp.c_fc_1.weight"] = w(FF, E)
    hf[p + "mlp.c_proj.weight"] = w(E, FF)

# llama-3 rope factors exactly as conversion/exaone.py computes them (float32 freqs).
rs = cfg["rope_scaling"]
freqs = (1.0 / (np.float32(cfg["rope_theta"]) ** (np.arange(0, D, 2, dtype=np.float32) / np.float32(D)))).astype(np.float32)
low_wl, high_wl = rs["original_max_position_embeddings"] / rs["low_freq_factor"], rs["original_max_position_embeddings"] / rs["high_freq_factor"]
rope_factors = []
for f in freqs:
    wl = 2 * math.pi / float(f)
    if wl < high_wl:
        rope_factors.append(1.0)
    elif wl > low_wl:
        rope_factors.append(rs["factor"])
    else:
        smooth = (rs["original_max_position_embeddings"] / wl - rs["low_freq_factor"]) / (rs["high_freq_factor"] - rs["low_freq_factor"])
        rope_factors.append(1 / ((1 - smooth) / rs["factor"] + smooth))
rope_factors = np.array(rope_factors, dtype=np.float32)

# ---- GGUF through gguf-py, names from TensorNameMap(EXAONE), keys as the converter writes them
os.makedirs(outdir, exist_ok=True)
gguf_path = os.path.join(outdir, name + ".gguf")
arch = gguf.MODEL_ARCH.EXAONE
tmap = gguf.get_tensor_name_map(arch, L)
wr = gguf.GGUFWriter(gguf_path, gguf.MODEL_ARCH_NAMES[arch])
wr.add_type(gguf.GGUFType.MODEL)
wr.add_name(f"tiny-exaone-{seed}")
wr.add_block_count(L)
wr.add_context_length(cfg["max_position_embeddings"])
wr.add_embedding_length(E)
wr.add_feed_forward_length(FF)
wr.add_head_count(H)
wr.add_head_count_kv(KV)
wr.add_rope_freq_base(cfg["rope_theta"])
wr.add_layer_norm_rms_eps(EPS)
wr.add_file_type(gguf.LlamaFileType.ALL_F32)
wr.add_rope_dimension_count(D)
for field in tok_src.fields.values():
    if field.name.startswith("tokenizer."):
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            wr.add_key_value(field.name, field.contents(), vtype, sub_type=field.types[-1])
        else:
            wr.add_key_value(field.name, field.contents(), vtype)
for hf_name, t in hf.items():
    g_name = tmap.get_name(hf_name, try_suffixes=(".weight",))
    assert g_name, hf_name
    wr.add_tensor(g_name, t.astype(np.float32))
wr.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", rope_factors)
wr.write_header_to_file(); wr.write_kv_data_to_file(); wr.write_tensors_to_file(); wr.close()

# ---- reference 1: LlamaForCausalLM math in float64
def rms(x, g):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * g

inv_freq = freqs.astype(np.float64) / rope_factors.astype(np.float64)

def rope(x, pos):  # x [T, heads, D], rotate_half (NEOX pairs)
    ang = np.outer(pos, inv_freq)  # [T, D/2]
    cos, sin = np.cos(np.concatenate([ang, ang], -1))[:, None, :], np.sin(np.concatenate([ang, ang], -1))[:, None, :]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + np.concatenate([-x2, x1], -1) * sin

W = {k: v.astype(np.float64) for k, v in hf.items()}

def forward(ids):
    T = len(ids)
    x = W["transformer.wte.weight"][ids]
    pos = np.arange(T)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(L):
        p = f"transformer.h.{i}."
        h = rms(x, W[p + "ln_1.weight"])
        q = (h @ W[p + "attn.attention.q_proj.weight"].T).reshape(T, H, D)
        k = (h @ W[p + "attn.attention.k_proj.weight"].T).reshape(T, KV, D)
        v = (h @ W[p + "attn.attention.v_proj.weight"].T).reshape(T, KV, D)
        q, k = rope(q, pos), rope(k, pos)
        o = np.zeros((T, H, D))
        for hh in range(H):
            kvh = hh // (H // KV)
            s = q[:, hh] @ k[:, kvh].T / math.sqrt(D) + mask
            s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
            o[:, hh] = s @ v[:, kvh]
        x = x + o.reshape(T, H * D) @ W[p + "attn.attention.out_proj.weight"].T
        h = rms(x, W[p + "ln_2.weight"])
        g = h @ W[p + "mlp.c_fc_0.weight"].T
        u = h @ W[p + "mlp.c_fc_1.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ W[p + "mlp.c_proj.weight"].T
    return rms(x, W["transformer.ln_f.weight"]) @ W["lm_head.weight"].T

def top8(row):
    idx = np.argsort(-row)[:8]
    return [[int(i), round(float(row[i]), 5)] for i in idx]

out = {"arch": "exaone", "seed": seed, "gguf": name + ".gguf", "config": cfg,
       "references": {"llama_math": "transformers LlamaForCausalLM forward in numpy float64 on the EXAONE weights (logits)",
                      "llama.cpp": "llama.cpp's logits on the GGUF (scripts/llama_logits.cpp)"},
       "prompts": []}
for text, ids in prompts:
    logits = forward(ids)
    seq, cur = [], list(ids)
    for _ in range(16):
        nxt = int(np.argmax(forward(cur)[-1])); seq.append(nxt); cur.append(nxt)
    out["prompts"].append({"text": text, "ids": ids, "llama_math": {
        "top8": [top8(r) for r in logits], "last_row": [round(float(x), 5) for x in logits[-1]], "greedy": seq}})

# ---- reference 2: llama.cpp's logits through its public API (scripts/llama_logits.cpp,
# linked against the built static libraries)
build = os.environ.get("LLAMA_CPP_BUILD", home + "/build")
exe = os.path.join(outdir, ".llama_logits")
subprocess.run(["g++", "-O2", "-std=c++17", f"-I{vendor}/include", f"-I{vendor}/ggml/include",
                os.path.join(root, "scripts/llama_logits.cpp"), f"{build}/src/libllama.a", f"{build}/ggml/src/libggml.a",
                f"{build}/ggml/src/libggml-cpu.a", f"{build}/ggml/src/libggml-base.a", "-fopenmp", "-lpthread", "-ldl",
                "-o", exe], check=True)
try:
    for pr in out["prompts"]:
        r = json.loads(subprocess.run([exe, gguf_path, "16"] + [str(i) for i in pr["ids"]], check=True,
                                      capture_output=True, text=True).stdout)
        rows = np.array(r["rows"], dtype=np.float64)
        pr["llama.cpp"] = {"top8": [top8(x) for x in rows], "last_row": [round(float(x), 5) for x in rows[-1]],
                           "greedy": r["greedy"]}
        pr["max_abs_diff_last_row"] = round(float(np.max(np.abs(rows[-1] - np.array(pr["llama_math"]["last_row"])))), 6)
finally:
    os.remove(exe)
json.dump(out, open(os.path.join(outdir, name + ".json"), "w"), ensure_ascii=False, indent=1)
print(name, "llama_math ~ llama.cpp max|d|", [p["max_abs_diff_last_row"] for p in out["prompts"]],
      "greedy equal", [p["llama_math"]["greedy"] == p["llama.cpp"]["greedy"] for p in out["prompts"]])

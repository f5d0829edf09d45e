#!/usr/bin/env python3
"""A tiny random-weight Qwen2 directory as transformers saves one, with reference outputs
of transformers' Qwen2 code recomputed in float64 numpy (no torch):

  make-tiny-qwen2-hf.py QWEN25_GGUF OUTDIR [SEED] [--bf16]

- Tokenizer: the real Qwen2.5 one, rebuilt as tokenizer.json from the catalog's
  qwen2.5-0.5b GGUF (vocabulary, merges, added tokens; Qwen2's Split regex + ByteLevel,
  NFC normaliser, ByteLevel decoder) with tokenizer_config.json's special tokens and
  chat template, as Qwen ships them (no bos_token, eos <|im_end|>, pad <|endoftext|>).
- Model: Qwen2.5's config shrunk (vocab 151936, 2 layers, width 64, 4 heads / 2 KV heads
  of 16, FFN 128, rope_theta 1e6, tied embeddings, no sliding window), weights N(0, 0.15)
  (norms 1 + N(0, 0.1), biases N(0, 0.15)), every value rounded to BF16 (Qwen's dtype)
  and saved as F32 (exactly those values), or as BF16 with --bf16. The reference test
  uses F32: with BF16 weights jikji, like llama.cpp, also rounds the activations to BF16
  for the dot products, which the float64 reference does not (|Δlogit| ≈ 0.03 then).
- OUTDIR/reference.json: per prompt, Hugging Face tokenizers' ids, top-8 logits at every
  position, the full last row and a 16-token greedy continuation, from this float64
  forward of the BF16 weights:
    x = E[ids]; per layer: h = RMSNorm(x); q,k,v = h·W + b; rotate_half rope
    (inv_freq = θ^(-2i/d)) on q,k; causal softmax(q kᵀ/√d) v over KV heads shared by
    groups of query heads; x += O·ctx; x += down(silu(gate·RMSNorm(x)) ⊙ up·RMSNorm(x));
    logits = RMSNorm(x)·Eᵀ (tied).
Needs numpy, gguf, tokenizers (pip).
"""
import json, math, os, sys
import numpy as np
from gguf import GGUFReader
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, normalizers, AddedToken, Regex

args = [a for a in sys.argv[1:] if a != "--bf16"]
as_bf16 = "--bf16" in sys.argv
src, out = args[0], args[1]
seed = int(args[2]) if len(args) > 2 else 1
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(seed)

# --- tokenizer, from the real model's vocabulary ---
r = GGUFReader(src)
f = lambda k: r.fields[k].contents()
toks, types, merges = f("tokenizer.ggml.tokens"), f("tokenizer.ggml.token_type"), f("tokenizer.ggml.merges")
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
vocab = {t: i for i, (t, ty) in enumerate(zip(toks, types)) if ty == 1}
tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges]))
tok.normalizer = normalizers.NFC()
tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2), behavior="isolated"),
                                             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
tok.decoder = decoders.ByteLevel()
tok.add_tokens([AddedToken(t, special=(ty == 3), normalized=False) for t, ty in zip(toks, types) if ty in (3, 4)])
tok.save(os.path.join(out, "tokenizer.json"))
json.dump({"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
           "chat_template": f("tokenizer.chat_template"), "tokenizer_class": "Qwen2Tokenizer",
           "model_max_length": 32768}, open(os.path.join(out, "tokenizer_config.json"), "w"), ensure_ascii=False)

# --- config and weights ---
V, E, L, H, KV, D, FF = 151936, 64, 2, 4, 2, 16, 128
theta, eps = 1000000.0, 1e-6
cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": V, "hidden_size": E,
       "intermediate_size": FF, "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": KV,
       "hidden_act": "silu", "max_position_embeddings": 32768, "rms_norm_eps": eps, "rope_theta": theta,
       "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 32768, "max_window_layers": 21,
       "bos_token_id": 151643, "eos_token_id": 151645, "torch_dtype": "bfloat16" if as_bf16 else "float32",
       "transformers_version": "4.43.1"}
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)

def bf16(w):  # round to bf16 (nearest even); returns (uint16 bits, float64 values)
    b = w.astype(np.float32).view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    return b, (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)

W, bits = {}, {}
def param(name, shape, kind="w"):
    x = rng.standard_normal(shape) * (0.1 if kind == "norm" else 0.15) + (1.0 if kind == "norm" else 0.0)
    bits[name], W[name] = bf16(x)
param("model.embed_tokens.weight", (V, E)); param("model.norm.weight", (E,), "norm")
for il in range(L):
    p = f"model.layers.{il}."
    param(p + "input_layernorm.weight", (E,), "norm"); param(p + "post_attention_layernorm.weight", (E,), "norm")
    for n, rows in (("q", H * D), ("k", KV * D), ("v", KV * D)):
        param(p + f"self_attn.{n}_proj.weight", (rows, E)); param(p + f"self_attn.{n}_proj.bias", (rows,))
    param(p + "self_attn.o_proj.weight", (E, H * D))
    param(p + "mlp.gate_proj.weight", (FF, E)); param(p + "mlp.up_proj.weight", (FF, E)); param(p + "mlp.down_proj.weight", (E, FF))
header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
for n in sorted(bits):
    b = bits[n].tobytes() if as_bf16 else W[n].astype(np.float32).tobytes()
    header[n] = {"dtype": "BF16" if as_bf16 else "F32", "shape": list(bits[n].shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(header, separators=(",", ":")).encode(); h += b" " * ((8 - len(h) % 8) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as fo:
    fo.write(len(h).to_bytes(8, "little")); fo.write(h); [fo.write(b) for b in blobs]

# --- transformers' Qwen2 forward, float64 ---
def rms(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

def rope(x, pos):  # x [heads, n, D]; rotate_half convention
    inv = theta ** (-np.arange(0, D, 2) / D)
    fr = np.outer(pos, inv); emb = np.concatenate([fr, fr], -1)
    rot = np.concatenate([-x[..., D // 2:], x[..., : D // 2]], -1)
    return x * np.cos(emb) + rot * np.sin(emb)

def forward(ids):
    n = len(ids); pos = np.arange(n)
    x = W["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for il in range(L):
        p = f"model.layers.{il}."
        hdn = rms(x, W[p + "input_layernorm.weight"])
        proj = lambda t, heads: (hdn @ W[p + f"self_attn.{t}_proj.weight"].T + W[p + f"self_attn.{t}_proj.bias"]).reshape(n, heads, D).transpose(1, 0, 2)
        q, k, v = rope(proj("q", H), pos), rope(proj("k", KV), pos), proj("v", KV)
        k, v = np.repeat(k, H // KV, 0), np.repeat(v, H // KV, 0)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(D) + mask
        s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
        x = x + (s @ v).transpose(1, 0, 2).reshape(n, H * D) @ W[p + "self_attn.o_proj.weight"].T
        hdn = rms(x, W[p + "post_attention_layernorm.weight"])
        g = hdn @ W[p + "mlp.gate_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * (hdn @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    return rms(x, W["model.norm.weight"]) @ W["model.embed_tokens.weight"].T

def top8(row):
    i = np.argsort(-row)[:8]; return [[int(j), round(float(row[j]), 5)] for j in i]

ref = {"config": cfg, "prompts": []}
hf = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
for text in ["소버린 AI는", "The quick brown fox", "def main():", "<|im_start|>user\n안녕하세요<|im_end|>\n"]:
    ids = hf.encode(text, add_special_tokens=False).ids
    logits = forward(ids)
    seq, cur = [], list(ids)
    for _ in range(16):
        t = int(np.argmax(forward(cur)[-1])); seq.append(t); cur.append(t)
    ref["prompts"].append({"text": text, "ids": ids, "top8": [top8(row) for row in logits],
                           "last_row": [round(float(x), 5) for x in logits[-1]], "greedy": seq})
json.dump(ref, open(os.path.join(out, "reference.json"), "w"), ensure_ascii=False)
print(out, "spread", round(float(np.ptp(ref["prompts"][0]["last_row"])), 3))

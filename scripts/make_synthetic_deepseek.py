#!/usr/bin/env python3
"""A random-weight DeepSeek-V3-shaped GGUF of a chosen size, for speed comparisons only
(jikji bench vs llama-bench on the same file; the weights are noise, the outputs meaningless).

  scripts/make_synthetic_deepseek.py OUT.gguf [--layers 6] [--embd 1024] [--experts 32] [--type Q8_0]

Shapes follow DeepSeek V3's ratios at a smaller width: MLA with q_lora_rank 384,
kv_lora_rank 512, rope dims 64, nope 128, v 128 per head; routed experts top-8 in 8 groups
(top-4 groups), sigmoid gating with `exp_probs_b`, 1 shared expert, first layer dense, YaRN.
Written with llama.cpp's gguf-py (LLAMA_CPP_VENDOR as in make_tiny_exaone.py); matrices in
--type (Q8_0 or F16), norms and the router in F32. Never commit the output.
"""
import argparse, os, sys
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("out"); ap.add_argument("--layers", type=int, default=6); ap.add_argument("--embd", type=int, default=1024)
ap.add_argument("--experts", type=int, default=32); ap.add_argument("--type", default="Q8_0"); ap.add_argument("--vocab", type=int, default=32000)
a = ap.parse_args()
vendor = os.environ.get("LLAMA_CPP_VENDOR", os.path.expanduser("~/.cache/jikji/llama.cpp-0.3.36/src/vendor/llama.cpp"))
sys.path.insert(0, vendor + "/gguf-py")
import gguf  # noqa: E402

E, L, NE, V = a.embd, a.layers, a.experts, a.vocab
H, QL, KL, R, NOPE, DV = E // 64, 384, 512, 64, 128, 128
FF, FFE, USED, G, GU = 4 * E, E // 2, 8, 8, 4
qt = {"Q8_0": gguf.GGMLQuantizationType.Q8_0, "F16": gguf.GGMLQuantizationType.F16}[a.type]
rng = np.random.default_rng(0)
w = gguf.GGUFWriter(a.out, "deepseek2")
w.add_type(gguf.GGUFType.MODEL); w.add_name("synthetic-deepseek-v3")
for k, v in [("block_count", L), ("context_length", 4096), ("embedding_length", E), ("feed_forward_length", FF),
             ("attention.head_count", H), ("attention.head_count_kv", 1), ("attention.key_length", KL + R),
             ("attention.value_length", KL), ("attention.key_length_mla", NOPE + R), ("attention.value_length_mla", DV),
             ("attention.q_lora_rank", QL), ("attention.kv_lora_rank", KL), ("rope.dimension_count", R),
             ("leading_dense_block_count", 1), ("expert_count", NE), ("expert_used_count", USED),
             ("expert_group_count", G), ("expert_group_used_count", GU), ("expert_gating_func", 2),
             ("expert_feed_forward_length", FFE), ("expert_shared_count", 1), ("rope.scaling.original_context_length", 1024)]:
    w.add_uint32(f"deepseek2.{k}", v)
for k, v in [("rope.freq_base", 10000.0), ("attention.layer_norm_rms_epsilon", 1e-6), ("expert_weights_scale", 2.5),
             ("rope.scaling.factor", 4.0), ("rope.scaling.yarn_beta_fast", 32.0), ("rope.scaling.yarn_beta_slow", 1.0),
             ("rope.scaling.yarn_log_multiplier", 0.1)]:
    w.add_float32(f"deepseek2.{k}", v)
w.add_string("deepseek2.rope.scaling.type", "yarn"); w.add_bool("deepseek2.expert_weights_norm", True)
# The toy BPE vocabulary of the tiny fixtures, padded with unused tokens up to --vocab.
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
tok = gguf.GGUFReader(os.path.join(root, "tests/fixtures/tiny/deepseek_v3-1.gguf"))
tokens = tok.fields["tokenizer.ggml.tokens"].contents()
merges = tok.fields["tokenizer.ggml.merges"].contents()
tokens += [f"<pad_{i}>" for i in range(V - len(tokens))]
w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("gpt-2")
w.add_token_list(tokens); w.add_token_types([1] * V); w.add_token_merges(merges)
w.add_bos_token_id(0); w.add_eos_token_id(1)

def mat(name, shape, scale=0.05, f32=False):
    x = (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)  # numpy shape = reversed ggml dims
    if f32:
        w.add_tensor(name, x)
    else:
        w.add_tensor(name, gguf.quants.quantize(x, qt), raw_dtype=qt)

def norm(name, n):
    w.add_tensor(name, np.ones(n, dtype=np.float32))

mat("token_embd.weight", (V, E)); norm("output_norm.weight", E); mat("output.weight", (V, E))
for i in range(L):
    b = f"blk.{i}."
    norm(b + "attn_norm.weight", E); norm(b + "ffn_norm.weight", E)
    mat(b + "attn_q_a.weight", (QL, E)); norm(b + "attn_q_a_norm.weight", QL); mat(b + "attn_q_b.weight", (H * (NOPE + R), QL))
    mat(b + "attn_kv_a_mqa.weight", (KL + R, E)); norm(b + "attn_kv_a_norm.weight", KL)
    mat(b + "attn_k_b.weight", (H, KL, NOPE), f32=a.type != "F16"); mat(b + "attn_v_b.weight", (H, DV, KL))
    mat(b + "attn_output.weight", (E, H * DV))
    if i == 0:
        mat(b + "ffn_gate.weight", (FF, E)); mat(b + "ffn_up.weight", (FF, E)); mat(b + "ffn_down.weight", (E, FF))
    else:
        mat(b + "ffn_gate_inp.weight", (NE, E), f32=True); w.add_tensor(b + "exp_probs_b.bias", np.zeros(NE, dtype=np.float32))
        mat(b + "ffn_gate_exps.weight", (NE, FFE, E)); mat(b + "ffn_up_exps.weight", (NE, FFE, E)); mat(b + "ffn_down_exps.weight", (NE, E, FFE))
        mat(b + "ffn_gate_shexp.weight", (FFE, E)); mat(b + "ffn_up_shexp.weight", (FFE, E)); mat(b + "ffn_down_shexp.weight", (E, FFE))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
print(a.out, os.path.getsize(a.out) // (1 << 20), "MiB")

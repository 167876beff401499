#!/usr/bin/env python3
"""Writes the qdiff fixtures in Fixtures/diff and the expected classification and metrics.

old/  a tiny llama-style model (4 layers, F32 with one F16 tensor) and its config.json
new/  the same model with: two tensors perturbed (one F32, one F16), one removed, one added,
      one renamed by prefix, one dtype change (F32 -> F16), one shape change (vocabulary
      32 -> 40), layers 2 and 3 swapped, and rope_theta and vocab_size changed in config.json
near.safetensors  old/model.safetensors with one tensor perturbed by about 1e-4 relative
layers-old/, layers-new/  layer similarity: a 5-layer model (hidden 32, 4 heads, 2 KV heads) and
      the same model with layer 2 removed and, in old layer 3 (new layer 2), the query heads
      permuted as [3, 2, 0, 1] (key/value heads as [1, 0], the grouping kept); both share one
      tokenizer.json
transfer-old/, transfer-new/  two 2-layer models of hidden sizes 16 and 24 whose tokenizer.json
      vocabularies share 40 tokens under different ids
layers.expected.json  the layer and head maps by construction, and numpy's lstsq transfer matrix
      between the transfer models' shared-token embeddings

expected.json holds, for old vs new and old vs near, every tensor's status and, for pairs
of the same shape, numpy's float64 relative L2, cosine, max |a-b| and SNR in dB.

Usage: python3 Fixtures/make_diff_fixtures.py   (numpy, safetensors)
"""
import json
import os

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diff")
rng = np.random.default_rng(20261127)

H, I, KV, LAYERS, VOCAB = 16, 32, 8, 4, 32


def model(vocab):
    t = {"model.embed_tokens.weight": rng.standard_normal((vocab, H)).astype(np.float32)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = (1 + 0.1 * rng.standard_normal(H)).astype(np.float32)
        t[p + "self_attn.q_proj.weight"] = rng.standard_normal((H, H)).astype(np.float32)
        t[p + "self_attn.k_proj.weight"] = rng.standard_normal((KV, H)).astype(np.float32)
        t[p + "self_attn.v_proj.weight"] = rng.standard_normal((KV, H)).astype(np.float32)
        t[p + "self_attn.o_proj.weight"] = rng.standard_normal((H, H)).astype(np.float32)
        t[p + "mlp.gate_proj.weight"] = rng.standard_normal((I, H)).astype(np.float32)
        t[p + "mlp.up_proj.weight"] = rng.standard_normal((I, H)).astype(np.float16)
        t[p + "mlp.down_proj.weight"] = rng.standard_normal((H, I)).astype(np.float32)
        t[p + "post_attention_layernorm.weight"] = (1 + 0.1 * rng.standard_normal(H)).astype(np.float32)
    t["model.norm.weight"] = (1 + 0.1 * rng.standard_normal(H)).astype(np.float32)
    return t


def config(vocab, theta):
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H,
        "intermediate_size": I, "num_hidden_layers": LAYERS, "num_attention_heads": 2,
        "num_key_value_heads": 1, "head_dim": 8, "rope_theta": theta, "vocab_size": vocab,
        "tie_word_embeddings": True, "torch_dtype": "float32",
    }


def metrics(a, b):
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    d = a - b
    dd, aa, bb = float(d @ d), float(a @ a), float(b @ b)
    return {
        "relative_l2": 0.0 if dd == 0 else float(np.sqrt(dd / aa)),
        "cosine": float(a @ b / (np.sqrt(aa) * np.sqrt(bb))),
        "max_abs_diff": float(np.max(np.abs(d))) if d.size else 0.0,
        "snr_db": None if dd == 0 else float(10 * np.log10(aa / dd)),
    }


def write(folder, tensors, cfg):
    os.makedirs(folder, exist_ok=True)
    save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


old = model(VOCAB)
write(os.path.join(HERE, "old"), old, config(VOCAB, 10000.0))

new = {}
entries = []  # (old name, new name, status, renamed_by)
for name, value in old.items():
    new[name] = value.copy()
perturbed = ["model.layers.0.mlp.down_proj.weight", "model.layers.0.mlp.up_proj.weight"]
for name in perturbed:
    noise = (0.05 * rng.standard_normal(old[name].shape)).astype(old[name].dtype)
    new[name] = (old[name] + noise).astype(old[name].dtype)
removed = "model.layers.1.self_attn.v_proj.weight"
del new[removed]
added = "model.rotary_emb.inv_freq"
new[added] = (1.0 / 10000 ** (np.arange(0, 8, 2) / 8)).astype(np.float32)
renamed_old, renamed_new = "model.norm.weight", "language_model.model.norm.weight"
new[renamed_new] = new.pop(renamed_old)
dtype_changed = "model.layers.0.input_layernorm.weight"
new[dtype_changed] = old[dtype_changed].astype(np.float16)
shape_changed = "model.embed_tokens.weight"
new[shape_changed] = np.concatenate(
    [old[shape_changed], rng.standard_normal((8, H)).astype(np.float32)])
# Swap layers 2 and 3.
for name in list(new):
    if name.startswith("model.layers.2.") or name.startswith("model.layers.3."):
        pass
swapped = {}
for name, value in new.items():
    if name.startswith("model.layers.2."):
        swapped["model.layers.3." + name[len("model.layers.2."):]] = value
    elif name.startswith("model.layers.3."):
        swapped["model.layers.2." + name[len("model.layers.3."):]] = value
    else:
        swapped[name] = value
new = swapped
write(os.path.join(HERE, "new"), new, config(40, 500000.0))

expected_tensors = []
for name, a in old.items():
    if name == removed:
        expected_tensors.append({"old_name": name, "status": "removed"})
        continue
    if name == renamed_old:
        e = {"old_name": name, "new_name": renamed_new, "status": "renamed", "renamed_by": "prefix"}
        e.update(metrics(a, new[renamed_new]))
        expected_tensors.append(e)
        continue
    if name.startswith("model.layers.2.") or name.startswith("model.layers.3."):
        other = "3" if name.startswith("model.layers.2.") else "2"
        target = "model.layers." + other + name[len("model.layers.2"):]
        e = {"old_name": name, "new_name": target, "status": "renamed",
             "renamed_by": "layer-renumbering"}
        e.update(metrics(a, new[target]))
        expected_tensors.append(e)
        continue
    b = new[name]
    if a.shape != b.shape:
        expected_tensors.append({"old_name": name, "new_name": name, "status": "shape-changed"})
        continue
    status = "dtype-changed" if a.dtype != b.dtype else (
        "equal" if a.tobytes() == b.tobytes() else "changed")
    e = {"old_name": name, "new_name": name, "status": status}
    e.update(metrics(a, b))
    expected_tensors.append(e)
expected_tensors.append({"new_name": added, "status": "added"})

near = {name: value.copy() for name, value in old.items()}
near_name = "model.layers.1.self_attn.q_proj.weight"
near[near_name] = (old[near_name] * (1 + 1e-4 * rng.standard_normal(old[near_name].shape))).astype(np.float32)
save_file(near, os.path.join(HERE, "near.safetensors"), metadata={"format": "pt"})
near_metrics = metrics(old[near_name], near[near_name])

expected = {
    "old_vs_new": {
        "tensors": expected_tensors,
        "layer_moves": [{"stack": "model.layers", "old": 2, "new": 3},
                        {"stack": "model.layers", "old": 3, "new": 2}],
        "config_fields": ["vocab_size", "rope_theta"],
    },
    "old_vs_near": {"tensor": near_name, **near_metrics},
}
with open(os.path.join(HERE, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1, sort_keys=True)
    f.write("\n")


# ---- Layer similarity fixtures ----------------------------------------------------------------


def tokenizer(tokens):
    """A minimal byte-level BPE tokenizer.json: a vocabulary and no merges."""
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": []},
    }


def decoder(hidden, heads, kv, head_dim, layers, inter, vocab):
    t = {"model.embed_tokens.weight": rng.standard_normal((vocab, hidden)).astype(np.float32)}
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = np.ones(hidden, np.float32)
        t[p + "self_attn.q_proj.weight"] = rng.standard_normal((heads * head_dim, hidden))
        t[p + "self_attn.k_proj.weight"] = rng.standard_normal((kv * head_dim, hidden))
        t[p + "self_attn.v_proj.weight"] = rng.standard_normal((kv * head_dim, hidden))
        t[p + "self_attn.o_proj.weight"] = rng.standard_normal((hidden, heads * head_dim))
        t[p + "mlp.gate_proj.weight"] = rng.standard_normal((inter, hidden))
        t[p + "mlp.up_proj.weight"] = rng.standard_normal((inter, hidden))
        t[p + "mlp.down_proj.weight"] = rng.standard_normal((hidden, inter))
        t[p + "post_attention_layernorm.weight"] = np.ones(hidden, np.float32)
    t["model.norm.weight"] = np.ones(hidden, np.float32)
    return {k: v.astype(np.float32) for k, v in t.items()}


def decoder_config(hidden, heads, kv, head_dim, layers, inter, vocab):
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
        "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "head_dim": head_dim, "rope_theta": 10000.0,
        "vocab_size": vocab, "tie_word_embeddings": True, "torch_dtype": "float16",
    }


def write_decoder(folder, tensors, cfg, tokens):
    os.makedirs(folder, exist_ok=True)
    half = {k: np.ascontiguousarray(v.astype(np.float16)) for k, v in tensors.items()}
    save_file(half, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tokenizer(tokens), f, indent=1, ensure_ascii=False)
        f.write("\n")
    return {k: v.astype(np.float32) for k, v in half.items()}


# 1. One layer removed, heads permuted in one layer.
LH, LHEADS, LKV, LDIM, LLAYERS, LINTER, LVOCAB = 32, 4, 2, 8, 5, 48, 48
layer_tokens = [f"t{i}" for i in range(LVOCAB)]
old_layers = decoder(LH, LHEADS, LKV, LDIM, LLAYERS, LINTER, LVOCAB)
write_decoder(os.path.join(HERE, "layers-old"), old_layers,
              decoder_config(LH, LHEADS, LKV, LDIM, LLAYERS, LINTER, LVOCAB), layer_tokens)
REMOVED_LAYER = 2
PERMUTED_OLD_LAYER = 3
query_permutation = [3, 2, 0, 1]  # new head j is old head query_permutation[j]
kv_permutation = [1, 0]           # new kv head g is old kv head kv_permutation[g]
group = LHEADS // LKV
assert all(query_permutation[j] // group == kv_permutation[j // group] for j in range(LHEADS))
new_layers = {}
new_to_old_layers = [i for i in range(LLAYERS) if i != REMOVED_LAYER]
for name, value in old_layers.items():
    if not name.startswith("model.layers."):
        new_layers[name] = value
for new_index, old_index in enumerate(new_to_old_layers):
    prefix = f"model.layers.{old_index}."
    for name, value in old_layers.items():
        if not name.startswith(prefix):
            continue
        member = name[len(prefix):]
        value = value.copy()
        if old_index == PERMUTED_OLD_LAYER:
            rows_q = np.concatenate([np.arange(h * LDIM, (h + 1) * LDIM) for h in query_permutation])
            rows_kv = np.concatenate([np.arange(g * LDIM, (g + 1) * LDIM) for g in kv_permutation])
            if member == "self_attn.q_proj.weight":
                value = value[rows_q]
            elif member in ("self_attn.k_proj.weight", "self_attn.v_proj.weight"):
                value = value[rows_kv]
            elif member == "self_attn.o_proj.weight":
                value = value[:, rows_q]
        new_layers[f"model.layers.{new_index}.{member}"] = value
write_decoder(os.path.join(HERE, "layers-new"), new_layers,
              decoder_config(LH, LHEADS, LKV, LDIM, LLAYERS - 1, LINTER, LVOCAB), layer_tokens)

# 2. Different hidden sizes, tokenizers sharing 40 tokens under different ids.
shared = [f"s{i}" for i in range(40)]
old_tokens = shared[:20] + [f"a{i}" for i in range(8)] + shared[20:]
new_tokens = [f"b{i}" for i in range(6)] + list(reversed(shared)) + [f"c{i}" for i in range(10)]
transfer_old = decoder(16, 2, 1, 8, 2, 24, len(old_tokens))
transfer_new = decoder(24, 3, 1, 8, 3, 32, len(new_tokens))
stored_old = write_decoder(os.path.join(HERE, "transfer-old"), transfer_old,
                           decoder_config(16, 2, 1, 8, 2, 24, len(old_tokens)), old_tokens)
stored_new = write_decoder(os.path.join(HERE, "transfer-new"), transfer_new,
                           decoder_config(24, 3, 1, 8, 3, 32, len(new_tokens)), new_tokens)
old_ids = {t: i for i, t in enumerate(old_tokens)}
new_ids = {t: i for i, t in enumerate(new_tokens)}
common = sorted(set(old_ids) & set(new_ids))
a = stored_old["model.embed_tokens.weight"].astype(np.float64)[[old_ids[t] for t in common]]
b = stored_new["model.embed_tokens.weight"].astype(np.float64)[[new_ids[t] for t in common]]
transfer, *_ = np.linalg.lstsq(a, b, rcond=None)

layers_expected = {
    "layers": {
        "new_to_old": new_to_old_layers,
        "old_layers": LLAYERS, "new_layers": LLAYERS - 1,
        "permuted_pair": {"old_layer": PERMUTED_OLD_LAYER,
                          "new_layer": new_to_old_layers.index(PERMUTED_OLD_LAYER),
                          "new_to_old_heads": query_permutation},
    },
    "transfer": {
        "shared_tokens": len(common), "rows": 16, "columns": 24,
        "matrix": [[float(x) for x in row] for row in transfer],
    },
}
with open(os.path.join(HERE, "layers.expected.json"), "w") as f:
    json.dump(layers_expected, f, indent=1, sort_keys=True)
    f.write("\n")

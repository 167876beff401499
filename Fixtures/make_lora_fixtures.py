"""Fixtures for lora-rebase tests.

- tiny-adapter/: a random PEFT LoRA adapter (r=4, alpha=8) on every linear module of
  Fixtures/tiny-llama, in PEFT's saved key layout.
- llama3-adapter/: the same on Fixtures/families/llama3, the Llama-shaped source moved onto other
  families.
- qwen3-head16/: a random Qwen3 (transformers' init, float16) whose heads differ from the
  llama3 fixture's: 2 heads of 16 (not 4 of 8), 1 kv head, intermediate 40 and 3 layers.
- transforms.safetensors + transforms.json: random matrices and the LoRASuite transforms written
  out from the paper's formulas in numpy (independent of the Swift code), for both head maps.
Run from the repository root: python3 Fixtures/make_lora_fixtures.py
"""
import json, os
import numpy as np
from safetensors.numpy import save_file

root = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(root, "lora")
rng = np.random.default_rng(7)

# --- tiny adapter on tiny-llama (hidden 64, inter 128, 2 layers, 4 heads, 2 kv heads, head_dim 16)
r, alpha = 4, 8
shapes = {"self_attn.q_proj": (64, 64), "self_attn.k_proj": (32, 64), "self_attn.v_proj": (32, 64),
          "self_attn.o_proj": (64, 64), "mlp.gate_proj": (128, 64), "mlp.up_proj": (128, 64),
          "mlp.down_proj": (64, 128)}
tensors = {}
for layer in range(2):
    for module, (o, i) in shapes.items():
        base = f"base_model.model.model.layers.{layer}.{module}"
        tensors[base + ".lora_A.weight"] = (rng.standard_normal((r, i)) * 0.1).astype(np.float32)
        tensors[base + ".lora_B.weight"] = (rng.standard_normal((o, r)) * 0.1).astype(np.float32)
adapter = os.path.join(out, "tiny-adapter")
os.makedirs(adapter, exist_ok=True)
save_file(tensors, os.path.join(adapter, "adapter_model.safetensors"), metadata={"format": "pt"})
config = {"base_model_name_or_path": "tiny-llama", "bias": "none", "fan_in_fan_out": False,
          "inference_mode": True, "init_lora_weights": True, "layers_to_transform": None,
          "lora_alpha": alpha, "lora_dropout": 0.0, "modules_to_save": None, "peft_type": "LORA",
          "r": r, "rank_pattern": {}, "alpha_pattern": {}, "revision": None,
          "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
          "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False}
with open(os.path.join(adapter, "adapter_config.json"), "w") as f:
    json.dump(config, f, indent=2, sort_keys=True)

# --- transforms on random matrices (float64 maths, stored as float32 inputs)
def f32(x): return x.astype(np.float32).astype(np.float64)
do, dn, dho, dhn, hq_o, hq_n, kv_o, kv_n, rank = 12, 10, 3, 2, 4, 5, 2, 5, 3
io, inn = 20, 16
m = {}
m["Wx"] = f32(rng.standard_normal((do, dn)) * 0.5)
m["q_old"] = f32(rng.standard_normal((hq_o * dho, do)))
m["q_new"] = f32(rng.standard_normal((hq_n * dhn, dn)))
m["k_old"] = f32(rng.standard_normal((kv_o * dho, do)))
m["k_new"] = f32(rng.standard_normal((kv_n * dhn, dn)))
m["o_old"] = f32(rng.standard_normal((do, hq_o * dho)))
m["o_new"] = f32(rng.standard_normal((dn, hq_n * dhn)))
m["up_old"] = f32(rng.standard_normal((io, do)))
m["up_new"] = f32(rng.standard_normal((inn, dn)))
m["down_old"] = f32(rng.standard_normal((do, io)))
m["down_new"] = f32(rng.standard_normal((dn, inn)))
for name, (o, i) in {"q": (hq_o * dho, do), "k": (kv_o * dho, do), "o": (do, hq_o * dho),
                     "up": (io, do), "down": (do, io)}.items():
    m[name + "_A"] = f32(rng.standard_normal((rank, i)))
    m[name + "_B"] = f32(rng.standard_normal((o, rank)))
new_to_old = [2, None, 0, 3, 1]  # new query head -> old query head

def rows(w, h, d): return w[h * d:(h + 1) * d]
def delta(n): return m[n + "_B"] @ m[n + "_A"]

def row_blocks(name, rep_o, rep_n, normalized):
    wo, wn, dW, Wx = m[name + "_old"], m[name + "_new"], delta(name), m["Wx"]
    blocks = wn.shape[0] // dhn
    out = np.zeros((wn.shape[0], Wx.shape[1]))
    for g in range(blocks):
        acc = np.zeros((dhn, Wx.shape[1]))
        for rep in range(rep_n):
            a = new_to_old[g * rep_n + rep]
            if a is None: continue
            ob = a // rep_o
            Wa, Wb = rows(wo, ob, dho), rows(wn, g, dhn)
            Tt = Wb @ Wx.T @ (np.linalg.pinv(Wa) if normalized else Wa.T)  # T_ab^T
            acc += Tt @ rows(dW, ob, dho) @ Wx
        out[g * dhn:(g + 1) * dhn] = acc / rep_n
    return out

def column_blocks(normalized):
    wo, wn, dW, Wx = m["o_old"], m["o_new"], delta("o"), m["Wx"]
    out = np.zeros((dn, wn.shape[1]))
    for b, a in enumerate(new_to_old):
        if a is None: continue
        Wa, Wb = wo[:, a * dho:(a + 1) * dho], wn[:, b * dhn:(b + 1) * dhn]
        T = (np.linalg.pinv(Wa) if normalized else Wa.T) @ Wx @ Wb
        out[:, b * dhn:(b + 1) * dhn] = Wx.T @ dW[:, a * dho:(a + 1) * dho] @ T
    return out

pinv = np.linalg.pinv
Wx = m["Wx"]
expected = {
    "q_paper": row_blocks("q", 1, 1, False), "q_normalized": row_blocks("q", 1, 1, True),
    "k_paper": row_blocks("k", hq_o // kv_o, hq_n // kv_n, False),
    "k_normalized": row_blocks("k", hq_o // kv_o, hq_n // kv_n, True),
    "o_paper": column_blocks(False), "o_normalized": column_blocks(True),
    # up: B_n = W_n pinv(W_x) pinv(W_o) B_o, A_n = A_o W_x
    "up_paper": (m["up_new"] @ pinv(Wx) @ pinv(m["up_old"]) @ m["up_B"]) @ (m["up_A"] @ Wx),
    # down: B_n = pinv(W_x) B_o, A_n = A_o pinv(W_o) W_x W_n
    "down_paper": (pinv(Wx) @ m["down_B"]) @ (m["down_A"] @ pinv(m["down_old"]) @ Wx @ m["down_new"]),
}
# hidden transfer: W_x = pinv(E_o) E_n
m["E_old"] = f32(rng.standard_normal((40, do)))
m["E_new"] = f32(rng.standard_normal((40, dn)))
expected["Wx_fit"] = pinv(m["E_old"]) @ m["E_new"]
save_file({k: v.astype(np.float32) for k, v in m.items()}, os.path.join(out, "transforms.safetensors"))
meta = {"headDim": [dho, dhn], "heads": [hq_o, hq_n], "kvHeads": [kv_o, kv_n], "rank": rank,
        "newToOld": new_to_old,
        "expected": {k: {"shape": list(v.shape), "values": v.reshape(-1).tolist()} for k, v in expected.items()}}
with open(os.path.join(out, "transforms.json"), "w") as f:
    json.dump(meta, f)

# --- llama3-adapter/: a random PEFT adapter (r=4, alpha=8) on every linear module of
# Fixtures/families/llama3 (hidden 32, inter 48, 2 layers, 4 heads, 2 kv heads, head_dim 8), the
# Llama-shaped source that lora-rebase moves onto the Qwen3 and Gemma 3 text fixtures.
family_rng = np.random.default_rng(11)
family_shapes = {"self_attn.q_proj": (32, 32), "self_attn.k_proj": (16, 32), "self_attn.v_proj": (16, 32),
                 "self_attn.o_proj": (32, 32), "mlp.gate_proj": (48, 32), "mlp.up_proj": (48, 32),
                 "mlp.down_proj": (32, 48)}
family_tensors = {}
for layer in range(2):
    for module, (o, i) in family_shapes.items():
        base = f"base_model.model.model.layers.{layer}.{module}"
        family_tensors[base + ".lora_A.weight"] = (family_rng.standard_normal((r, i)) * 0.1).astype(np.float32)
        family_tensors[base + ".lora_B.weight"] = (family_rng.standard_normal((o, r)) * 0.1).astype(np.float32)
family_adapter = os.path.join(out, "llama3-adapter")
os.makedirs(family_adapter, exist_ok=True)
save_file(family_tensors, os.path.join(family_adapter, "adapter_model.safetensors"), metadata={"format": "pt"})
with open(os.path.join(family_adapter, "adapter_config.json"), "w") as f:
    json.dump(dict(config, base_model_name_or_path="families/llama3"), f, indent=2, sort_keys=True)

# --- qwen3-head16/: a new base whose head layout, MLP width and depth differ from the source's.
import torch, transformers
torch.manual_seed(5)
wide = transformers.Qwen3Config(
    vocab_size=256, hidden_size=32, intermediate_size=40, num_hidden_layers=3, num_attention_heads=2,
    num_key_value_heads=1, head_dim=16, max_position_embeddings=64, tie_word_embeddings=True)
wide_folder = os.path.join(out, "qwen3-head16")
transformers.Qwen3ForCausalLM(wide).to(torch.float16).save_pretrained(wide_folder)
generation = os.path.join(wide_folder, "generation_config.json")
if os.path.exists(generation): os.remove(generation)

#!/usr/bin/env python3
"""Writes Fixtures/llm/: tiny decoder models and the logits a numpy reference computes for them.

The reference is `np_llm.py` from ../shared/models/tools (an independent numpy forward pass),
extended here with the `rope_scaling` forms it lacks (linear, dynamic, llama3, following
transformers' `modeling_rope_utils`). Models:
- tiny-qwen2/: Qwen2 layout with q/k/v biases, tied embeddings, F32.
- tiny-llama3/: Llama 3 rope scaling (factor 8, short original context so it matters), untied
  lm_head, BF16.
- ../tiny-llama/ (made by make_tiny_models.py) as is, and with linear and dynamic scaling configs.
expected.json holds, per case: the config file, the token ids, the logits (row-major), the mean
NLL and perplexity of the token ids in windows, and 6 greedy tokens from a prompt.
Run: PYTHONPATH=~/.cache/qtoolchain-models/py python3 Fixtures/make_llm_fixtures.py
"""
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "llm")
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "models", "tools"))
sys.path.insert(0, "/work/shared/models/tools")
import np_llm  # noqa: E402


def inverse_frequencies(cfg, head_dim, length):
    theta = cfg.get("rope_theta", 10000.0)
    scaling = cfg.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    base = theta
    if kind == "dynamic":
        original = scaling.get("original_max_position_embeddings", cfg["max_position_embeddings"])
        factor = scaling["factor"]
        if length > original:
            base = theta * ((factor * length / original) - (factor - 1)) ** (head_dim / (head_dim - 2))
    inv = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    if kind == "linear":
        inv = inv / scaling["factor"]
    elif kind == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        original = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > original / low, inv / factor, inv)
        smooth = (original / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < original / high) & ~(wavelen > original / low)
        inv = np.where(medium, smoothed, scaled)
    return inv


class ScaledModel(np_llm.Model):
    """np_llm's model with rope_scaling; the config may come from a separate file."""

    def __init__(self, folder, config_path=None):
        super().__init__(folder)
        if config_path:
            self.cfg = json.load(open(config_path))

    def forward(self, ids):
        self.length = len(ids)
        return super().forward(ids)

    def rope(self, x, pos, theta):
        hd = x.shape[-1]
        inv = inverse_frequencies(self.cfg, hd, self.length)
        ang = np.outer(pos, inv)
        cos = np.cos(np.concatenate([ang, ang], -1)).astype(np.float32)
        sin = np.sin(np.concatenate([ang, ang], -1)).astype(np.float32)
        x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
        return x * cos + np.concatenate([-x2, x1], -1) * sin


def write_model(folder, cfg, rng, biases, tied, dtype, scale):
    os.makedirs(folder, exist_ok=True)
    h, nh, nkv, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    inter, vocab = cfg["intermediate_size"], cfg["vocab_size"]

    def w(*shape):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    t = {"model.embed_tokens.weight": w(vocab, h), "model.norm.weight": 1 + w(h)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = w(nh * hd, h)
        t[p + "self_attn.k_proj.weight"] = w(nkv * hd, h)
        t[p + "self_attn.v_proj.weight"] = w(nkv * hd, h)
        t[p + "self_attn.o_proj.weight"] = w(h, nh * hd)
        if biases:
            t[p + "self_attn.q_proj.bias"] = w(nh * hd)
            t[p + "self_attn.k_proj.bias"] = w(nkv * hd)
            t[p + "self_attn.v_proj.bias"] = w(nkv * hd)
        t[p + "mlp.gate_proj.weight"] = w(inter, h)
        t[p + "mlp.up_proj.weight"] = w(inter, h)
        t[p + "mlp.down_proj.weight"] = w(h, inter)
        t[p + "input_layernorm.weight"] = 1 + w(h)
        t[p + "post_attention_layernorm.weight"] = 1 + w(h)
    if not tied:
        t["lm_head.weight"] = w(vocab, h)
    if dtype == "bf16":
        # Round to BF16 and store as BF16 bits: safetensors.numpy has no bfloat16, so write by hand.
        raw = {}
        for k, v in t.items():
            bits = v.view(np.uint32)
            rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
            raw[k] = rounded
        write_bf16(os.path.join(folder, "model.safetensors"), raw)
    else:
        save_file(t, os.path.join(folder, "model.safetensors"))
    json.dump(cfg, open(os.path.join(folder, "config.json"), "w"), indent=2)


def write_bf16(path, tensors):
    header, offset, blobs = {}, 0, []
    for k in sorted(tensors):
        b = tensors[k].tobytes()
        header[k] = {"dtype": "BF16", "shape": list(tensors[k].shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)


def perplexity(model, ids, context):
    nll, count = 0.0, 0
    for start in range(0, len(ids), context):
        chunk = ids[start:start + context]
        if len(chunk) < 2:
            break
        lg = model.forward(chunk[:-1]).astype(np.float64)
        lg -= lg.max(-1, keepdims=True)
        lp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
        tgt = np.array(chunk[1:])
        nll -= lp[np.arange(len(tgt)), tgt].sum()
        count += len(tgt)
    return nll / count, count


def greedy(model, prompt, n):
    ids = list(prompt)
    for _ in range(n):
        ids.append(int(np.argmax(model.forward(ids)[-1])))
    return ids[len(prompt):]


def case(name, folder, config_path, rng, vocab, length=12, context=5):
    model = ScaledModel(folder, config_path)
    ids = [int(i) for i in rng.integers(0, vocab, size=length)]
    logits = model.forward(ids).astype(np.float32)
    nll, count = perplexity(model, ids, context)
    prompt = ids[:4]
    return {
        "name": name,
        "folder": os.path.relpath(folder, HERE),
        "config": os.path.relpath(config_path or os.path.join(folder, "config.json"), HERE),
        "tokens": ids,
        "logits": [float(v) for v in logits.reshape(-1)],
        "context": context,
        "mean_nll": nll,
        "scored": count,
        "prompt": prompt,
        "generated": greedy(model, prompt, 6),
    }


def main():
    rng = np.random.default_rng(20240611)
    base = {"hidden_act": "silu", "rms_norm_eps": 1e-6, "max_position_embeddings": 64}
    qwen = dict(base, architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=32,
                intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                head_dim=8, rope_theta=1000000.0, vocab_size=96, tie_word_embeddings=True, torch_dtype="float32")
    write_model(os.path.join(OUT, "tiny-qwen2"), qwen, rng, biases=True, tied=True, dtype="f32", scale=0.3)
    llama3 = dict(base, architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=32,
                  intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                  head_dim=16, rope_theta=500000.0, vocab_size=80, tie_word_embeddings=False,
                  torch_dtype="bfloat16",
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 16})
    write_model(os.path.join(OUT, "tiny-llama3"), llama3, rng, biases=False, tied=False, dtype="bf16", scale=0.3)

    tiny = os.path.join(HERE, "tiny-llama")
    tiny_cfg = json.load(open(os.path.join(tiny, "config.json")))
    linear = dict(tiny_cfg, rope_scaling={"type": "linear", "factor": 2.0})
    json.dump(linear, open(os.path.join(OUT, "tiny-llama-linear.config.json"), "w"), indent=2)
    dynamic = dict(tiny_cfg, max_position_embeddings=8, rope_scaling={"type": "dynamic", "factor": 2.0})
    json.dump(dynamic, open(os.path.join(OUT, "tiny-llama-dynamic.config.json"), "w"), indent=2)

    cases = [
        case("tiny-llama", tiny, None, rng, 256),
        case("tiny-llama-linear", tiny, os.path.join(OUT, "tiny-llama-linear.config.json"), rng, 256),
        case("tiny-llama-dynamic", tiny, os.path.join(OUT, "tiny-llama-dynamic.config.json"), rng, 256),
        case("tiny-qwen2", os.path.join(OUT, "tiny-qwen2"), None, rng, 96, length=20, context=7),
        case("tiny-llama3", os.path.join(OUT, "tiny-llama3"), None, rng, 80, length=40, context=40),
    ]
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"cases": cases}, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()

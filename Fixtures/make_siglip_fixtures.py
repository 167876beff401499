#!/usr/bin/env python3
"""Fixtures for the SigLIP vision tower, beside the DINOv2 and CLIP ones.

vision/tiny-siglip/: a tiny random SigLIP vision tower (safetensors + config.json: no class
  token, biased patch embedding, tanh GELU, post-layer norm) and
vision/siglip-expected.safetensors: a pixel tensor ('siglip.pixels'), every hidden state of a
  float64 numpy forward pass ('siglip.hidden', [layers + 1, tokens, hidden]) and the last hidden
  state after the post-layer norm ('siglip.last').

usage: python3 Fixtures/make_siglip_fixtures.py   (needs numpy, safetensors, pillow)
"""
import os

import numpy as np
from safetensors.numpy import save_file

from make_vision_fixtures import VISION, attention, layer_norm, patchify, write_model


def gelu_tanh(x):
    """PyTorch's gelu(approximate='tanh'), what 'gelu_pytorch_tanh' names."""
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def siglip_forward(W, cfg, pixels, v="vision_model."):
    """SiglipVisionTransformer: patches + positions, pre-norm blocks, post-layer norm."""
    heads, eps = cfg["num_attention_heads"], cfg.get("layer_norm_eps", 1e-6)
    x, _, _ = patchify(pixels, W[v + "embeddings.patch_embedding.weight"], W[v + "embeddings.patch_embedding.bias"])
    x = x + W[v + "embeddings.position_embedding.weight"]
    hidden = [x]
    for i in range(cfg["num_hidden_layers"]):
        p = f"{v}encoder.layers.{i}."
        h = layer_norm(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
        x = x + attention(h, W, p, ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"), heads)
        h = layer_norm(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
        x = x + gelu_tanh(h @ W[p + "mlp.fc1.weight"].T + W[p + "mlp.fc1.bias"]) @ W[p + "mlp.fc2.weight"].T + W[p + "mlp.fc2.bias"]
        hidden.append(x)
    return np.stack(hidden), layer_norm(x, W[v + "post_layernorm.weight"], W[v + "post_layernorm.bias"], eps)


def tiny_siglip(rng):
    D, L, inter, P, size = 32, 2, 64, 4, 16
    cfg = {"architectures": ["SiglipVisionModel"], "model_type": "siglip_vision_model", "hidden_size": D,
           "intermediate_size": inter, "num_hidden_layers": L, "num_attention_heads": 4, "num_channels": 3,
           "image_size": size, "patch_size": P, "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6}
    def w(*shape, s=0.2): return (rng.standard_normal(shape) * s).astype(np.float32)
    v = "vision_model."
    W = {v + "embeddings.patch_embedding.weight": w(D, 3, P, P), v + "embeddings.patch_embedding.bias": w(D),
         v + "embeddings.position_embedding.weight": w((size // P) ** 2, D),
         v + "post_layernorm.weight": 1 + w(D), v + "post_layernorm.bias": w(D)}
    for i in range(L):
        p = f"{v}encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            W[p + f"self_attn.{n}.weight"], W[p + f"self_attn.{n}.bias"] = w(D, D), w(D)
        for n in ("layer_norm1", "layer_norm2"):
            W[p + n + ".weight"], W[p + n + ".bias"] = 1 + w(D), w(D)
        W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"] = w(inter, D), w(inter)
        W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"] = w(D, inter), w(D)
    return W, cfg


def make_siglip():
    rng = np.random.default_rng(11)
    W, cfg = tiny_siglip(rng)
    write_model("tiny-siglip", W, cfg)
    pixels = rng.standard_normal((3, 16, 16)).astype(np.float32)
    hidden, last = siglip_forward({k: v.astype(np.float64) for k, v in W.items()}, cfg, pixels.astype(np.float64))
    expected = {"siglip.pixels": pixels, "siglip.hidden": hidden, "siglip.last": last}
    save_file({k: np.ascontiguousarray(v.astype(np.float32)) for k, v in expected.items()},
              os.path.join(VISION, "siglip-expected.safetensors"))


if __name__ == "__main__":
    make_siglip()

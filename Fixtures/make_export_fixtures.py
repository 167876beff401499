#!/usr/bin/env python3
"""Expected outputs for the MLX and GGUF exporters, computed by the reference libraries.

MLX: mlx.core.quantize (affine) on tensors of Fixtures/tiny-llama, at 4 bits g64, 2 bits g32,
5 bits g32 and 6 bits g64,
stored as `<setting>/<module>.{weight,scales,biases}` in export/mlx-expected.safetensors.
GGUF: llama.cpp's Llama Q/K permutation (as convert_hf_to_gguf.py writes it) and
gguf.quants.quantize(Q8_0) of a few tensors, stored by GGUF name in export/gguf-q8_0-expected.safetensors
(U8 raw block bytes).

Needs: pip install "mlx[cpu]" gguf numpy safetensors
"""
import json
import os

import gguf
import mlx.core as mx
import numpy as np
from safetensors.numpy import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "export")

MLX_TENSORS = [
    "model.layers.0.mlp.up_proj.weight",
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.0.self_attn.k_proj.weight",
    "model.layers.1.self_attn.q_proj.weight",
]
SETTINGS = {"b4g64": (4, 64), "b2g32": (2, 32), "b5g32": (5, 32), "b6g64": (6, 64)}

GGUF_TENSORS = {
    "model.layers.0.self_attn.q_proj.weight": "blk.0.attn_q.weight",
    "model.layers.0.self_attn.k_proj.weight": "blk.0.attn_k.weight",
    "model.layers.0.mlp.down_proj.weight": "blk.0.ffn_down.weight",
    "model.layers.1.self_attn.v_proj.weight": "blk.1.attn_v.weight",
}


def llama_permute(weights, n_head, n_head_kv=None):
    """convert_hf_to_gguf.py's LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def main():
    os.makedirs(OUT, exist_ok=True)
    weights = load_file(os.path.join(HERE, "tiny-llama", "model.safetensors"))
    with open(os.path.join(HERE, "tiny-llama", "config.json")) as f:
        config = json.load(f)

    expected = {}
    for setting, (bits, group) in SETTINGS.items():
        for name in MLX_TENSORS:
            module = name[: -len(".weight")]
            w = mx.array(weights[name])
            q, scales, biases = mx.quantize(w, group_size=group, bits=bits, mode="affine")
            expected[f"{setting}/{module}.weight"] = np.array(q)
            expected[f"{setting}/{module}.scales"] = np.array(scales)
            expected[f"{setting}/{module}.biases"] = np.array(biases)
    save_file(expected, os.path.join(OUT, "mlx-expected.safetensors"))

    heads = config["num_attention_heads"]
    kv_heads = config["num_key_value_heads"]
    gguf_expected = {}
    for name, gguf_name in GGUF_TENSORS.items():
        data = weights[name].astype(np.float32)
        if name.endswith("q_proj.weight"):
            data = llama_permute(data, heads, heads)
        if name.endswith("k_proj.weight"):
            data = llama_permute(data, heads, kv_heads)
        gguf_expected[gguf_name + "/f32"] = np.ascontiguousarray(data)
        blocks = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
        gguf_expected[gguf_name + "/q8_0"] = np.ascontiguousarray(blocks).reshape(-1)
    save_file(gguf_expected, os.path.join(OUT, "gguf-q8_0-expected.safetensors"))


if __name__ == "__main__":
    main()

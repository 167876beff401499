#!/usr/bin/env python3
"""Writes the fixtures in Fixtures/dequant/ that the Swift dequantization tests read.

GGUF (blocks.gguf, expected values in blocks.expected.safetensors, F32 under the same names and
row-major shapes): one group of tensors per block type the tools dequantize, at boundary sizes
(one block, several blocks over several rows, a rank-3 tensor for Q8_0). Q4_0, Q4_1, Q5_0, Q5_1
and Q8_0 rows are quantized with `gguf.quants.quantize`; gguf-py cannot quantize the K-quants or
IQ4_NL, so for every type a `.random` tensor holds random block bytes whose f16 scale fields are
overwritten with finite values, which exercises every code and scale bit. Expected values are
`gguf.quants.dequantize`'s. unsupported.gguf holds an F32 tensor and an IQ2_XXS one (random
blocks), which the tools must refuse by name.

MLX (mlx-model/): a folder as mlx_lm writes it, made with `mx.quantize`: bits 2, 3, 4, 5, 6 and 8,
group sizes 32, 64 and 128, F16, BF16 and F32 scales, the default settings in config.json's
`quantization` block and the others as per-module entries; one plain tensor. The expected
`mx.dequantize` values are in mlx-model.expected.safetensors (in the scales' dtype).
mlx-contradicts/ has a config that says 4 bits over tensors quantized at 8, which must be refused.

Run: pip install gguf numpy "mlx[cpu]"; python3 Fixtures/make_dequant_fixtures.py
"""
import json
import os

import numpy as np

from fixture_safetensors import save_file
import gguf
from gguf import GGMLQuantizationType as QT
import mlx.core as mx

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dequant")
rng = np.random.default_rng(20261207)

# Byte offsets of the f16 scale fields in each block (ggml's block_* structs).
SCALE_FIELDS = {
    QT.Q4_0: [0], QT.Q4_1: [0, 2], QT.Q5_0: [0], QT.Q5_1: [0, 2], QT.Q8_0: [0],
    QT.Q2_K: [80, 82], QT.Q3_K: [108], QT.Q4_K: [0, 2], QT.Q5_K: [0, 2], QT.Q6_K: [208],
    QT.IQ4_NL: [0],
}
QUANTIZABLE = {QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0}


def random_blocks(qtype, shape):
    """Random blocks for `shape` (row-major, last dimension a whole number of blocks)."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = int(np.prod(shape)) // block_size
    raw = rng.integers(0, 256, size=(blocks, type_size), dtype=np.uint8)
    for offset in SCALE_FIELDS[qtype]:
        scales = rng.uniform(-0.05, 0.05, size=blocks).astype(np.float16)
        raw[:, offset:offset + 2] = scales.view(np.uint8).reshape(blocks, 2)
    return raw.reshape(*shape[:-1], shape[-1] // block_size * type_size)


def make_gguf():
    w = gguf.GGUFWriter(os.path.join(OUT, "blocks.gguf"), arch="tiny")
    expected = []

    def add(name, raw, qtype):
        w.add_tensor(name, raw, raw_dtype=qtype)
        values = gguf.quants.dequantize(raw, qtype).astype(np.float32)
        expected.append((name, values))

    plain = rng.standard_normal((2, 8)).astype(np.float32)
    w.add_tensor("plain.f32", plain)
    expected.append(("plain.f32", plain))
    for qtype in SCALE_FIELDS:
        block_size = gguf.GGML_QUANT_SIZES[qtype][0]
        prefix = qtype.name.lower()
        if qtype in QUANTIZABLE:
            one = rng.standard_normal(block_size).astype(np.float32)
            add(prefix + ".one", gguf.quants.quantize(one, qtype), qtype)
            rows = rng.standard_normal((3, 3 * block_size)).astype(np.float32)
            add(prefix + ".rows", gguf.quants.quantize(rows, qtype), qtype)
        else:
            add(prefix + ".one", random_blocks(qtype, [block_size]), qtype)
        add(prefix + ".random", random_blocks(qtype, [3, 2 * block_size]), qtype)
    cube = rng.standard_normal((2, 3, 64)).astype(np.float32)
    add("q8_0.cube", gguf.quants.quantize(cube, QT.Q8_0), QT.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_file(expected, os.path.join(OUT, "blocks.expected.safetensors"), dtype="<f4")

    w = gguf.GGUFWriter(os.path.join(OUT, "unsupported.gguf"), arch="tiny")
    w.add_tensor("plain.f32", plain)
    raw = rng.integers(0, 256, size=(2, 66), dtype=np.uint8)
    raw[:, 0:2] = np.full(2, 0.01, dtype=np.float16).view(np.uint8).reshape(2, 2)
    w.add_tensor("blk.0.ffn_down.weight", raw, raw_dtype=QT.IQ2_XXS)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# (module, rows, columns, bits, group size, scales dtype); the first is the config default.
MLX_LAYERS = [
    ("layers.b4", 3, 128, 4, 64, mx.float16),
    ("layers.b2", 2, 64, 2, 32, mx.float16),
    ("layers.b3", 3, 128, 3, 64, mx.bfloat16),
    ("layers.b5", 2, 96, 5, 32, mx.float32),
    ("layers.b6", 2, 256, 6, 128, mx.float16),
    ("layers.b8", 4, 64, 8, 64, mx.bfloat16),
]


def make_mlx():
    folder = os.path.join(OUT, "mlx-model")
    os.makedirs(folder, exist_ok=True)
    weights, expected = {}, {}
    _, _, _, bits, group, _ = MLX_LAYERS[0]
    quantization = {"group_size": group, "bits": bits}
    for module, rows, columns, bits, group, dtype in MLX_LAYERS:
        w = mx.array(rng.standard_normal((rows, columns)).astype(np.float32)).astype(dtype)
        q, scales, biases = mx.quantize(w, group_size=group, bits=bits)
        weights[module + ".weight"], weights[module + ".scales"], weights[module + ".biases"] = q, scales, biases
        expected[module + ".weight"] = mx.dequantize(q, scales, biases, group_size=group, bits=bits)
        if module != MLX_LAYERS[0][0]:
            quantization[module] = {"group_size": group, "bits": bits}
    norm = mx.array(rng.standard_normal(16).astype(np.float32)).astype(mx.float16)
    weights["norm.weight"] = norm
    expected["norm.weight"] = norm
    mx.eval(weights, expected)
    mx.save_safetensors(os.path.join(folder, "model.safetensors"), weights, metadata={"format": "mlx"})
    config = {"model_type": "tiny", "quantization": quantization, "quantization_config": quantization}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    mx.save_safetensors(os.path.join(OUT, "mlx-model.expected.safetensors"), expected, metadata={"format": "mlx"})

    folder = os.path.join(OUT, "mlx-contradicts")
    os.makedirs(folder, exist_ok=True)
    w = mx.array(rng.standard_normal((2, 64)).astype(np.float32)).astype(mx.float16)
    q, scales, biases = mx.quantize(w, group_size=64, bits=8)
    mx.save_safetensors(
        os.path.join(folder, "model.safetensors"),
        {"proj.weight": q, "proj.scales": scales, "proj.biases": biases}, metadata={"format": "mlx"})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"model_type": "tiny", "quantization": {"group_size": 64, "bits": 4}}, f, indent=2)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_gguf()
    make_mlx()

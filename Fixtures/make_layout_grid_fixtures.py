#!/usr/bin/env python3
"""The layouts' stored grids as the runtimes' own tools choose and read them
(export/layout-grids.safetensors), for GPTQ on those grids.

One weight matrix `weights` [4, 128] (F16 values, stored as F32; row 1 holds an outlier, row 3 a
constant group). For each setting:

- MLX `mlx-b<bits>-g<group>` (bits 2, 3, 4, 8; groups 32, 64): `mlx.core.quantize`'s scales and
  biases of the F16 weights, random codes (row 0 runs through every code), and
  `mlx.core.dequantize` of those codes on that grid.
- GGUF `gguf-<type>` (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): gguf-py's `quants.quantize` of the weights,
  each block's d (and m) read from its bytes, random codes (unsigned: Q8_0's q + 128), the blocks
  those codes make with that d (and m), and gguf-py's `quants.dequantize` of them.

Codes are U8, the rest F32 (exact for F16 values).

Needs: pip install "mlx[cpu]" gguf numpy
"""
import os

import gguf
import mlx.core as mx
import numpy as np
from gguf import GGMLQuantizationType as QT
from fixture_safetensors import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
GGUF_TYPES = {"q4_0": (QT.Q4_0, 4), "q4_1": (QT.Q4_1, 4), "q5_0": (QT.Q5_0, 5), "q5_1": (QT.Q5_1, 5),
              "q8_0": (QT.Q8_0, 8)}


def pack_block(name, d, m, q):
    """One block of 32 codes `q` (unsigned) with d (and m), as ggml lays it out."""
    head = np.float16(d).tobytes()
    if name in ("q4_1", "q5_1"):
        head += np.float16(m).tobytes()
    if name == "q8_0":
        return head + (q.astype(np.int16) - 128).astype(np.int8).tobytes()
    low = (q[:16] & 0x0F) | ((q[16:] & 0x0F) << 4)
    if name in ("q4_0", "q4_1"):
        return head + low.astype(np.uint8).tobytes()
    qh = 0
    for j in range(32):
        qh |= int((q[j] >> 4) & 1) << j
    return head + np.uint32(qh).tobytes() + low.astype(np.uint8).tobytes()


def main():
    rng = np.random.default_rng(23)
    rows, columns = 4, 128
    weights = (rng.standard_normal((rows, columns)) * 0.05).astype(np.float16)
    weights[1, 5] = np.float16(0.9)
    weights[3, 64:96] = np.float16(0.25)
    out = {"weights": weights.astype(np.float32)}

    for bits in (2, 3, 4, 8):
        for group in (32, 64):
            key = f"mlx-b{bits}-g{group}"
            _, scales, biases = mx.quantize(mx.array(weights), group_size=group, bits=bits)
            codes = rng.integers(0, 1 << bits, size=(rows, columns)).astype(np.uint32)
            codes[0, :] = np.arange(columns) % (1 << bits)
            words = np.zeros((rows, columns * bits // 32), dtype=np.uint64)
            for column in range(columns):
                word, shift = divmod(column * bits, 32)
                words[:, word] |= codes[:, column].astype(np.uint64) << shift
                if shift + bits > 32:
                    words[:, word + 1] |= codes[:, column].astype(np.uint64) >> (32 - shift)
            words = (words & 0xFFFFFFFF).astype(np.uint32)
            deq = mx.dequantize(mx.array(words), scales, biases, group_size=group, bits=bits)
            out[key + "/scales"] = np.array(scales.astype(mx.float32))
            out[key + "/biases"] = np.array(biases.astype(mx.float32))
            out[key + "/codes"] = codes.astype(np.uint8)
            out[key + "/dequantized"] = np.array(deq.astype(mx.float32))

    for name, (qtype, bits) in GGUF_TYPES.items():
        key = f"gguf-{name}"
        blocks = gguf.quants.quantize(weights.astype(np.float32), qtype).reshape(-1)
        size = len(blocks) // (rows * columns // 32)
        d = np.zeros(rows * columns // 32, dtype=np.float32)
        m = np.zeros_like(d)
        for index in range(len(d)):
            raw = blocks[index * size:(index + 1) * size].tobytes()
            d[index] = np.frombuffer(raw[0:2], dtype=np.float16)[0]
            if name in ("q4_1", "q5_1"):
                m[index] = np.frombuffer(raw[2:4], dtype=np.float16)[0]
        codes = rng.integers(0, 1 << bits, size=(rows, columns)).astype(np.uint8)
        codes[0, :] = np.arange(columns) % (1 << bits)
        flat = codes.reshape(-1, 32)
        packed = b"".join(pack_block(name, d[i], m[i], flat[i].astype(np.int64)) for i in range(len(d)))
        data = np.frombuffer(packed, dtype=np.uint8).reshape(rows, -1)
        deq = gguf.quants.dequantize(data, qtype).astype(np.float32)
        out[key + "/d"] = d.reshape(rows, -1)
        out[key + "/m"] = m.reshape(rows, -1)
        out[key + "/codes"] = codes
        out[key + "/blocks"] = np.frombuffer(packed, dtype=np.uint8).copy()
        out[key + "/dequantized"] = deq.reshape(rows, columns)
    save_file(out, os.path.join(HERE, "export", "layout-grids.safetensors"))


if __name__ == "__main__":
    main()

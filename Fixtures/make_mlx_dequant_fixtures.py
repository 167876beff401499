#!/usr/bin/env python3
"""What mlx.core.dequantize gives back for stored affine grids (export/mlx-dequant.safetensors).

For scale dtypes float16, bfloat16 and float32, bits 2, 3, 4, 8 and group sizes 32, 64, 128, on
4 rows of 2 groups: random codes, scales and biases rounded to the dtype; row 0 runs through every
code, row 2 has large magnitudes (products and sums rounded far from 1) and row 3 a zero and a
negative scale. Stored per setting `<dtype>-b<bits>-g<group>/{codes,scales,biases,dequantized}`: codes
U8 unpacked, the rest widened to F32 (exact for every dtype).

Needs: pip install "mlx[cpu]" numpy
"""
import os

import mlx.core as mx
import numpy as np
from fixture_safetensors import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = {"f16": mx.float16, "bf16": mx.bfloat16, "f32": mx.float32}


def main():
    rng = np.random.default_rng(19)
    out = {}
    for label, dtype in DTYPES.items():
        for bits in (2, 3, 4, 8):
            for group in (32, 64, 128):
                rows, columns = 4, 2 * group
                codes = rng.integers(0, 1 << bits, size=(rows, columns)).astype(np.uint32)
                scales = rng.standard_normal((rows, 2)).astype(np.float32) * 0.02
                biases = rng.standard_normal((rows, 2)).astype(np.float32) * 0.1
                scales[2] *= 3000.0
                biases[2] *= 30000.0
                scales[3] = [0.0, -0.013]
                codes[0, :] = np.arange(columns) % (1 << bits)
                s = mx.array(scales).astype(dtype)
                b = mx.array(biases).astype(dtype)
                # Pack the codes as MLX does: little-endian bit fields across 32-bit words.
                words = np.zeros((rows, columns * bits // 32), dtype=np.uint64)
                for column in range(columns):
                    bit = column * bits
                    word, shift = divmod(bit, 32)
                    words[:, word] |= (codes[:, column].astype(np.uint64) << shift)
                    if shift + bits > 32:
                        words[:, word + 1] |= codes[:, column].astype(np.uint64) >> (32 - shift)
                words = (words & 0xFFFFFFFF).astype(np.uint32)
                deq = mx.dequantize(mx.array(words), s, b, group_size=group, bits=bits)
                check = mx.dequantize(mx.array(words), mx.ones(s.shape), mx.zeros(b.shape), group_size=group, bits=bits)
                assert np.array_equal(np.array(check).astype(np.uint32), codes), "packing differs from MLX's"
                key = f"{label}-b{bits}-g{group}"
                out[key + "/codes"] = codes.astype(np.uint8)
                out[key + "/scales"] = np.array(s.astype(mx.float32))
                out[key + "/biases"] = np.array(b.astype(mx.float32))
                out[key + "/dequantized"] = np.array(deq.astype(mx.float32))
    save_file(out, os.path.join(HERE, "export", "mlx-dequant.safetensors"))


if __name__ == "__main__":
    main()

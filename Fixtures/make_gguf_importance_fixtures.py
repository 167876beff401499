#!/usr/bin/env python3
"""Q4_0 and Q5_0 blocks weighted by an importance matrix, as llama.cpp's `quantize_row_q4_0_impl`
and `quantize_row_q5_0_impl` (ggml-quants.c) write them, computed here in numpy float32 one
operation at a time, in ggml's order (gguf/importance.safetensors).

For each case `NAME`: `NAME/values` [rows, columns] F32, `NAME/importance` [columns] F32 (the
per-column weights llama-imatrix records), and `NAME/q4_0`, `NAME/q5_0` U8 (the blocks, row after
row). Cases cover one block, rows of 64 and 96, a block of zeros, a block below ggml's 1e-15
threshold, a block whose importance is all zero, a negative extreme, an outlier, and ties in
rounding.

    python3 Fixtures/make_gguf_importance_fixtures.py
"""
import os

import numpy as np
from fixture_safetensors import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
f32 = np.float32


def nearest_int(value):
    """ggml's nearest_int: the float plus 1.5 * 2^23, read back as an integer: round half to even."""
    return int(np.rint(f32(value)))


def make_qx_quants(x, nmax, weights):
    """ggml's make_qx_quants(n, nmax, x, L, rmse_type = 1, qw): codes in [0, 2 nmax) and the scale."""
    largest, magnitude = f32(0), f32(0)
    for value in x:
        if abs(value) > magnitude:
            magnitude, largest = f32(abs(value)), value
    if magnitude < f32(1e-15):
        return [0] * len(x), f32(0)

    def code(iscale, value):
        return max(-nmax, min(nmax - 1, nearest_int(f32(iscale * value))))

    def sums(iscale):
        sum_lx, sum_l2 = f32(0), f32(0)
        for value, w in zip(x, weights):
            level = f32(code(iscale, value))
            sum_lx = f32(sum_lx + f32(f32(w * value) * level))
            sum_l2 = f32(sum_l2 + f32(f32(w * level) * level))
        return sum_lx, sum_l2

    iscale = f32(f32(-nmax) / largest)
    codes = [code(iscale, value) + nmax for value in x]
    sum_lx, sum_l2 = sums(iscale)
    scale = f32(sum_lx / sum_l2) if sum_l2 != 0 else f32(0)
    best = f32(scale * sum_lx)
    for step in range(-9, 10):
        if step == 0:
            continue
        iscale = f32(-f32(f32(nmax) + f32(f32(0.1) * f32(step))) / largest)
        sum_lx, sum_l2 = sums(iscale)
        if sum_l2 > 0 and f32(sum_lx * sum_lx) > f32(best * sum_l2):
            codes = [nmax + code(iscale, value) for value in x]
            scale = f32(sum_lx / sum_l2)
            best = f32(scale * sum_lx)
    return codes, scale


def encode_row(x, importance, nmax):
    sum_x2 = f32(0)
    for value in x:
        sum_x2 = f32(sum_x2 + f32(value * value))
    sigma2 = f32(sum_x2 / f32(len(x)))
    out = bytearray()
    for start in range(0, len(x), 32):
        xb = x[start:start + 32]
        weights = [f32(importance[start + j] * np.sqrt(f32(sigma2 + f32(xb[j] * xb[j])), dtype=f32))
                   for j in range(32)]
        codes, d = make_qx_quants(xb, nmax, weights)
        out += np.float16(d).tobytes()
        if nmax == 16:
            qh = 0
            for j in range(16):
                qh |= ((codes[j] & 0x10) >> 4) << j
                qh |= ((codes[j + 16] & 0x10) >> 4) << (j + 16)
            out += int(qh).to_bytes(4, "little")
            out += bytes((codes[j] & 0x0F) | ((codes[j + 16] & 0x0F) << 4) for j in range(16))
        else:
            out += bytes(codes[j] | (codes[j + 16] << 4) for j in range(16))
    return bytes(out)


def cases():
    rng = np.random.default_rng(7)
    out = {}
    out["one_block"] = (rng.standard_normal((1, 32)).astype(f32), rng.uniform(0.1, 3, 32).astype(f32))
    values = rng.standard_normal((3, 64)).astype(f32) * f32(0.05)
    values[1, 5] = f32(-0.9)  # a negative extreme, far from the rest
    out["rows_of_64"] = (values, rng.uniform(0, 5, 64).astype(f32))
    values = rng.standard_normal((2, 96)).astype(f32)
    values[0, 32:64] = 0  # a block of zeros
    values[1, 64:96] = f32(1e-17)  # below ggml's threshold
    importance = rng.exponential(1.0, 96).astype(f32)
    importance[0:32] = 0  # a block whose columns carry no weight
    out["special_blocks"] = (values, importance)
    # Values on the halfway points of the first guess's grid, where rounding ties.
    values = (np.arange(64, dtype=f32) % 16 - f32(7.5)) * f32(0.25)
    out["ties"] = (values.reshape(1, 64), np.ones(64, dtype=f32))
    return out


def main():
    tensors = {}
    for name, (values, importance) in cases().items():
        tensors[f"{name}/values"] = values
        tensors[f"{name}/importance"] = importance
        for type_name, nmax in (("q4_0", 8), ("q5_0", 16)):
            blob = b"".join(encode_row(list(row), list(importance), nmax) for row in values)
            tensors[f"{name}/{type_name}"] = np.frombuffer(blob, dtype=np.uint8)
    save_file(tensors, os.path.join(HERE, "gguf", "importance.safetensors"))


if __name__ == "__main__":
    main()

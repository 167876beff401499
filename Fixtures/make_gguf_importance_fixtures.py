#!/usr/bin/env python3
"""Q4_0, Q4_1, Q5_0 and Q5_1 blocks weighted by an importance matrix, as llama.cpp's
`quantize_row_q4_0_impl` and its siblings (ggml-quants.c) write them, computed here in numpy
float32 one operation at a time, in ggml's order (gguf/importance.safetensors).

For each case `NAME`: `NAME/values` [rows, columns] F32, `NAME/importance` [columns] F32 (the
per-column weights llama-imatrix records), and `NAME/q4_0`, `NAME/q4_1`, `NAME/q5_0`, `NAME/q5_1`
U8 (the blocks, row after row). Cases cover one block, rows of 64 and 96, a block of zeros, a block below ggml's 1e-15
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


def make_qkx3_quants(x, nmax, weights, rmin=f32(-0.9), rdelta=f32(0.05), nstep=36):
    """ggml's make_qkx3_quants(n, nmax, x, weights, L, &the_min, Laux, -0.9, 0.05, 36, false):
    codes in [0, nmax], the scale and the_min (the negated minimum)."""
    low, high = x[0], x[0]
    sum_w = weights[0]
    sum_x = f32(sum_w * x[0])
    for value, w in zip(x[1:], weights[1:]):
        low = value if value < low else low
        high = value if value > high else high
        sum_w = f32(sum_w + w)
        sum_x = f32(sum_x + f32(w * value))
    if low > 0:
        low = f32(0)
    if high <= low:
        return [0] * len(x), f32(0), f32(-low)
    iscale = f32(f32(nmax) / f32(high - low))
    scale = f32(f32(1) / iscale)
    codes = [max(0, min(nmax, nearest_int(f32(iscale * f32(value - low))))) for value in x]
    best = f32(0)
    for value, w, level in zip(x, weights, codes):
        diff = f32(f32(f32(scale * f32(level)) + low) - value)
        best = f32(best + f32(w * f32(diff * diff)))
    for step in range(nstep + 1):
        iscale = f32(f32(f32(rmin + f32(rdelta * f32(step))) + f32(nmax)) / f32(high - low))
        trial = [max(0, min(nmax, nearest_int(f32(iscale * f32(value - low))))) for value in x]
        sum_l = sum_l2 = sum_xl = f32(0)
        for value, w, level in zip(x, weights, trial):
            level = f32(level)
            sum_l = f32(sum_l + f32(w * level))
            sum_l2 = f32(sum_l2 + f32(f32(w * level) * level))
            sum_xl = f32(sum_xl + f32(f32(w * level) * value))
        determinant = f32(f32(sum_w * sum_l2) - f32(sum_l * sum_l))
        if determinant > 0:
            this_scale = f32(f32(f32(sum_w * sum_xl) - f32(sum_x * sum_l)) / determinant)
            this_min = f32(f32(f32(sum_l2 * sum_x) - f32(sum_l * sum_xl)) / determinant)
            if this_min > 0:
                this_min = f32(0)
                this_scale = f32(sum_xl / sum_l2)
            error = f32(0)
            for value, w, level in zip(x, weights, trial):
                diff = f32(f32(f32(this_scale * f32(level)) + this_min) - value)
                error = f32(error + f32(w * f32(diff * diff)))
            if error < best:
                codes, best, scale, low = trial, error, this_scale, this_min
    return codes, scale, f32(-low)


def pack_codes(codes, five_bits):
    """32 codes as ggml's blocks hold them: the fifth bits as a little-endian word (Q5 types),
    then codes j and j + 16 sharing byte j, low nibble first."""
    out = bytearray()
    if five_bits:
        qh = 0
        for j in range(16):
            qh |= ((codes[j] & 0x10) >> 4) << j
            qh |= ((codes[j + 16] & 0x10) >> 4) << (j + 16)
        out += int(qh).to_bytes(4, "little")
    out += bytes((codes[j] & 0x0F) | ((codes[j + 16] & 0x0F) << 4) for j in range(16))
    return bytes(out)


def encode_row(x, importance, nmax, with_minimum=False):
    sum_x2 = f32(0)
    for value in x:
        sum_x2 = f32(sum_x2 + f32(value * value))
    sigma2 = f32(sum_x2 / f32(len(x)))
    out = bytearray()
    for start in range(0, len(x), 32):
        xb = x[start:start + 32]
        weights = [f32(importance[start + j] * np.sqrt(f32(sigma2 + f32(xb[j] * xb[j])), dtype=f32))
                   for j in range(32)]
        if with_minimum:
            codes, d, the_min = make_qkx3_quants(xb, nmax, weights)
            out += np.float16(d).tobytes() + np.float16(-the_min).tobytes()
        else:
            codes, d = make_qx_quants(xb, nmax, weights)
            out += np.float16(d).tobytes()
        out += pack_codes(codes, five_bits=nmax in (16, 31))
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
        for type_name, nmax, with_minimum in (("q4_0", 8, False), ("q5_0", 16, False), ("q4_1", 15, True),
                                              ("q5_1", 31, True)):
            blob = b"".join(encode_row(list(row), list(importance), nmax, with_minimum) for row in values)
            tensors[f"{name}/{type_name}"] = np.frombuffer(blob, dtype=np.uint8)
    save_file(tensors, os.path.join(HERE, "gguf", "importance.safetensors"))


if __name__ == "__main__":
    main()

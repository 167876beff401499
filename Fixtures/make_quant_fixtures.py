#!/usr/bin/env python3
"""Make the quantizer fixtures under Fixtures/quant/.

Reference outputs come from `mlx.core.quantize` / `mlx.core.dequantize` (pip install "mlx[cpu]")
and from `gguf.quants` (pip install gguf). Every case is a slice of one little-endian blob per
area, described by a JSON manifest: each array is `[byte offset, element count]` into the blob.

Run from the repository root: python3 Fixtures/make_quant_fixtures.py

gguf-py has no encoder for the K-quants, so Q4_K/Q2_K encoder fixtures (kquants.*) come from
ggml's own `quantize_row_q4_K_ref` / `quantize_row_q2_K_ref`, called through ctypes, and are only
rewritten when GGML_QUANTS_LIB names a shared library built from ggml's sources:

    git clone https://github.com/ggml-org/ggml && cd ggml
    printf '%s\n' '#include <stdlib.h>' '#include <stdint.h>' \
      'void ggml_abort(const char *f, int l, const char *m, ...) { abort(); }' \
      'size_t ggml_row_size(int t, int64_t n) { abort(); }' \
      'const char *ggml_type_name(int t) { return "?"; }' \
      'size_t ggml_type_size(int t) { abort(); }' > stubs.c
    gcc -O2 -std=gnu11 -fPIC -shared -Iinclude -Isrc src/ggml-quants.c stubs.c -lm -o libggml-quants.so
    GGML_QUANTS_LIB=$PWD/libggml-quants.so python3 Fixtures/make_quant_fixtures.py

(Build for plain x86-64, without -march=native, so the compiler does not contract into FMA.)

The same library gives the encoder fixtures for the other block types people use (encoders.*):
Q4_1, Q5_0 and Q5_1 from `quantize_row_*_ref` (and checked against gguf-py's `quants.quantize`),
Q3_K, Q5_K and Q6_K from `quantize_row_*_ref`, and IQ4_NL from `quantize_iq4_nl` with no
importance matrix, which is what llama-quantize calls (the `_ref` variant skips its scale search).
They were made from the ggml sources vendored in llama-cpp-python 0.3.36's sdist
(`pip download --no-deps --no-binary llama-cpp-python llama-cpp-python`, vendor/llama.cpp/ggml).
"""
import json
import os

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quant")


class Blob:
    def __init__(self):
        self.parts = []
        self.size = 0

    def add(self, array):
        raw = np.ascontiguousarray(array).tobytes()
        offset = self.size
        self.parts.append(raw)
        self.size += len(raw)
        return [offset, int(np.asarray(array).size)]

    def write(self, path):
        with open(path, "wb") as f:
            for part in self.parts:
                f.write(part)


def special_matrix():
    """Rows that hit MLX's corner cases: a zero row, a constant row, exact halves, mixed signs."""
    rows = np.zeros((4, 64), dtype=np.float32)
    rows[1, :] = 0.5
    rows[2, :] = (np.arange(64) % 16 - 7.5).astype(np.float32) / 4
    rows[3, :32] = np.linspace(0.25, 3.0, 32, dtype=np.float32)
    rows[3, 32:] = -np.linspace(0.5, 1.0, 32, dtype=np.float32)
    return rows


def make_mlx(rng):
    import mlx.core as mx

    blob = Blob()
    cases = []
    matrices = {
        "rand4x128": rng.standard_normal((4, 128)).astype(np.float32) * 0.05,
        "rand3x256": rng.standard_normal((3, 256)).astype(np.float32),
        "special4x64": special_matrix(),
    }
    for name, w in matrices.items():
        for bits in (2, 3, 4, 8):
            for group in (32, 64, 128):
                if w.shape[1] % group:
                    continue
                for dtype in ("F32", "F16"):
                    if dtype == "F16" and not (name == "rand4x128" and group == 64):
                        continue
                    wd = mx.array(w).astype(mx.float16 if dtype == "F16" else mx.float32)
                    wq, scales, biases = mx.quantize(wd, group_size=group, bits=bits)
                    deq = mx.dequantize(wq, scales, biases, group_size=group, bits=bits)
                    np_dtype = np.float16 if dtype == "F16" else np.float32
                    cases.append({
                        "name": f"{name}_b{bits}_g{group}_{dtype.lower()}",
                        "rows": w.shape[0], "columns": w.shape[1],
                        "bits": bits, "groupSize": group, "dtype": dtype,
                        "weights": blob.add(np.array(wd).astype(np_dtype)),
                        "words": blob.add(np.array(wq).astype(np.uint32)),
                        "scales": blob.add(np.array(scales).astype(np_dtype)),
                        "biases": blob.add(np.array(biases).astype(np_dtype)),
                        "dequantized": blob.add(np.array(deq).astype(np_dtype)),
                    })
    blob.write(os.path.join(HERE, "mlx.bin"))
    with open(os.path.join(HERE, "mlx.json"), "w") as f:
        json.dump({"mlxVersion": mx.__version__, "cases": cases}, f, indent=1)


def random_block_bytes(rng, n_blocks, type_size, f16_fields):
    """Random raw blocks with small positive f16 values at the given byte offsets."""
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for offset in f16_fields:
        values = rng.uniform(0.001, 0.05, size=n_blocks).astype(np.float16)
        raw[:, offset:offset + 2] = values.view(np.uint8).reshape(n_blocks, 2)
    return raw


def make_gguf(rng):
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf import quants

    blob = Blob()
    cases = []
    w = rng.standard_normal((4, 256)).astype(np.float32)
    w[0, :32] = 0.0  # an all-zero block
    w[1, :32] = np.arange(32, dtype=np.float32) - 16.0  # the signed absmax is negative, exact halves
    w[2, 32:64] = np.arange(32, dtype=np.float32) * 0.5  # positive absmax, ties at .5
    for qtype in (T.Q8_0, T.Q4_0):
        data = quants.quantize(w, qtype)
        cases.append({
            "name": f"{qtype.name}_encode", "type": qtype.name, "rows": 4, "columns": 256,
            "weights": blob.add(w), "bytes": blob.add(data.astype(np.uint8)),
            "dequantized": blob.add(quants.dequantize(data, qtype).astype(np.float32)),
        })
    # Decoding only: random but well-formed blocks (K-quant encoders are not in gguf-py).
    layouts = {T.Q8_0: (34, [0]), T.Q4_0: (18, [0]), T.Q4_K: (144, [0, 2]), T.Q2_K: (84, [80, 82])}
    for qtype, (type_size, f16_fields) in layouts.items():
        n_blocks = 3
        raw = random_block_bytes(rng, n_blocks, type_size, f16_fields)
        block_size = gguf.GGML_QUANT_SIZES[qtype][0]
        deq = quants.dequantize(raw.reshape(1, -1), qtype).astype(np.float32)
        cases.append({
            "name": f"{qtype.name}_decode", "type": qtype.name, "rows": 1,
            "columns": n_blocks * block_size,
            "bytes": blob.add(raw), "dequantized": blob.add(deq),
        })
    blob.write(os.path.join(HERE, "gguf.bin"))
    with open(os.path.join(HERE, "gguf.json"), "w") as f:
        json.dump({"ggufVersion": "gguf-py", "cases": cases}, f, indent=1)


def clip_reference(w, bits, group):
    """SPEED-Q / BitDistiller auto_2clip with the identity in place of activations (float32)."""
    levels = np.float32(2**bits - 1)
    groups = w.reshape(-1, group)
    codes = np.zeros_like(groups, dtype=np.uint8)
    scales = np.zeros(len(groups), dtype=np.float32)
    zeros = np.zeros(len(groups), dtype=np.float32)

    def pseudo(cur):
        scale = np.maximum(cur.max() - cur.min(), np.float32(1e-5)) / levels
        zero = np.clip(-np.round(cur.min() / scale), 0, levels)
        q = np.clip(np.round(cur / scale) + zero, 0, levels)
        return q, (q - zero) * scale, scale, zero

    for index, g in enumerate(groups):
        best = np.inf
        best_bounds = None
        for i in range(10):
            for j in range(10):
                top = g.max() * np.float32(1 - i / 20)
                bottom = g.min() * np.float32(1 - j / 20)
                cur = np.minimum(np.maximum(g, bottom), top)
                _, deq, _, _ = pseudo(cur)
                err = ((deq - g).astype(np.float32) ** 2).astype(np.float64).sum()
                if err < best:
                    best = err
                    best_bounds = (bottom, top)
        cur = np.minimum(np.maximum(g, best_bounds[0]), best_bounds[1])
        q, _, scales[index], zeros[index] = pseudo(cur)
        codes[index] = q.astype(np.uint8)
    return codes.reshape(w.shape), scales, zeros


def hqq_reference(w, bits, group, p=0.7, beta=10.0, kappa=1.01, iters=20):
    """mobiusml/hqq optimize_weights_proximal_legacy in float32, means taken in float64."""
    W = w.reshape(-1, group).astype(np.float32)
    levels = np.float32(2**bits - 1)
    mn = W.min(axis=1, keepdims=True)
    mx = W.max(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        scale = np.minimum(levels / (mx - mn), np.float32(2e4))
    zero = -mn * scale
    best = 1e4
    for _ in range(iters):
        Wq = np.clip(np.round(W * scale + zero), 0, levels)
        Wr = (Wq - zero) / scale
        d = W - Wr
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = np.abs(d)
            reduced = mag - np.float32(1.0 / beta) * mag ** np.float32(p - 1)
        We = np.sign(d) * np.maximum(reduced, np.float32(0))
        zero = (Wq - (W - We) * scale).astype(np.float64).mean(axis=1, keepdims=True).astype(np.float32)
        beta *= kappa
        err = float(np.abs(d).astype(np.float64).mean())
        if err < best:
            best = err
        else:
            break
    Wq = np.clip(np.round(W * scale + zero), 0, levels).astype(np.uint8)
    return Wq.reshape(w.shape), (np.float32(1) / scale).reshape(-1), zero.reshape(-1)


def make_reference_quantizers(rng):
    blob = Blob()
    cases = []
    for rows, columns, group in ((4, 64, 32), (3, 128, 64), (2, 128, 128)):
        w = rng.standard_normal((rows, columns)).astype(np.float32)
        w[0, 5] = 6.0  # an outlier worth clipping
        for bits in (2, 3, 4):
            for method, reference in (("clip", clip_reference), ("hqq", hqq_reference)):
                codes, scales, zeros = reference(w, bits, group)
                cases.append({
                    "name": f"{method}_{rows}x{columns}_b{bits}_g{group}", "method": method,
                    "rows": rows, "columns": columns, "bits": bits, "groupSize": group,
                    "weights": blob.add(w), "codes": blob.add(codes),
                    "scales": blob.add(scales.astype(np.float32)),
                    "zeros": blob.add(zeros.astype(np.float32)),
                })
    blob.write(os.path.join(HERE, "reference.bin"))
    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=1)


def make_kquants(rng, library_path):
    import ctypes

    from gguf import GGMLQuantizationType as T
    from gguf import quants

    library = ctypes.CDLL(library_path)
    blob = Blob()
    cases = []
    w = (rng.standard_normal((3, 512)) * 0.05).astype(np.float32)
    w[2] *= 20  # unit-scale values next to typical weight magnitudes
    w[0, :256] = 0.0  # an all-zero super-block
    w[1, 256:272] = np.abs(w[1, 256:272])  # a sub-block with no negative values
    for qtype, function, type_size in ((T.Q4_K, "quantize_row_q4_K_ref", 144),
                                       (T.Q2_K, "quantize_row_q2_K_ref", 84)):
        out = np.zeros(w.size // 256 * type_size, dtype=np.uint8)
        getattr(library, function)(
            w.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(w.size))
        cases.append({
            "name": f"{qtype.name}_encode", "type": qtype.name, "rows": 3, "columns": 512,
            "weights": blob.add(w), "bytes": blob.add(out),
            "dequantized": blob.add(quants.dequantize(out.reshape(1, -1), qtype).astype(np.float32)),
        })
    blob.write(os.path.join(HERE, "kquants.bin"))
    with open(os.path.join(HERE, "kquants.json"), "w") as f:
        json.dump({"source": "ggml quantize_row_*_ref via ctypes", "cases": cases}, f, indent=1)


def encoder_matrix(rng, columns):
    """Rows at the edges an encoder can get wrong: a zero block, constant blocks, a block of
    exact ties, huge and tiny magnitudes (f16 subnormal scales), then ordinary weights."""
    w = (rng.standard_normal((6, columns)) * 0.05).astype(np.float32)
    w[0, :32] = 0.0
    w[0, 32:64] = 0.7
    w[0, 64:96] = -3.0
    w[1] *= 2.0e4 / 0.05 / 4  # near f16's largest scales
    w[2] *= 1.0e-4  # scales below f16's normal range
    w[3, :32] = np.arange(32, dtype=np.float32) - 16.0
    w[4] = np.abs(w[4])  # no negative values
    if columns >= 256:
        w[0, 256 - 96:256] = 0.0  # a whole super-block zero with the earlier blocks
        w[5, :16] = 1.0e-30  # one sub-block far below the rest
    return w


def make_block_encoders(rng, library_path):
    import ctypes

    from gguf import GGMLQuantizationType as T
    from gguf import quants

    library = ctypes.CDLL(library_path)
    blob = Blob()
    cases = []
    refs = (
        (T.Q4_1, "quantize_row_q4_1_ref", 20, 32, True),
        (T.Q5_0, "quantize_row_q5_0_ref", 22, 32, True),
        (T.Q5_1, "quantize_row_q5_1_ref", 24, 32, True),
        (T.IQ4_NL, "quantize_iq4_nl", 18, 32, False),
        (T.Q3_K, "quantize_row_q3_K_ref", 110, 256, False),
        (T.Q5_K, "quantize_row_q5_K_ref", 176, 256, False),
        (T.Q6_K, "quantize_row_q6_K_ref", 210, 256, False),
    )
    for qtype, function, type_size, block, in_gguf_py in refs:
        for rows, columns in ((1, block), (6, 2 * 256)):
            w = encoder_matrix(rng, columns) if rows > 1 else (
                rng.standard_normal((1, columns)) * 0.05).astype(np.float32)
            out = np.zeros(w.size // block * type_size, dtype=np.uint8)
            src = w.ctypes.data_as(ctypes.c_void_p)
            dst = out.ctypes.data_as(ctypes.c_void_p)
            if function == "quantize_iq4_nl":
                library.quantize_iq4_nl.restype = ctypes.c_size_t
                library.quantize_iq4_nl(src, dst, ctypes.c_int64(rows), ctypes.c_int64(columns), None)
            else:
                getattr(library, function)(src, dst, ctypes.c_int64(w.size))
            if in_gguf_py:
                assert (quants.quantize(w, qtype).reshape(-1) == out).all(), qtype.name
            cases.append({
                "name": f"{qtype.name}_{rows}x{columns}", "type": qtype.name, "rows": rows,
                "columns": columns, "weights": blob.add(w), "bytes": blob.add(out),
                "dequantized": blob.add(
                    quants.dequantize(out.reshape(1, -1), qtype).astype(np.float32)),
            })
    blob.write(os.path.join(HERE, "encoders.bin"))
    with open(os.path.join(HERE, "encoders.json"), "w") as f:
        json.dump({"source": "ggml quantize_row_*_ref / quantize_iq4_nl via ctypes", "cases": cases},
                  f, indent=1)


def main():
    os.makedirs(HERE, exist_ok=True)
    rng = np.random.default_rng(20250611)
    make_mlx(rng)
    make_gguf(rng)
    make_reference_quantizers(rng)
    library = os.environ.get("GGML_QUANTS_LIB")
    if library:
        make_kquants(np.random.default_rng(7), library)
        make_block_encoders(np.random.default_rng(11), library)


if __name__ == "__main__":
    main()

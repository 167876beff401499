#!/usr/bin/env python3
"""Writes the safetensors, dtype-conversion and malformed-file fixtures beside this script.

Needs numpy, safetensors and ml_dtypes (`pip install ml_dtypes`). The outputs are committed;
rerun only to change them. Everything is deterministic (fixed seeds, sorted keys).

Layout:
  safetensors/conversion/   expected bits for dtype widening and narrowing (from numpy/ml_dtypes)
  safetensors/files/        small files written by the Python `safetensors` package, with
                            `NAME.expected.json` beside each (shapes, dtypes, raw hex of the data)
  safetensors/sharded/      a 3-shard checkpoint with `model.safetensors.index.json`
  malformed/                broken files and `expected.tsv` (file, substring of the error)
"""

import json
import os
import shutil
import struct

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file, save

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "safetensors")
CONVERSION = os.path.join(ROOT, "conversion")
FILES = os.path.join(ROOT, "files")
SHARDED = os.path.join(ROOT, "sharded")
MALFORMED = os.path.join(HERE, "malformed")


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


# ---------------------------------------------------------------- dtype conversion


def tricky_floats():
    """Float32 values that exercise rounding: ties, subnormals, limits, overflow, NaN."""
    values = []
    specials = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 448.0, 449.0, 460.0, 464.0, 464.0001,
                479.9, 480.0, 500.0, 57344.0, 59000.0, 61439.0, 61440.0, 61441.0, 65504.0,
                65519.0, 65520.0, 65536.0, 1e30, -1e30, 3.4028235e38, 1.17549435e-38, 1e-45,
                2.0 ** -14, 2.0 ** -15, 2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * 1.0000001,
                2.0 ** -26, 2.0 ** -6, 2.0 ** -9, 2.0 ** -10, 2.0 ** -16, 2.0 ** -17, 0.1, 1 / 3]
    values += [np.float32(v) for v in specials]
    bits = []
    # Exact ties and near-ties for each narrow format: mantissa bits just below the kept ones.
    for kept in (10, 7, 3, 2):
        drop = 23 - kept
        for exponent in (100, 112, 113, 120, 121, 127, 130, 142, 143):
            for mantissa_top in (0, 1, 2, 3, (1 << kept) - 1):
                base = (exponent << 23) | (mantissa_top << drop)
                for low in (0, 1, (1 << (drop - 1)) - 1, 1 << (drop - 1), (1 << (drop - 1)) + 1,
                            (1 << drop) - 1):
                    bits += [base | low, base | low | 0x8000_0000]
    rng = np.random.default_rng(1234)
    bits += list(rng.integers(0, 2 ** 32, size=1500, dtype=np.uint64))
    # Subnormal float32 inputs and small normals.
    bits += list(rng.integers(0, 0x0100_0000, size=100, dtype=np.uint64))
    values = np.concatenate([np.array(values, dtype=np.float32),
                             np.array(bits, dtype=np.uint64).astype(np.uint32).view(np.float32)])
    # NaNs: quiet, signalling, with payloads, both signs.
    nans = np.array([0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0xFF80_0001, 0x7FA0_0000,
                     0x7FFF_FFFF, 0xFFFF_E000], dtype=np.uint32).view(np.float32)
    return np.concatenate([values, nans])


def make_conversion():
    fresh(CONVERSION)
    every16 = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    np.seterr(all="ignore")
    f16 = every16.view(np.float16).astype(np.float32)
    bf16 = every16.view(ml_dtypes.bfloat16).astype(np.float32)
    f16.view(np.uint32).astype("<u4").tofile(os.path.join(CONVERSION, "f16_widened.u32"))
    bf16.view(np.uint32).astype("<u4").tofile(os.path.join(CONVERSION, "bf16_widened.u32"))
    every8 = np.arange(256, dtype=np.uint32).astype(np.uint8)
    e4m3 = every8.view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    e5m2 = every8.view(ml_dtypes.float8_e5m2).astype(np.float32)
    e4m3.view(np.uint32).astype("<u4").tofile(os.path.join(CONVERSION, "f8_e4m3_widened.u32"))
    e5m2.view(np.uint32).astype("<u4").tofile(os.path.join(CONVERSION, "f8_e5m2_widened.u32"))

    x = tricky_floats()
    narrow = {
        "about": "float32 input bits and the narrowed bits from numpy (F16) and ml_dtypes "
                 "(BF16, F8_E4M3FN, F8_E5M2), round to nearest even, non-saturating",
        "input": [int(v) for v in x.view(np.uint32)],
        "F16": [int(v) for v in x.astype(np.float16).view(np.uint16)],
        "BF16": [int(v) for v in x.astype(ml_dtypes.bfloat16).view(np.uint16)],
        "F8_E4M3": [int(v) for v in x.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)],
        "F8_E5M2": [int(v) for v in x.astype(ml_dtypes.float8_e5m2).view(np.uint8)],
    }
    with open(os.path.join(CONVERSION, "narrowed.json"), "w") as f:
        json.dump(narrow, f, separators=(",", ":"))
        f.write("\n")
    # Integer and F64 widening: numpy's astype(float32) rounds to nearest even.
    ints = {}
    rng = np.random.default_rng(99)
    for name, dtype in [("I64", "<i8"), ("I32", "<i4"), ("I16", "<i2"), ("I8", "i1"),
                        ("U64", "<u8"), ("U32", "<u4"), ("U16", "<u2"), ("U8", "u1"),
                        ("F64", "<f8")]:
        info = np.finfo(dtype) if name == "F64" else np.iinfo(dtype)
        if name == "F64":
            v = np.concatenate([np.array([0.0, -0.0, 1e300, -1e300, 1e-300, np.inf, 2.0 ** -149,
                                          2.0 ** -150, 3 * 2.0 ** -151, 1 + 2.0 ** -24,
                                          1 + 3 * 2.0 ** -24, 65504.5, 3.4028235677973366e38]),
                                rng.standard_normal(40) * 1e3])
        else:
            edge = [info.min, info.max, 0, 1, info.max - 1, info.min + 1]
            if info.bits >= 32:
                edge += [2 ** 24 + 1, 2 ** 24 + 3, 2 ** 25 + 2, 2 ** 25 + 6, 2 ** 31 - 64]
            v = np.concatenate([np.array(edge, dtype=dtype),
                                rng.integers(info.min, info.max, size=40, dtype=dtype,
                                             endpoint=True)])
        arr = np.array(v, dtype=dtype)
        ints[name] = {"hex": arr.tobytes().hex(),
                      "float32": [int(b) for b in arr.astype(np.float32).view(np.uint32)]}
    boolean = np.array([0, 1, 0, 1, 1], dtype=np.bool_)
    ints["BOOL"] = {"hex": boolean.tobytes().hex(),
                    "float32": [int(b) for b in boolean.astype(np.float32).view(np.uint32)]}
    with open(os.path.join(CONVERSION, "widened_other.json"), "w") as f:
        json.dump(ints, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    make_conversion()

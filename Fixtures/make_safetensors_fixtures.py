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


# ---------------------------------------------------------------- valid files


def expected_entry(name, array, dtype_name):
    """What a reader must return for one tensor: its raw bytes and the float32 bits."""
    if array.dtype == np.bool_:
        as_float = array.astype(np.float32)
    else:
        as_float = array.astype(np.float32)
    return {"name": name, "dtype": dtype_name, "shape": list(array.shape),
            "hex": array.tobytes().hex(),
            "float32": [int(v) for v in as_float.reshape(-1).view(np.uint32)]}


def write_expected(path, entries, metadata):
    with open(path, "w") as f:
        json.dump({"tensors": entries, "metadata": metadata}, f, indent=1, sort_keys=True)
        f.write("\n")


NUMPY_DTYPES = [("F64", np.float64), ("F32", np.float32), ("F16", np.float16), ("I64", np.int64),
                ("I32", np.int32), ("I16", np.int16), ("I8", np.int8), ("U64", np.uint64),
                ("U32", np.uint32), ("U16", np.uint16), ("U8", np.uint8), ("BOOL", np.bool_)]


def sample(dtype, shape, rng):
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return (rng.standard_normal(shape) * 3).astype(dtype)


def make_files():
    fresh(FILES)
    rng = np.random.default_rng(7)
    np.seterr(all="ignore")

    # Every dtype numpy has, written by the safetensors package. Only `format: pt` metadata,
    # so the header bytes are deterministic and our writer must reproduce them exactly.
    tensors, entries = {}, []
    shapes = [(3, 5), (7,), (2, 2, 2), (1, 9), (4,), (3, 3), (8,), (2, 3), (5,), (1,), (6,), (2, 5)]
    for (name, dtype), shape in zip(NUMPY_DTYPES, shapes):
        key = f"t.{name.lower()}"
        tensors[key] = sample(dtype, shape, rng)
        entries.append(expected_entry(key, tensors[key], name))
    # Names the JSON writer must escape the way serde_json does.
    tensors['odd "quoted" \\ name\twith tab'] = np.arange(3, dtype=np.float32)
    tensors["unicode.é.中"] = np.arange(2, dtype=np.int16)
    for key in ('odd "quoted" \\ name\twith tab', "unicode.é.中"):
        entries.append(expected_entry(key, tensors[key], "F32" if tensors[key].dtype == np.float32 else "I16"))
    save_file(tensors, os.path.join(FILES, "numpy_dtypes.safetensors"), metadata={"format": "pt"})
    write_expected(os.path.join(FILES, "numpy_dtypes.expected.json"), entries, {"format": "pt"})

    # Rank-0 and zero-size tensors, and several metadata keys.
    tensors = {"scalar.f32": np.array(2.5, dtype=np.float32),
               "scalar.i64": np.array(-7, dtype=np.int64),
               "empty.f16": np.zeros((0,), dtype=np.float16),
               "empty.matrix": np.zeros((3, 0), dtype=np.float32),
               "empty.leading": np.zeros((0, 4), dtype=np.int8),
               "x": np.array([1, 2, 3], dtype=np.uint8)}
    metadata = {"format": "pt", "note": "zero-size and rank-0 tensors", "unicode": "é中"}
    save_file(tensors, os.path.join(FILES, "scalars_and_empty.safetensors"), metadata=metadata)
    entries = [expected_entry(k, v, {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64",
                                     np.dtype(np.float16): "F16", np.dtype(np.int8): "I8",
                                     np.dtype(np.uint8): "U8"}[v.dtype]) for k, v in tensors.items()]
    write_expected(os.path.join(FILES, "scalars_and_empty.expected.json"), entries, metadata)

    # BF16 and F8: numpy has no such dtypes and safetensors.numpy refuses ml_dtypes arrays,
    # so this file's header is written here by hand, laid out as the reference writer does
    # (descending alignment, then name; JSON padded with spaces to a multiple of 8).
    arrays = [("w.bf16", "BF16", (rng.standard_normal((3, 4)) * 10).astype(ml_dtypes.bfloat16)),
              ("w.f8_e4m3", "F8_E4M3", (rng.standard_normal((9,)) * 50).astype(ml_dtypes.float8_e4m3fn)),
              ("w.f8_e5m2", "F8_E5M2", (rng.standard_normal((2, 5)) * 1000).astype(ml_dtypes.float8_e5m2))]
    arrays[0][2].reshape(-1)[0] = np.inf
    arrays[1][2].reshape(-1)[0] = np.nan
    arrays[1][2].reshape(-1)[1] = 448.0
    arrays[2][2].reshape(-1)[0] = -np.inf
    write_raw_file(os.path.join(FILES, "bf16_f8.safetensors"),
                   [(n, d, a.shape, a.tobytes()) for n, d, a in arrays], {"format": "pt"})
    entries = [expected_entry(n, a, d) for n, d, a in arrays]
    write_expected(os.path.join(FILES, "bf16_f8.expected.json"), entries, {"format": "pt"})

    # Leading and trailing whitespace around the header JSON, which readers tolerate.
    body = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    text = b"    " + json.dumps(body, separators=(",", ":")).encode() + b"    "
    data = np.array([1.5, -2.0], dtype=np.float32)
    with open(os.path.join(FILES, "whitespace_header.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data.tobytes())
    write_expected(os.path.join(FILES, "whitespace_header.expected.json"),
                   [expected_entry("a", data, "F32")], {})


def write_raw_file(path, tensors, metadata):
    """A safetensors file from (name, dtype, shape, bytes), in the reference writer's order."""
    rank = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32",
            "F32", "F64", "I64", "U64"]
    tensors = sorted(tensors, key=lambda t: (-rank.index(t[1]), t[0].encode()))
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors))


# ---------------------------------------------------------------- sharded checkpoint


def make_sharded():
    """Three shards and an index, split and written as huggingface_hub's
    `save_torch_state_dict` does (greedy in key order, `format: pt` per shard)."""
    fresh(SHARDED)
    rng = np.random.default_rng(11)
    state = {}
    for layer in range(3):
        state[f"model.layers.{layer}.mlp.weight"] = (rng.standard_normal((4, 8))).astype(np.float16)
        state[f"model.layers.{layer}.mlp.bias"] = rng.standard_normal((8,)).astype(np.float32)
    state["lm_head.weight"] = rng.standard_normal((6, 8)).astype(np.float32)
    max_shard_size = 200
    try:
        from huggingface_hub.serialization._base import split_state_dict_into_shards_factory
        split = split_state_dict_into_shards_factory(
            state, get_storage_size=lambda t: t.nbytes,
            filename_pattern="model{suffix}.safetensors", max_shard_size=max_shard_size)
        filename_to_tensors = split.filename_to_tensors
        total_size = split.metadata["total_size"]
    except ImportError:
        raise SystemExit("pip install huggingface_hub (for the shard split)")
    for filename, names in filename_to_tensors.items():
        save_file({n: state[n] for n in names}, os.path.join(SHARDED, filename),
                  metadata={"format": "pt"})
    index = {"metadata": {"total_size": total_size},
             "weight_map": {n: f for f, names in filename_to_tensors.items() for n in names}}
    with open(os.path.join(SHARDED, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
    # The variant mlx-lm writes: total_parameters beside total_size, weight_map sorted.
    mlx = {"metadata": {"total_size": total_size,
                        "total_parameters": sum(int(v.size) for v in state.values())},
           "weight_map": dict(sorted(index["weight_map"].items()))}
    with open(os.path.join(SHARDED, "mlx-style.index.json"), "w") as f:
        json.dump(mlx, f, indent=4)
    entries = [expected_entry(n, v, "F16" if v.dtype == np.float16 else "F32")
               for n, v in state.items()]
    with open(os.path.join(SHARDED, "expected.json"), "w") as f:
        json.dump({"tensors": entries, "max_shard_size": max_shard_size,
                   "shards": filename_to_tensors, "total_size": total_size},
                  f, indent=1, sort_keys=True)
        f.write("\n")


# ---------------------------------------------------------------- malformed files


def make_malformed():
    fresh(MALFORMED)
    rows = []

    def raw(name, content, expect):
        with open(os.path.join(MALFORMED, name), "wb") as f:
            f.write(content)
        rows.append((name, expect))

    def st(name, header, data=b"", expect="", length=None):
        """A file with the given header text (str or bytes), padded data, optional fake length."""
        text = header.encode() if isinstance(header, str) else header
        size = len(text) if length is None else length
        raw(name, struct.pack("<Q", size) + text + data, expect)

    f32x2 = '"dtype":"F32","shape":[2],"data_offsets":[0,8]'
    two_floats = np.array([1.0, 2.0], dtype=np.float32).tobytes()

    raw("lfs_pointer.safetensors",
        b"version https://git-lfs.github.com/spec/v1\n"
        b"oid sha256:4b1c7a1ad7a6e2c0dbd41b5c0f3e9e1b6c5a4f1f0e2d3c4b5a69788796a5b4c3\n"
        b"size 269060552\n", "Git LFS pointer")
    raw("html_page.safetensors",
        b"<!DOCTYPE html>\n<html lang=\"en\"><head><title>Sign in</title></head>"
        b"<body>Access to this model is restricted.</body></html>\n", "HTML page")
    raw("html_lowercase.safetensors", b"\n\n<html><body>404 Not Found</body></html>", "HTML page")
    raw("empty.safetensors", b"", "file is empty")
    raw("seven_bytes.safetensors", b"\x08\x00\x00\x00\x00\x00\x00", "too small")
    header = '{"w":{"dtype":"F32","shape":[16,16],"data_offsets":[0,1024]}}'
    st("truncated_download.safetensors", header, b"\x00" * 100, "truncated")
    st("header_too_large.safetensors", "{}", length=100_000_001, expect="exceeds the 100000000-byte limit")
    st("header_past_eof.safetensors", '{"w":{"dtype":"F32",', length=5000, expect="runs past the end of the file")
    st("not_json.safetensors", "this is not JSON at all!", expect="not valid JSON")
    st("json_cut_short.safetensors", '{"w":{"dtype":"F32","shape":[2],"data_', expect="not valid JSON")
    st("json_array.safetensors", "[1, 2, 3]", expect="not an object")
    st("not_utf8.safetensors", b'{"w\xff\xfe":{' + f32x2.encode() + b'}}', two_floats, "not valid UTF-8")
    st("unknown_dtype.safetensors", '{"w":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}}',
       two_floats, "unknown dtype 'F7'")
    st("negative_shape.safetensors", '{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}',
       two_floats, "negative dimension -2")
    st("fractional_shape.safetensors", '{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}',
       two_floats, "not a non-negative integer")
    st("shape_not_array.safetensors", '{"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}',
       two_floats, "shape that is a string")
    st("missing_dtype.safetensors", '{"w":{"shape":[2],"data_offsets":[0,8]}}', two_floats,
       "has no 'dtype'")
    st("offsets_one_number.safetensors", '{"w":{"dtype":"F32","shape":[2],"data_offsets":[8]}}',
       two_floats, "not two non-negative integers")
    st("offsets_gap.safetensors",
       '{"a":{' + f32x2 + '},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}',
       b"\x00" * 20, "leaves a gap")
    st("offsets_overlap.safetensors",
       '{"a":{' + f32x2 + '},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
       b"\x00" * 12, "overlaps the previous tensor")
    st("offsets_not_from_zero.safetensors",
       '{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', b"\x00" * 12, "must start at 0")
    st("end_before_begin.safetensors",
       '{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}', b"\x00" * 8, "end is before begin")
    st("size_mismatch.safetensors", '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}',
       two_floats, "F32 [3] needs 12")
    st("trailing_bytes.safetensors", '{"a":{' + f32x2 + '}}', two_floats + b"extra", "5 trailing bytes")
    st("duplicate_name.safetensors",
       '{"a":{' + f32x2 + '},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}',
       b"\x00" * 16, "names 'a' more than once")
    # The reference reader keeps the last of two equal keys and accepts this file.
    st("duplicate_name_silent.safetensors", '{"a":{' + f32x2 + '},"a":{' + f32x2 + '}}', two_floats,
       "names 'a' more than once")
    st("tensor_named_metadata.safetensors", '{"__metadata__":{' + f32x2 + '}}', two_floats,
       "named '__metadata__'")
    st("metadata_not_string.safetensors",
       '{"__metadata__":{"format":"pt","epoch":3},"a":{' + f32x2 + '}}', two_floats,
       "metadata 'epoch' is a number, not a string")
    st("metadata_not_object.safetensors", '{"__metadata__":"pt","a":{' + f32x2 + '}}', two_floats,
       "'__metadata__' is a string, not an object")
    st("shape_overflow.safetensors",
       '{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}',
       two_floats, "overflows")
    raw("gguf_renamed.safetensors",
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 20) + b"general.architecture"
        + struct.pack("<IQ", 8, 5) + b"llama", "GGUF file")
    raw("hdf5_signature.safetensors", b"\x89HDF\r\n\x1a\n" + b"\x00" * 88, "HDF5 file")
    raw("pytorch_zip.bin", b"PK\x03\x04\x00\x00\x08\x00\x00\x00" + b"archive/data.pkl" + b"\x00" * 40,
        "zip archive")
    raw("pytorch_pickle.bin",
        b"\x80\x02}q\x00(X\x0e\x00\x00\x00embed.weightq\x01ctorch._utils\n_rebuild_tensor_v2\n",
        "Python pickle")
    raw("index_json_renamed.safetensors",
        b'{\n  "metadata": {"total_size": 16},\n  "weight_map": {"a": "model-00001-of-00002.safetensors"}\n}\n',
        "JSON file")
    # A text file with an HDF5 name: the tools say it is neither HDF5 nor safetensors.
    raw("text_named.h5", b"This is a text file, not HDF5 weights.\n", "exceeds the 100000000-byte limit")

    with open(os.path.join(MALFORMED, "expected.tsv"), "w") as f:
        f.write("# file\tsubstring of the expected error message\n")
        for name, expect in rows:
            f.write(f"{name}\t{expect}\n")


if __name__ == "__main__":
    make_conversion()
    make_files()
    make_sharded()
    make_malformed()

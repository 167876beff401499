#!/usr/bin/env python3
"""Writes the GGUF fixtures in Fixtures/gguf/ that the Swift GGUF tests read.

Well-formed files are written with the reference `gguf` Python package (its GGUFWriter, and
`gguf.quants.quantize` for the Q8_0/Q4_0 blocks), so our reader and writer are tested against an
independent implementation. Beside each NAME.gguf, NAME.json holds what the file should contain:
metadata in order with exact types (integers as decimal strings, floats as IEEE bit patterns),
tensors with row-major shapes, ggml type, offsets and the raw data as hex; the layout numbers
(data start, offsets) come from the package's own GGUFReader.

Malformed files are packed by hand below; malformed.tsv lists each with a substring its error
message must contain. ggml_types.json is the package's GGML_QUANT_SIZES table.

Run: pip install gguf numpy; python3 Fixtures/make_gguf_fixtures.py
"""
import json
import os
import struct

import numpy as np
import gguf
from gguf import GGUFValueType as VT, GGMLQuantizationType as QT

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf")

TYPE_NAMES = {
    VT.UINT8: "u8", VT.INT8: "i8", VT.UINT16: "u16", VT.INT16: "i16", VT.UINT32: "u32",
    VT.INT32: "i32", VT.FLOAT32: "f32", VT.BOOL: "bool", VT.STRING: "string", VT.ARRAY: "array",
    VT.UINT64: "u64", VT.INT64: "i64", VT.FLOAT64: "f64",
}


def describe(value, vtype, sub_type=None):
    """The JSON form of a value exactly as GGUFWriter._pack_val encodes it."""
    name = TYPE_NAMES[vtype]
    if vtype == VT.ARRAY:
        ltype = sub_type if sub_type is not None else VT.get_type(value[0])
        return {"type": name, "element_type": TYPE_NAMES[ltype],
                "items": [describe(item, ltype) for item in value]}
    if vtype == VT.STRING:
        return {"type": name, "value": value}
    if vtype == VT.BOOL:
        return {"type": name, "value": bool(value)}
    if vtype == VT.FLOAT32:
        return {"type": name, "bits": struct.unpack("<I", struct.pack("<f", value))[0]}
    if vtype == VT.FLOAT64:
        return {"type": name, "bits": str(struct.unpack("<Q", struct.pack("<d", value))[0])}
    return {"type": name, "value": str(int(value))}


def write_fixture(name, kvs, tensors, alignment=None, quantization_version=None):
    """kvs: [(key, value, vtype, sub_type)]; tensors: [(name, array, raw_dtype or None)]."""
    path = os.path.join(OUT, name + ".gguf")
    w = gguf.GGUFWriter(path, arch="tiny")
    expected_kvs = [{"key": "general.architecture", "value": describe("tiny", VT.STRING)}]
    for key, value, vtype, sub_type in kvs:
        w.add_key_value(key, value, vtype, sub_type=sub_type)
        expected_kvs.append({"key": key, "value": describe(value, vtype, sub_type)})
    if alignment is not None:
        w.add_custom_alignment(alignment)
        expected_kvs.append({"key": "general.alignment", "value": describe(alignment, VT.UINT32)})
    if quantization_version is not None:
        w.add_quantization_version(quantization_version)
        expected_kvs.append({"key": "general.quantization_version",
                             "value": describe(quantization_version, VT.UINT32)})
    for tname, array, raw_dtype in tensors:
        w.add_tensor(tname, array, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    reader = gguf.GGUFReader(path)
    by_name = {t.name: t for t in reader.tensors}
    expected_tensors = []
    for tname, array, raw_dtype in tensors:
        t = by_name[tname]
        qtype = QT(t.tensor_type)
        expected_tensors.append({
            "name": tname,
            "type": qtype.name,
            "type_id": int(qtype),
            "shape": [int(d) for d in reversed(t.shape.tolist())],
            "byte_count": int(t.n_bytes),
            "offset": int(t.data_offset - reader.data_offset),
            "hex": array.tobytes().hex(),
        })
    expected = {
        "version": 3,
        "alignment": alignment or 32,
        "data_start": int(reader.data_offset),
        "file_size": os.path.getsize(path),
        "kvs": expected_kvs,
        "tensors": expected_tensors,
    }
    with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return path, expected


def well_formed():
    rng = np.random.default_rng(7)
    kvs = [
        ("test.u8", 255, VT.UINT8, None),
        ("test.i8", -128, VT.INT8, None),
        ("test.u16", 65535, VT.UINT16, None),
        ("test.i16", -32768, VT.INT16, None),
        ("test.u32", 4294967295, VT.UINT32, None),
        ("test.i32", -2147483648, VT.INT32, None),
        ("test.f32", 0.1, VT.FLOAT32, None),
        ("test.bool_true", True, VT.BOOL, None),
        ("test.bool_false", False, VT.BOOL, None),
        ("test.string", "héllo wörld ✓ 日本語 🦙", VT.STRING, None),
        ("test.empty_string", "", VT.STRING, None),
        ("test.u64", 18446744073709551615, VT.UINT64, None),
        ("test.i64", -9223372036854775808, VT.INT64, None),
        ("test.f64", -2.5e-300, VT.FLOAT64, None),
        ("test.array_u8", [0, 1, 2, 255], VT.ARRAY, VT.UINT8),
        ("test.array_i64", [-1, 2**40], VT.ARRAY, VT.INT64),
        ("test.array_f32", [1.5, -0.0, 3.25e-3], VT.ARRAY, VT.FLOAT32),
        ("test.array_string", ["a", "ü", "", "<0x0A>"], VT.ARRAY, VT.STRING),
        ("test.array_bool", [True, False, True], VT.ARRAY, VT.BOOL),
        ("test.array_long", list(range(20)), VT.ARRAY, VT.INT32),
        ("test.nested", [[1, 2], [3], [[4.5], [5.5, 6.5]]], VT.ARRAY, VT.ARRAY),
        ("test.nested_strings", [["x", "ÿ"], ["z"]], VT.ARRAY, VT.ARRAY),
        ("tokenizer.ggml.tokens", ["<s>", "</s>", "▁the", "é"], VT.ARRAY, VT.STRING),
    ]
    bf16 = (rng.standard_normal((2, 4)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    tensors = [
        ("token_embd.weight", rng.standard_normal((3, 8)).astype(np.float32), None),
        ("blk.0.attn_norm.weight", rng.standard_normal(5).astype(np.float16), None),
        ("blk.0.ffn.weight", rng.standard_normal((2, 3, 4)).astype(np.float16), None),
        ("blk.0.four_d", rng.standard_normal((1, 2, 2, 3)).astype(np.float32), None),
        ("bf16.weight", bf16, QT.BF16),
        ("f64.values", rng.standard_normal(3), None),
        ("i8.values", np.array([-128, -1, 0, 1, 127], dtype=np.int8), None),
        ("i16.values", np.array([-32768, 7], dtype=np.int16), None),
        ("i32.values", np.array([[1, -2], [3, 2**31 - 1]], dtype=np.int32), None),
        ("i64.values", np.array([-(2**63), 2**62], dtype=np.int64), None),
        ("empty", np.zeros((0, 4), dtype=np.float32), None),
    ]
    path, expected = write_fixture("all_types", kvs, tensors)

    # The same bytes with version 2, which has the same layout.
    data = bytearray(open(path, "rb").read())
    data[4:8] = struct.pack("<I", 2)
    open(os.path.join(OUT, "version2.gguf"), "wb").write(data)
    expected["version"] = 2
    with open(os.path.join(OUT, "version2.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")

    q8 = rng.standard_normal((4, 64)).astype(np.float32)
    q4 = rng.standard_normal((2, 32)).astype(np.float32)
    tensors = [
        ("blk.0.attn_q.weight", gguf.quants.quantize(q8, QT.Q8_0), QT.Q8_0),
        ("blk.0.attn_norm.weight", rng.standard_normal(7).astype(np.float32), None),
        ("blk.0.ffn_down.weight", gguf.quants.quantize(q4, QT.Q4_0), QT.Q4_0),
    ]
    write_fixture("quantized", [("general.file_type", 7, VT.UINT32, None)], tensors,
                  alignment=64, quantization_version=2)


def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def header(n_tensors, n_kv, version=3, magic=b"GGUF"):
    return magic + struct.pack("<IQQ", version, n_tensors, n_kv)


def kv_string(key, value):
    return s(key) + struct.pack("<I", 8) + s(value)


def kv_u32(key, value):
    return s(key) + struct.pack("<II", 4, value)


def tensor_info(name, ne, ggml_type=0, offset=0):
    return s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne) \
        + struct.pack("<IQ", ggml_type, offset)


def finish(body, data=b"\0" * 32, alignment=32):
    return body + b"\0" * (-len(body) % alignment) + data


ARCH = kv_string("general.architecture", "x")


def malformed():
    good = finish(header(1, 1) + ARCH + tensor_info("w", [8]))
    cases = {
        "empty": (b"", "file is truncated"),
        "truncated": ((header(0, 1) + ARCH)[:-3], "file is truncated: value of key 'general.architecture'"),
        "truncated_tensor_info": (good[:len(header(1, 1) + ARCH) + 16],
                                  "file is truncated: info of tensor 'w'"),
        "bad_magic": (b"GGUX" + good[4:], "bad magic"),
        "version1": (header(1, 1, version=1) + good[24:], "unsupported GGUF version 1"),
        "big_endian": (header(1, 1, version=3 << 24) + good[24:], "big-endian"),
        "huge_string_length": (header(0, 1) + struct.pack("<Q", 2**63) + b"general.architecture",
                               "metadata entry 0 has string length 9223372036854775808 beyond the end"),
        "huge_value_string": (header(0, 1) + s("general.name") + struct.pack("<IQ", 8, 2**64 - 1),
                              "key 'general.name' has string length 18446744073709551615 beyond the end"),
        "huge_array_length": (header(0, 1) + s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 2**40),
                              "key 'tokenizer.ggml.scores' has array length 1099511627776 beyond the end"),
        "huge_n_tensors": (header(2**62, 1) + ARCH, "declares 4611686018427387904 tensors, more than"),
        "huge_n_kv": (header(0, 2**63) + ARCH, "declares 9223372036854775808 metadata entries"),
        "n_dims_9": (finish(header(1, 1) + ARCH + tensor_info("w", [1] * 9)), "tensor 'w' has n_dims 9"),
        "misaligned_offset": (finish(header(1, 1) + ARCH + tensor_info("w", [4], offset=4)),
                              "tensor 'w' has offset 4, not aligned to 32"),
        "unknown_type": (finish(header(1, 1) + ARCH + tensor_info("w", [8], ggml_type=99)),
                         "tensor 'w' has unknown ggml type 99"),
        "retired_type": (finish(header(1, 1) + ARCH + tensor_info("w", [32], ggml_type=4)),
                         "tensor 'w' has unknown ggml type 4"),
        "unknown_value_type": (header(0, 1) + s("general.x") + struct.pack("<I", 13) + b"\0" * 8,
                               "key 'general.x' has unknown value type 13"),
        "unknown_array_type": (header(0, 1) + s("general.x") + struct.pack("<IIQ", 9, 77, 1) + b"\0" * 8,
                               "key 'general.x' has unknown value type 77"),
        "data_past_end": (finish(header(1, 1) + ARCH + tensor_info("w", [1024])),
                          "tensor 'w' has data at offset 0 + 4096 bytes past the end of the file"),
        "offset_past_end": (finish(header(1, 1) + ARCH + tensor_info("w", [8], offset=2**40)),
                            "tensor 'w' has offset 1099511627776 past the end of the file"),
        "overlapping": (finish(header(2, 1) + ARCH + tensor_info("a", [8]) + tensor_info("b", [4], offset=0)),
                        "tensor 'b' has data at offset 0 overlapping tensor 'a'"),
        "dims_overflow": (finish(header(1, 1) + ARCH + tensor_info("w", [2**62, 2**62])),
                          "tensor 'w' has dimensions [4611686018427387904, 4611686018427387904] whose size overflows"),
        "dim_too_large": (finish(header(1, 1) + ARCH + tensor_info("w", [2**64 - 1])),
                          "tensor 'w' has dimension 18446744073709551615, too large"),
        "row_not_whole_blocks": (finish(header(1, 1) + ARCH + tensor_info("w", [33, 2], ggml_type=8), b"\0" * 96),
                                 "tensor 'w' has row length 33, not a multiple of the Q8_0 block size 32"),
        "alignment_not_power_of_2": (finish(header(1, 2) + ARCH + kv_u32("general.alignment", 48)
                                            + tensor_info("w", [8]), alignment=16),
                                     "key 'general.alignment' must be a u32 power of 2, found u32 48"),
        "alignment_zero": (finish(header(0, 1) + kv_u32("general.alignment", 0), b""),
                           "key 'general.alignment' must be a u32 power of 2, found u32 0"),
        "alignment_wrong_type": (finish(header(0, 1) + s("general.alignment") + struct.pack("<IQ", 10, 32), b""),
                                 "key 'general.alignment' must be a u32 power of 2, found u64 32"),
        "duplicate_key": (finish(header(0, 2) + ARCH + ARCH, b""), "key 'general.architecture' appears twice"),
        "duplicate_tensor": (finish(header(2, 1) + ARCH + tensor_info("w", [8]) + tensor_info("w", [8], offset=32),
                                    b"\0" * 64), "tensor 'w' appears twice"),
        "bad_bool": (header(0, 1) + s("general.flag") + struct.pack("<IB", 7, 2),
                     "key 'general.flag' has bool value 2"),
        "deep_nesting": (header(0, 1) + s("general.deep") + struct.pack("<I", 9)
                         + struct.pack("<IQ", 9, 1) * 9 + struct.pack("<IQ", 4, 1) + b"\0" * 4,
                         "key 'general.deep' has arrays nested deeper than 8"),
        "invalid_utf8_key": (header(0, 1) + struct.pack("<Q", 2) + b"\xff\xfe" + struct.pack("<IB", 0, 1),
                             "metadata entry 0 is not valid UTF-8"),
        "invalid_utf8_tensor_name": (finish(header(1, 0) + struct.pack("<Q", 1) + b"\x80"
                                            + struct.pack("<IQIQ", 1, 8, 0, 0)),
                                     "tensor info 0 is not valid UTF-8"),
    }
    lines = ["# file\texpected error substring"]
    for name, (data, message) in cases.items():
        with open(os.path.join(OUT, "malformed", name + ".gguf"), "wb") as f:
            f.write(data)
        lines.append(f"malformed/{name}.gguf\t{message}")
    with open(os.path.join(OUT, "malformed.tsv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def type_table():
    table = [{"name": t.name, "id": int(t), "block_size": bs, "bytes_per_block": bpb}
             for t, (bs, bpb) in sorted(gguf.GGML_QUANT_SIZES.items(), key=lambda kv: int(kv[0]))]
    with open(os.path.join(OUT, "ggml_types.json"), "w") as f:
        json.dump(table, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    os.makedirs(os.path.join(OUT, "malformed"), exist_ok=True)
    well_formed()
    malformed()
    type_table()

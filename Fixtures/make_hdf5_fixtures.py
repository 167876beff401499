#!/usr/bin/env python3
"""Writes the HDF5 fixtures under Fixtures/hdf5 with h5py, plus the expected tensors beside them.

Run from the repository root: python3 Fixtures/make_hdf5_fixtures.py

For each fixture NAME.h5 there is NAME.expected.json:
  tensors:  [{name, dtype, shape, hex}] in the reader's order (depth first, names sorted by bytes
            at each level unless the group tracks creation order); hex is the little-endian data.
  skipped:  names of datasets that are not tensors.
  metadata: attributes as strings (root: plain key; others: dotted.path.attribute).
"""
import json
import os

import h5py
import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hdf5")

DTYPE_NAMES = {
    "float64": "F64", "float32": "F32", "float16": "F16",
    "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
    "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL",
}


def little_endian_hex(array):
    array = np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        return array.astype(np.uint8).tobytes().hex()
    return array.astype(array.dtype.newbyteorder("<")).tobytes().hex()


def attribute_string(value):
    """The reader's spelling of an attribute value."""
    def one(item, quoted):
        if isinstance(item, bytes):
            item = item.decode()
        if isinstance(item, str):
            return json.dumps(item) if quoted else item
        if isinstance(item, (bool, np.bool_)):
            return "true" if item else "false"
        if isinstance(item, np.floating) and item.dtype.itemsize <= 4:
            return str(np.float32(item))
        if isinstance(item, (float, np.floating)):
            return repr(float(item))
        return str(int(item))
    array = np.asarray(value)
    if array.size == 1:
        return one(array.reshape(()).item() if array.dtype.kind not in "f" else array.reshape(())[()], False)
    return "[" + ", ".join(one(x if array.dtype.kind == "f" else x.item(), True) for x in array.reshape(-1)) + "]"


def expected_for(path, custom_dtypes=None):
    """Walks the file independently of the reader under test and lists what it must report."""
    custom_dtypes = custom_dtypes or {}
    tensors, skipped, metadata = [], [], {}

    def record_attributes(obj, dotted):
        for key in obj.attrs:
            value = obj.attrs[key]
            metadata[f"{dotted}.{key}" if dotted else key] = attribute_string(value)

    def walk(group, dotted):
        record_attributes(group, dotted)
        tracked = group.id.get_create_plist().get_link_creation_order() & h5py.h5p.CRT_ORDER_INDEXED
        keys = list(group.keys()) if tracked else sorted(group.keys(), key=lambda s: s.encode())
        for key in keys:
            child = group[key]
            name = f"{dotted}.{key}" if dotted else key
            if isinstance(child, h5py.Group):
                walk(child, name)
                continue
            record_attributes(child, name)
            if name in custom_dtypes:
                dtype, raw = custom_dtypes[name]
                tensors.append({"name": name, "dtype": dtype, "shape": list(child.shape),
                                "hex": little_endian_hex(raw)})
                continue
            kind = child.dtype.kind
            if kind in "biuf" and child.dtype.base.name in DTYPE_NAMES:
                data = child[()]
                tensors.append({"name": name, "dtype": DTYPE_NAMES[child.dtype.base.name],
                                "shape": list(child.shape), "hex": little_endian_hex(data)})
            else:
                skipped.append(name)

    with h5py.File(path, "r") as f:
        walk(f["/"], "")
    return {"tensors": tensors, "skipped": skipped, "metadata": metadata}


def write_expected(name, custom_dtypes=None):
    expected = expected_for(os.path.join(HERE, name), custom_dtypes)
    stem = name[: -len(".h5")]
    with open(os.path.join(HERE, stem + ".expected.json"), "w") as out:
        json.dump(expected, out, indent=1, sort_keys=True)
        out.write("\n")


def make_basic():
    rng = np.random.default_rng(7)
    path = os.path.join(HERE, "basic.h5")
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "qtoolchain-test"
        f.attrs["version"] = np.int64(3)
        f.attrs["scale"] = 0.5
        f.attrs["ratio"] = np.float32(2.5)
        f.attrs["flag"] = np.bool_(True)
        f.attrs["sizes"] = np.array([1, 2, 3], dtype=np.int32)
        f.attrs["labels"] = np.array([b"left", b"right"])
        enc = f.create_group("encoder")
        enc.attrs["kind"] = "transformer"
        layer = enc.create_group("layer0")
        weight = layer.create_dataset("weight", data=rng.standard_normal((2, 3)).astype(np.float32))
        weight.attrs["units"] = np.int64(3)
        layer.create_dataset("bias", data=np.array(
            [0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 6.0e-8, 65504.0], dtype=np.float16))
        types = f.create_group("types")
        types.create_dataset("f64", data=rng.standard_normal(5))
        types.create_dataset("f32", data=rng.standard_normal(7).astype(np.float32))
        for bits in (8, 16, 32, 64):
            info = np.iinfo(f"int{bits}")
            types.create_dataset(f"i{bits}", data=np.array([info.min, -1, 0, 1, info.max], dtype=f"int{bits}"))
            info = np.iinfo(f"uint{bits}")
            types.create_dataset(f"u{bits}", data=np.array([0, 1, info.max], dtype=f"uint{bits}"))
        types.create_dataset("bool", data=np.array([[True, False, True], [False, False, True]]))
        types.create_dataset("big_endian_f32", data=np.array([1.5, -2.25, 3.0e-40, 1e30], dtype=">f4"))
        types.create_dataset("big_endian_i32", data=np.array([1, -2, 65536], dtype=">i4"))
        types.create_dataset("big_endian_f16", data=np.array([1.5, -2.0, 0.1], dtype=">f2"))
        types.create_dataset("big_endian_f64", data=np.array([np.pi, -np.e], dtype=">f8"))
        f.create_dataset("chunked", data=rng.standard_normal((64, 8)).astype(np.float32),
                         chunks=(16, 8), compression="gzip", compression_opts=4)
        f.create_dataset("scalar", data=np.float64(42.125))
        f.create_dataset("empty", data=np.zeros((0, 3), dtype=np.float32))
        f.create_dataset("notes", data=np.array([b"alpha", b"beta"]))
        f.create_dataset("records", data=np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]))
        f.create_dataset("ragged", (2,), dtype=h5py.vlen_dtype(np.int32))
        # A two-byte float laid out like bfloat16 (8-bit exponent, 7-bit mantissa).
        bf16 = h5py.h5t.IEEE_F32LE.copy()
        bf16.set_fields(15, 7, 8, 0, 7)
        bf16.set_size(2)
        bf16.set_ebias(127)
        raw = (np.array([1.0, -2.0, 0.15625, 3.0e38], dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
        space = h5py.h5s.create_simple((4,))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_obj_track_times(False)  # keeps the fixture byte-identical across runs
        dataset = h5py.h5d.create(f.id, b"custom_bf16", bf16, space, dcpl=dcpl)
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=bf16)
    return {"custom_bf16": ("BF16", raw)}


def make_keras2():
    rng = np.random.default_rng(11)
    path = os.path.join(HERE, "keras2.h5")
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.13.1"
        f.attrs["backend"] = "tensorflow"
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = np.array([b"dense", b"dense_1"])
        for layer, (rows, cols) in (("dense", (4, 3)), ("dense_1", (3, 2))):
            group = weights.create_group(layer)
            group.attrs["weight_names"] = np.array([f"{layer}/kernel:0".encode(), f"{layer}/bias:0".encode()])
            inner = group.create_group(layer)
            inner.create_dataset("kernel:0", data=rng.standard_normal((rows, cols)).astype(np.float32))
            inner.create_dataset("bias:0", data=rng.standard_normal(cols).astype(np.float32))


def make_keras3():
    rng = np.random.default_rng(13)
    path = os.path.join(HERE, "keras3.weights.h5")
    with h5py.File(path, "w") as f:
        layers = f.create_group("layers")
        dense = layers.create_group("dense")
        dense.create_group("vars")
        dense["vars"].create_dataset("0", data=rng.standard_normal((4, 3)).astype(np.float32))
        dense["vars"].create_dataset("1", data=rng.standard_normal(3).astype(np.float32))
        optimizer = f.create_group("optimizer")
        optimizer.create_group("vars").create_dataset("0", data=np.int64(10))
        f.create_group("vars")


def make_track_order():
    path = os.path.join(HERE, "track_order.h5")
    with h5py.File(path, "w", track_order=True) as f:
        for name in ("zeta", "alpha", "mid"):
            f.create_dataset(name, data=np.array([len(name)], dtype=np.int16))


def main():
    os.makedirs(HERE, exist_ok=True)
    custom = make_basic()
    write_expected("basic.h5", custom)
    make_keras2()
    write_expected("keras2.h5")
    make_keras3()
    write_expected("keras3.weights.h5")
    make_track_order()
    write_expected("track_order.h5")
    # '/a.b' and '/a/b' both map to the tensor name 'a.b': the reader must refuse the file.
    with h5py.File(os.path.join(HERE, "collision.h5"), "w") as f:
        f.create_dataset("a.b", data=np.zeros(1, dtype=np.float32))
        f.create_group("a").create_dataset("b", data=np.zeros(1, dtype=np.float32))
    with open(os.path.join(HERE, "basic.h5"), "rb") as source:
        data = source.read()
    with open(os.path.join(HERE, "truncated.h5"), "wb") as out:
        out.write(data[: len(data) // 2])
    with open(os.path.join(HERE, "not_hdf5.h5"), "w") as out:
        out.write("this is a text file with an .h5 extension\n")


if __name__ == "__main__":
    main()

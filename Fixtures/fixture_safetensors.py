"""A minimal safetensors writer shared by the fixture scripts, so they need only numpy.

`save_file(tensors, path, dtype=None)` takes a dict (written in name order) or a list of
(name, array) pairs (written in that order); each array keeps its dtype unless `dtype` casts them
all; little-endian, offsets contiguous, header padded with spaces to 8 bytes.
"""
import json
import os
import struct

import numpy as np

DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
          np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("uint8"): "U8",
          np.dtype("uint32"): "U32"}


def save_file(tensors, path, dtype=None):
    items = sorted(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    header, blobs, offset = {}, [], 0
    for name, array in items:
        array = np.ascontiguousarray(array, dtype=dtype)
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))

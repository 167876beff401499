#!/usr/bin/env python3
"""Writes the importance-matrix fixtures in Fixtures/imatrix/ that ImportanceMatrix's tests read.

small.imatrix.gguf follows the GGUF layout llama-imatrix writes by default (llama.cpp
tools/imatrix/imatrix.cpp, save_imatrix): F32 tensors NAME.in_sum2 (one row of summed squared
activations per expert) and NAME.counts (one token count per expert), with general.type
"imatrix", imatrix.datasets, imatrix.chunk_count and imatrix.chunk_size; it is written with the
`gguf` package's GGUFWriter. small.imatrix.dat follows the legacy layout (save_imatrix_legacy,
`--output-format dat`), packed by hand. expected.json holds the per-column weights llama-quantize
derives from each (common/imatrix-loader.cpp and tools/quantize/quantize.cpp load_imatrix):
in_sum2 / count per expert row (1 where the count is 0), or value / ncall; as float32 bit patterns.

Run: pip install gguf numpy; python3 Fixtures/make_imatrix_fixtures.py
"""
import json
import os
import struct

import numpy as np
import gguf

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imatrix")


def bits(values):
    return [int(v) for v in np.asarray(values, dtype=np.float32).view(np.uint32)]


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(5)
    # name -> (in_sum2 rows x columns, counts per row)
    entries = {
        "blk.0.attn_q.weight": (rng.uniform(0, 50, (1, 8)).astype(np.float32), [40.0]),
        "blk.0.ffn_down_exps.weight": (rng.uniform(0, 9, (3, 4)).astype(np.float32), [10.0, 0.0, 5.0]),
        "output.weight": (np.array([[1, 2, 3, 4, 5, 6, 7, 1e-30]], dtype=np.float32), [3.0]),
    }
    writer = gguf.GGUFWriter(os.path.join(OUT, "small.imatrix.gguf"), arch=None)
    writer.add_string("general.type", "imatrix")
    writer.add_array("imatrix.datasets", ["calibration.txt"])
    writer.add_uint32("imatrix.chunk_count", 7)
    writer.add_uint32("imatrix.chunk_size", 512)
    expected = {"gguf": {"datasets": ["calibration.txt"], "chunkCount": 7, "chunkSize": 512,
                         "weights": {}}}
    for name, (sums, counts) in sorted(entries.items()):
        writer.add_tensor(name + ".in_sum2", sums)
        writer.add_tensor(name + ".counts", np.array(counts, dtype=np.float32).reshape(len(counts), 1))
        weights = np.ones_like(sums)
        for row, count in enumerate(counts):
            if count > 0:
                weights[row] = sums[row] / np.float32(count)
        expected["gguf"]["weights"][name] = bits(weights.reshape(-1))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    # Legacy: values are mean * ncall; ncall 0 keeps the values as they are.
    legacy = {
        "blk.0.attn_q.weight": (rng.uniform(0, 50, 8).astype(np.float32), 6),
        "output.weight": (rng.uniform(0, 2, 4).astype(np.float32), 0),
    }
    raw = struct.pack("<i", len(legacy))
    expected["legacy"] = {"datasets": ["wiki.train.raw"], "chunkCount": 6, "chunkSize": 0,
                          "weights": {}}
    for name, (values, ncall) in sorted(legacy.items()):
        raw += struct.pack("<i", len(name)) + name.encode() + struct.pack("<ii", ncall, len(values))
        raw += values.astype("<f4").tobytes()
        weights = values / np.float32(ncall) if ncall > 0 else values
        expected["legacy"]["weights"][name] = bits(weights)
    raw += struct.pack("<i", 6) + struct.pack("<i", len("wiki.train.raw")) + b"wiki.train.raw"
    with open(os.path.join(OUT, "small.imatrix.dat"), "wb") as f:
        f.write(raw)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


if __name__ == "__main__":
    main()

"""Two small checkpoints that differ only by NaN and infinity, for qdiff's non-finite reporting.

Writes Fixtures/diff-nonfinite/old/model.safetensors (all finite) and
Fixtures/diff-nonfinite/new/model.safetensors, where:
- model.layers.0.mlp.up_proj.weight has one NaN, the rest identical (its finite pairs alone
  would give relative L2 0 and cosine 1),
- model.layers.0.mlp.down_proj.weight has one +inf, the rest identical,
- model.layers.0.mlp.gate_proj.weight differs slightly everywhere (a finite change),
- model.norm.weight is identical.
Run from the repository root: python3 Fixtures/make_diff_nonfinite_fixtures.py
"""

import json
import os
import struct

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diff-nonfinite")


def save_file(tensors, path):
    """A plain F32 safetensors file (the safetensors package is not needed), names sorted."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    rng = np.random.default_rng(5)
    old = {
        "model.layers.0.mlp.up_proj.weight": rng.standard_normal((8, 32)).astype(np.float32),
        "model.layers.0.mlp.down_proj.weight": rng.standard_normal((32, 8)).astype(np.float32),
        "model.layers.0.mlp.gate_proj.weight": rng.standard_normal((8, 32)).astype(np.float32),
        "model.norm.weight": np.ones(32, dtype=np.float32),
    }
    new = {name: value.copy() for name, value in old.items()}
    new["model.layers.0.mlp.up_proj.weight"][3, 4] = np.nan
    new["model.layers.0.mlp.down_proj.weight"][0, 0] = np.inf
    new["model.layers.0.mlp.gate_proj.weight"] *= np.float32(1.01)
    save_file(old, os.path.join(HERE, "old", "model.safetensors"))
    save_file(new, os.path.join(HERE, "new", "model.safetensors"))


if __name__ == "__main__":
    main()

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

import numpy as np

from fixture_safetensors import save_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diff-nonfinite")


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
    save_file(old, os.path.join(HERE, "old", "model.safetensors"), dtype="<f4")
    save_file(new, os.path.join(HERE, "new", "model.safetensors"), dtype="<f4")


if __name__ == "__main__":
    main()

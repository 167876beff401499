#!/usr/bin/env python3
"""Writes Fixtures/stats/*.json: small float32 arrays and numpy's statistics of them.

Conventions match TensorStatistics: value statistics over finite elements only (float64
accumulation, population std), NaN/Inf counted apart, zero fraction over all elements,
value statistics null when there is no finite element.

Also writes the expected statistics of 1M- and 10M-element arrays that the Swift test regenerates
itself from the same counter-based generator (splitmix64), so the big array is not committed.
"""
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "stats")


def stats(x):
    x = np.asarray(x, dtype=np.float32)
    finite = x[np.isfinite(x)].astype(np.float64)
    out = {
        "count": int(x.size),
        "finite_count": int(finite.size),
        "nan_count": int(np.isnan(x).sum()),
        "inf_count": int(np.isinf(x).sum()),
        "zero_count": int((x == 0).sum()),
        "zero_fraction": float((x == 0).sum() / x.size) if x.size else None,
    }
    if finite.size:
        out.update(
            min=float(finite.min()),
            max=float(finite.max()),
            abs_max=float(np.abs(finite).max()),
            mean=float(finite.mean()),
            std=float(finite.std()),
        )
    else:
        out.update(min=None, max=None, abs_max=None, mean=None, std=None)
    return out


def splitmix_values(n, seed):
    """value_i = float32(top 24 bits of splitmix64(seed + i*golden)) / 2^24 * 3 + 100, NaN every 1_000_003rd."""
    with np.errstate(over="ignore"):
        i = np.arange(n, dtype=np.uint64)
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float32) / np.float32(16777216)
    x = u * np.float32(3) + np.float32(100)
    x[::1_000_003] = np.nan
    return x.astype(np.float32)


def main():
    rng = np.random.default_rng(20240611)
    cases = []
    for n in (0, 1, 7, 8, 63, 64, 65, 1000):
        cases.append((f"normal-{n}", rng.standard_normal(n).astype(np.float32)))
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype=np.float32)
    for n in (1, 7, 8, 63, 64, 65, 1000):
        x = (rng.standard_normal(n) * 3 + 0.5).astype(np.float32)
        x[rng.random(n) < 0.2] = 0
        picks = rng.integers(0, n, size=max(1, n // 10))
        x[picks] = rng.choice(special, size=picks.size)
        cases.append((f"mixed-{n}", x))
    cases.append(("all-nan-9", np.full(9, np.nan, dtype=np.float32)))
    cases.append(("inf-and-zero-16", np.array([np.inf, 0] * 8, dtype=np.float32)))
    cases.append(("offset-65", (np.float32(1e4) + rng.random(65).astype(np.float32))))

    os.makedirs(OUT, exist_ok=True)
    payload = [
        {"name": name, "bits": [int(b) for b in x.view(np.uint32)], "expected": stats(x)}
        for name, x in cases
    ]
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(payload, f, separators=(",", ":"))
        f.write("\n")

    for n, label in ((1_000_000, "1m"), (10_000_000, "10m")):
        seed = 12345
        big = {"count": n, "seed": seed, "expected": stats(splitmix_values(n, seed))}
        with open(os.path.join(OUT, f"splitmix-{label}.json"), "w") as f:
            json.dump(big, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()

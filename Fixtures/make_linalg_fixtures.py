#!/usr/bin/env python3
"""Writes numpy reference results for the linear-algebra tests (Tests/QComputeTests/Linalg*).

Output: Fixtures/linalg/arrays.f64 (every array as little-endian float64, row-major, back to back)
and Fixtures/linalg/manifest.json ({"arrays": {name: {"shape": [...], "offset": elements}}}).
Run from anywhere: python3 Fixtures/make_linalg_fixtures.py. The seed is fixed, so the output is
reproducible for a given numpy.
"""
import json
import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "linalg"
rng = np.random.default_rng(20240601)
arrays = {}


def put(name, value):
    value = np.asarray(value, dtype=np.float64)
    assert name not in arrays, name
    arrays[name] = value


# General matrices, including an empty one and the 64/65 boundary.
general = {
    "1x1": (1, 1),
    "7x5": (7, 5),
    "5x7": (5, 7),
    "0x4": (0, 4),
    "64x65": (64, 65),
}
small = {"1x1", "7x5", "5x7"}
for name, (m, n) in general.items():
    g = rng.standard_normal((m, n))
    put(f"g.{name}", g)

    b = rng.standard_normal((n, 3))
    put(f"matmul.{name}.b", b)
    put(f"matmul.{name}.ab", g @ b)
    put(f"gram.{name}", g.T @ g)

    if m == 0:
        continue
    u, s, vt = np.linalg.svd(g, full_matrices=False)
    put(f"svd.{name}.s", s)
    q, r = np.linalg.qr(g, mode="reduced")
    put(f"qr.{name}.absdiag", np.abs(np.diag(r)))
    if name in small:
        put(f"svd.{name}.u", u)
        put(f"svd.{name}.vt", vt)
        put(f"qr.{name}.r", r)
        put(f"qr.{name}.q", q)

    rhs = rng.standard_normal((m, 2))
    x, _, rank, _ = np.linalg.lstsq(g, rhs, rcond=None)
    put(f"lstsq.{name}.b", rhs)
    put(f"lstsq.{name}.x", x)
    put(f"lstsq.{name}.rank", [rank])

# A 7 x 5 matrix of rank 3: gels must refuse it, gelsd must find the rank and the minimum norm.
deficient = rng.standard_normal((7, 3)) @ rng.standard_normal((3, 5))
rhs = rng.standard_normal((7, 2))
x, _, rank, s = np.linalg.lstsq(deficient, rhs, rcond=1e-10)
put("lstsq.rank3.a", deficient)
put("lstsq.rank3.b", rhs)
put("lstsq.rank3.x", x)
put("lstsq.rank3.rank", [rank])
put("lstsq.rank3.s", s)

# Symmetric positive-definite matrices: Cholesky, inverse, solve, eigen.
for n in (1, 7, 65):
    g = rng.standard_normal((n, n + 3))
    spd = g @ g.T / (n + 3) + 0.5 * np.eye(n)
    spd = (spd + spd.T) / 2
    put(f"spd.{n}", spd)
    put(f"chol.{n}", np.linalg.cholesky(spd))
    w, v = np.linalg.eigh(spd)
    put(f"eigh.spd{n}.w", w)
    if n <= 7:
        put(f"eigh.spd{n}.v", v)
        put(f"inv.{n}", np.linalg.inv(spd))
    rhs = rng.standard_normal((n, 3))
    put(f"solve.{n}.b", rhs)
    put(f"solve.{n}.x", np.linalg.solve(spd, rhs))

# A symmetric indefinite matrix for the eigensolver.
g = rng.standard_normal((7, 7))
sym = (g + g.T) / 2
w, v = np.linalg.eigh(sym)
put("sym.7", sym)
put("eigh.sym7.w", w)
put("eigh.sym7.v", v)

OUT.mkdir(exist_ok=True)
manifest = {}
offset = 0
with open(OUT / "arrays.f64", "wb") as f:
    for name, value in arrays.items():
        manifest[name] = {"shape": list(value.shape), "offset": offset}
        f.write(value.astype("<f8").tobytes(order="C"))
        offset += value.size
entries = ",\n".join(
    f"  {json.dumps(name)}: {json.dumps(entry)}" for name, entry in sorted(manifest.items()))
(OUT / "manifest.json").write_text(
    f'{{"numpy": {json.dumps(np.__version__)},\n "arrays": {{\n{entries}\n}}}}\n')
print(f"{len(arrays)} arrays, {offset * 8} bytes")

#!/usr/bin/env bash
# Checks qdiff on the real models of ../shared/models/fetch.sh:
#   1. SmolLM2-135M F16 against its BF16 copy: every tensor dtype-changed, and relative L2, cosine,
#      max |a-b| and SNR equal to numpy's float64 values to 1e-9 relative;
#   2. SmolLM2-135M against its 4-bit pack made by qconvert: per-tensor quantization error and bits
#      per weight, worst first (the table's head is printed), timed.
#
# Usage: Tests/RealModels/check-qdiff.sh     (MODELS_DIR defaults to ~/.cache/qtoolchain-models)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
QDIFF=.build/release/qdiff
QCONVERT=.build/release/qconvert
[ -x "$QDIFF" ] || swift build -c release --product qdiff >&2
[ -x "$QCONVERT" ] || swift build -c release --product qconvert >&2
PY=${PYTHON:-python3}
F16=$MODELS/smollm2-135m-instruct-hf
BF16=$MODELS/smollm2-135m-instruct-hf-bf16
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== SmolLM2-135M F16 against BF16"
start=$(date +%s.%N)
set +e
"$QDIFF" --format json "$F16" "$BF16" >"$work/bf16.json"
status=$?
set -e
end=$(date +%s.%N)
echo "exit status $status (expected 1), $(echo "$end - $start" | bc) s"
[ "$status" = 1 ]
"$PY" - "$F16/model.safetensors" "$BF16/model.safetensors" "$work/bf16.json" <<'PYEOF'
import json, sys
import numpy as np
from safetensors import safe_open
old_path, new_path, report_path = sys.argv[1:4]
report = json.load(open(report_path))
ours = {t["name"]: t for t in report["tensors"]}

def bf16(raw):
    return (raw.astype(np.uint32) << 16).view(np.float32)

worst = 0.0
with safe_open(old_path, "np") as a_file:
    names = list(a_file.keys())
    import struct
    with open(new_path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        for name in names:
            a = a_file.get_tensor(name).astype(np.float64).ravel()
            begin, stop = header[name]["data_offsets"]
            f.seek(base + begin)
            b = bf16(np.frombuffer(f.read(stop - begin), dtype=np.uint16)).astype(np.float64)
            d = a - b
            dd, aa, bb = float(d @ d), float(a @ a), float(b @ b)
            want = {
                "relative_l2": 0.0 if dd == 0 else float(np.sqrt(dd / aa)),
                "cosine": float(a @ b / (np.sqrt(aa) * np.sqrt(bb))),
                "max_abs_diff": float(np.max(np.abs(d))),
                "snr_db": None if dd == 0 else float(10 * np.log10(aa / dd)),
            }
            t = ours[name]
            assert t["status"] == "dtype-changed", (name, t["status"])
            for key, value in want.items():
                if value is None:
                    assert key not in t, (name, key, t.get(key))
                    continue
                err = abs(t[key] - value) / max(abs(value), 1e-300)
                worst = max(worst, err)
                assert err <= 1e-9, (name, key, t[key], value)
assert len(ours) == len(names), (len(ours), len(names))
s = report["summary"]
print(f"{len(names)} tensors dtype-changed; metrics agree with numpy, worst relative difference {worst:.2e}")
print(f"overall relative L2 {s['relative_l2']:.4e}, SNR {s['snr_db']:.1f} dB, max |a-b| {s['max_abs_diff']:.3e}")
PYEOF

echo
echo "== SmolLM2-135M against its 4-bit pack"
"$QCONVERT" "$F16" -o "$work/pack4" --bits 4 --quiet
start=$(date +%s.%N)
set +e
"$QDIFF" "$F16" "$work/pack4" >"$work/pack4.txt"
status=$?
"$QDIFF" --format json "$F16" "$work/pack4" >"$work/pack4.json"
set -e
end=$(date +%s.%N)
echo "exit status $status (expected 1), $(echo "($end - $start) / 2" | bc -l | cut -c1-5) s per run"
[ "$status" = 1 ]
sed -n '1,5p' "$work/pack4.txt"
grep -A12 '^tensors (worst first)' "$work/pack4.txt"
"$PY" - "$work/pack4.json" <<'PYEOF'
import json, sys
report = json.load(open(sys.argv[1]))
packed = [t for t in report["tensors"] if t.get("bits_per_weight", 16) < 16]
assert packed, "no packed tensor"
assert all(t["status"] == "changed" for t in packed)
assert all(t["relative_l2"] < 0.2 for t in packed), max(t["relative_l2"] for t in packed)
bpw = sum(t["bits_per_weight"] * t["parameters"] for t in packed) / sum(t["parameters"] for t in packed)
print(f"{len(packed)} packed tensors, {bpw:.3f} bits/weight on average; relative L2 "
      f"{min(t['relative_l2'] for t in packed):.4f} to {max(t['relative_l2'] for t in packed):.4f}; "
      f"pack total {report['new']['bits_per_weight']:.3f} bits/weight")
PYEOF
echo "check-qdiff: ok"

#!/usr/bin/env bash
# Checks qdiff on the real models of ../shared/models/fetch.sh:
#   1. SmolLM2-135M F16 against its BF16 copy: every tensor dtype-changed, and relative L2, cosine,
#      max |a-b| and SNR equal to numpy's float64 values to 1e-9 relative;
#   2. SmolLM2-135M against its 4-bit pack made by qconvert: per-tensor quantization error and bits
#      per weight, worst first (the table's head is printed), timed;
#   3. SmolLM2-135M against Qwen2.5-Coder-0.5B (hidden 576/896, layers 30/24, heads 9/14, kv 3/2):
#      layer similarity from weights through the shared-token transfer matrix, timed (goal: under a
#      minute); the layer mapping and a few head mappings are printed, the mapping is checked to be
#      strictly increasing and complete, and the plot is written to $PLOT_DIR (default /tmp) and
#      rendered to PNG with rsvg-convert.
#
# Usage: Tests/RealModels/check-qdiff.sh     (MODELS_DIR defaults to ~/.cache/qtoolchain-models)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
QDIFF=.build/release/qdiff
QCONVERT=.build/release/qconvert
swift build -c release --product qdiff >&2
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

echo
echo "== SmolLM2-135M against Qwen2.5-Coder-0.5B: layer similarity from weights"
QWEN=$MODELS/qwen2.5-coder-0.5b-instruct-hf
PLOT_DIR=${PLOT_DIR:-/tmp}
svg=$PLOT_DIR/qdiff-smollm2-qwen2.5.svg
start=$(date +%s.%N)
set +e
/usr/bin/time -f "%e s, peak RSS %M KB" -o "$work/time.txt" \
  "$QDIFF" --format json --plot "$svg" --save-mapping "$work/mapping.json" "$F16" "$QWEN" >"$work/cross.json"
status=$?
set -e
end=$(date +%s.%N)
echo "exit status $status (expected 1): $(cat "$work/time.txt")"
[ "$status" = 1 ]
"$PY" - "$work/cross.json" "$work/mapping.json" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))["layer_similarity"]
saved = json.load(open(sys.argv[2]))
assert saved["format"] == "qtoolchain-layer-mapping" and saved["layer_similarity"] == s
o, n = s["old"], s["new"]
print(f"old {o['layers']} layers, hidden {o['hidden_size']}, {o['heads']} heads, {o['kv_heads']} kv; "
      f"new {n['layers']} layers, hidden {n['hidden_size']}, {n['heads']} heads, {n['kv_heads']} kv")
assert (o["layers"], o["hidden_size"], o["heads"], o["kv_heads"]) == (30, 576, 9, 3)
assert (n["layers"], n["hidden_size"], n["heads"], n["kv_heads"]) == (24, 896, 14, 2)
print(f"transfer: {s['transfer']['kind']} over {s['transfer'].get('shared_tokens')} shared tokens")
mapped = [p["old"] for p in s["mapping"]]
assert all(m is not None for m in mapped) and all(a < b for a, b in zip(mapped, mapped[1:])), mapped
print("layer mapping (new <- old):")
print("  " + "  ".join(f"{p['new']}<-{p['old']}" for p in s["mapping"]))
print("  CKA of mapped pairs: " + " ".join(f"{p['cka']:.2f}" for p in s["mapping"]))
skipped = sorted(set(range(o["layers"])) - set(mapped))
print(f"  old layers left out: {skipped}")
m = s["matrix"]
diag = [max(range(n["layers"]), key=lambda j: m[i][j] if m[i][j] is not None else -9) for i in range(o["layers"])]
print(f"  best new layer per old layer (argmax of each CKA row): {diag}")
for h in s["heads"][:: max(1, len(s["heads"]) // 4)][:4]:
    mean = h["total_similarity"] / max(1, sum(x is not None for x in h["new_to_old"]))
    heads = " ".join("-" if x is None else str(x) for x in h["new_to_old"])
    print(f"  heads, old layer {h['old_layer']} -> new layer {h['new_layer']} (new <- old): {heads}; "
          f"mean similarity {mean:.3f}")
PYEOF
if command -v rsvg-convert >/dev/null; then
  rsvg-convert --format png --output "${svg%.svg}.png" "$svg"
  echo "plot: $svg ($(stat -c %s "$svg") bytes), rendered to ${svg%.svg}.png ($(stat -c %s "${svg%.svg}.png") bytes)"
else
  echo "plot: $svg (rsvg-convert not installed, not rendered)"
fi
echo "check-qdiff: ok"

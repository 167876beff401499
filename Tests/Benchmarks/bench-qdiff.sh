#!/usr/bin/env bash
# The static diff of two ~1 GB checkpoints: qdiff (release build) against a numpy script that
# computes the same per-tensor metrics (relative L2, cosine, max abs difference, SNR in dB, sums
# in float64 over the elements widened to float32), side by side in one run. Prints wall time,
# CPU time and peak RSS (/usr/bin/time -v) of each, their ratios, and the load average.
#
# Usage: Tests/Benchmarks/bench-qdiff.sh [FILE.safetensors]
#   default FILE: Qwen2.5-Coder-0.5B-Instruct F16 (988 MB) from ../shared/models/fetch.sh.
#   The other side is a perturbed copy (every float tensor + 1e-3 x its std of Gaussian noise,
#   same dtype) written by this script to a temporary folder, removed on exit.
# Needs: a release build (swift build -c release), python3 with numpy and safetensors.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
FILE=${1:-$MODELS/qwen2.5-coder-0.5b-instruct-hf/model.safetensors}
BIN=.build/release/qdiff
[ -x "$BIN" ] || swift build -c release --product qdiff >&2
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-qdiff.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
COPY=$WORK/perturbed.safetensors

"$PY" - "$FILE" "$COPY" <<'PYEOF'
import sys
import numpy as np
from safetensors.numpy import safe_open, save_file
rng = np.random.default_rng(6)
tensors = {}
with safe_open(sys.argv[1], "np") as f:
    metadata = f.metadata()
    for name in f.keys():
        a = f.get_tensor(name)
        if a.dtype.kind == "f":
            x = a.astype(np.float32)
            x += rng.standard_normal(x.shape, dtype=np.float32) * (1e-3 * float(x.std()))
            a = x.astype(a.dtype)
        tensors[name] = a
save_file(tensors, sys.argv[2], metadata=metadata)
PYEOF

cat > "$WORK/numpy-diff.py" <<'PYEOF'
import json, math, sys
import numpy as np
from safetensors.numpy import safe_open
out = []
with safe_open(sys.argv[1], "np") as old, safe_open(sys.argv[2], "np") as new:
    names = set(new.keys())
    for name in old.keys():
        if name not in names:
            continue
        a = old.get_tensor(name)
        b = new.get_tensor(name)
        if a.shape != b.shape or a.dtype.kind != "f" or b.dtype.kind != "f":
            continue
        x = a.astype(np.float32).astype(np.float64).ravel()
        y = b.astype(np.float32).astype(np.float64).ravel()
        d = x - y
        dd, xx, yy, xy = float(d @ d), float(x @ x), float(y @ y), float(x @ y)
        out.append({
            "name": name,
            "relative_l2": math.sqrt(dd / xx) if xx > 0 else None,
            "cosine": xy / math.sqrt(xx * yy) if xx > 0 and yy > 0 else None,
            "max_abs_diff": float(np.abs(d).max()) if d.size else 0.0,
            "snr_db": 10 * math.log10(xx / dd) if dd > 0 and xx > 0 else None,
        })
json.dump(out, open(sys.argv[3], "w"))
PYEOF

measure() { # label, command...: prints "wall_s cpu_s peak_kb"
  local label=$1; shift
  /usr/bin/time -v -o "$WORK/time-$label" "$@" >"$WORK/out-$label" 2>"$WORK/err-$label" || {
    status=$?; [ "$status" -eq 1 ] || { cat "$WORK/err-$label" >&2; exit "$status"; }
  }
  "$PY" - "$WORK/time-$label" <<'PYEOF'
import sys
fields = {}
for line in open(sys.argv[1]):
    key, _, value = line.strip().rpartition(": ")
    fields[key] = value
wall = fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")
seconds = sum(float(part) * 60 ** i for i, part in enumerate(reversed(wall)))
cpu = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
print(f"{seconds:.2f} {cpu:.2f} {fields['Maximum resident set size (kbytes)']}")
PYEOF
}

echo "old: $FILE ($(du -h "$FILE" | cut -f1)), new: perturbed copy ($(du -h "$COPY" | cut -f1))"
echo "cores: $(nproc), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# Warm the page cache so both read from memory.
cat "$FILE" "$COPY" >/dev/null
read -r ours_s ours_cpu ours_kb < <(measure qdiff "$BIN" "$FILE" "$COPY" --format json)
read -r numpy_s numpy_cpu numpy_kb < <(measure numpy "$PY" "$WORK/numpy-diff.py" "$FILE" "$COPY" "$WORK/numpy.json")
printf "%-22s %9s %9s %12s\n" "run" "wall s" "cpu s" "peak RSS MB"
printf "%-22s %9s %9s %12d\n" "qdiff" "$ours_s" "$ours_cpu" $((ours_kb / 1024))
printf "%-22s %9s %9s %12d\n" "numpy (float64)" "$numpy_s" "$numpy_cpu" $((numpy_kb / 1024))
"$PY" - "$WORK/out-qdiff" "$WORK/numpy.json" "$ours_s" "$numpy_s" "$ours_kb" "$numpy_kb" <<'PYEOF'
import json, sys
ours = {t["name"]: t for t in json.load(open(sys.argv[1]))["tensors"]}
theirs = json.load(open(sys.argv[2]))
worst = 0.0
for t in theirs:
    o = ours[t["name"]]
    for key in ("relative_l2", "cosine", "max_abs_diff", "snr_db"):
        if t[key] is not None and o.get(key) is not None:
            worst = max(worst, abs(o[key] - t[key]) / max(abs(t[key]), 1e-30))
ours_s, numpy_s, ours_kb, numpy_kb = map(float, sys.argv[3:7])
print(f"tensors compared: {len(theirs)}; largest relative disagreement of a metric: {worst:.2e}")
print(f"speed ratio numpy/qdiff: {numpy_s / max(ours_s, 0.001):.2f}x; "
      f"memory ratio qdiff/numpy: {ours_kb / numpy_kb:.2f}")
PYEOF
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

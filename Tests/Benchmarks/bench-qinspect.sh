#!/usr/bin/env bash
# qinspect --stats against numpy computing the same statistics on the same file, side by side in
# one run, and the time of a header-only listing. Prints wall times, peak RSS and the ratio.
#
# Usage: Tests/Benchmarks/bench-qinspect.sh [FILE.safetensors]
#   default FILE: SmolLM2-135M-Instruct F16 from ../shared/models/fetch.sh
# Needs: a release build (swift build -c release), python3 with numpy and safetensors.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
FILE=${1:-$MODELS/smollm2-135m-instruct-hf/model.safetensors}
BIN=.build/release/qinspect
[ -x "$BIN" ] || swift build -c release --product qinspect >&2
PY=${PYTHON:-python3}

cat > /tmp/qinspect-numpy-stats.py <<'PYEOF'
import json, sys
import numpy as np
from safetensors import safe_open
out = []
with safe_open(sys.argv[1], "np") as f:
    for name in f.keys():
        a = f.get_tensor(name)
        if a.dtype.kind != "f":
            continue
        x = a.astype(np.float64).ravel()
        finite = x[np.isfinite(x)]
        out.append({"name": name, "min": float(finite.min()) if finite.size else None,
                    "max": float(finite.max()) if finite.size else None,
                    "mean": float(finite.mean()) if finite.size else None,
                    "std": float(finite.std()) if finite.size else None,
                    "absmax": float(np.abs(finite).max()) if finite.size else None,
                    "zero_fraction": float((x == 0).mean()) if x.size else None,
                    "nan": int(np.isnan(x).sum()), "inf": int(np.isinf(x).sum())})
json.dump(out, open(sys.argv[2], "w"))
PYEOF

measure() { # prints "seconds peak_kb"
  /usr/bin/time -f "%e %M" -o /tmp/bench-time "$@" >/dev/null
  cat /tmp/bench-time
}

echo "file: $FILE ($(du -h "$FILE" | cut -f1))"
# Warm the page cache so both read from memory.
cat "$FILE" >/dev/null
read -r ours_s ours_kb < <(measure "$BIN" --stats --format json "$FILE")
read -r numpy_s numpy_kb < <(measure "$PY" /tmp/qinspect-numpy-stats.py "$FILE" /tmp/numpy-stats.json)
read -r head_s head_kb < <(measure "$BIN" --header-only --format json "$FILE")
printf "%-28s %9s %12s\n" "run" "wall s" "peak RSS MB"
printf "%-28s %9s %12d\n" "qinspect --stats" "$ours_s" $((ours_kb / 1024))
printf "%-28s %9s %12d\n" "numpy (float64)" "$numpy_s" $((numpy_kb / 1024))
printf "%-28s %9s %12d\n" "qinspect --header-only" "$head_s" $((head_kb / 1024))
"$PY" -c "print('speed ratio numpy/qinspect: %.2fx' % ($numpy_s / max($ours_s, 0.001)))"

# Header-only listing of the largest model (about 1 GB): median wall time of 11 runs.
BIG=${BIG:-$MODELS/qwen2.5-coder-0.5b-instruct-hf/model.safetensors}
if [ -f "$BIG" ]; then
  "$PY" - "$BIN" "$BIG" <<'PYEOF'
import os, subprocess, sys, time
binary, path = sys.argv[1], sys.argv[2]
times = []
for _ in range(11):
    t = time.perf_counter()
    subprocess.run([binary, "--header-only", "--format", "json", path], check=True, stdout=subprocess.DEVNULL)
    times.append(time.perf_counter() - t)
times.sort()
print(f"header-only listing of {path} ({os.path.getsize(path) / 1e9:.2f} GB): "
      f"median {times[5] * 1000:.1f} ms, best {times[0] * 1000:.1f} ms (whole process)")
PYEOF
fi

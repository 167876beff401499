#!/usr/bin/env bash
# Checks qinspect on the real models of ../shared/models/fetch.sh against the Python safetensors
# package and numpy: every tensor listed with the right dtype, shape and parameter count, and
# --stats agreeing with numpy (float64) to 1e-5 relative.
#
# Usage: Tests/RealModels/check-qinspect.sh     (MODELS_DIR defaults to ~/.cache/qtoolchain-models)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
BIN=.build/release/qinspect
[ -x "$BIN" ] || swift build -c release --product qinspect >&2
PY=${PYTHON:-python3}

check() { # folder expected_tensor_count
  local folder=$1 expected=$2
  local json
  json=$(mktemp)
  "$BIN" --stats --format json "$folder" >"$json"
  "$PY" - "$folder" "$json" "$expected" <<'PYEOF'
import json, os, sys
import numpy as np
from safetensors import safe_open
folder, report_path, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
report = json.load(open(report_path))[0]
ours = {t["name"]: t for t in report["tensors"]}
path = os.path.join(folder, "model.safetensors")
worst = 0.0
checked = 0
raw_cache = {}
with safe_open(path, "np") as f:
    names = list(f.keys())
    assert len(names) == expected, f"reference lists {len(names)} tensors, expected {expected}"
    assert len(ours) == expected, f"qinspect lists {len(ours)} tensors, expected {expected}"
    for name in names:
        a = f.get_tensor(name) if "bf16" not in folder else None
        t = ours[name]
        sl = f.get_slice(name)
        assert list(sl.get_shape()) == t["shape"], (name, sl.get_shape(), t["shape"])
        assert int(np.prod(sl.get_shape())) == t["parameters"], name
        if a is None:  # numpy has no bfloat16: widen the raw bits ourselves
            raw = raw_cache.setdefault(path, open(path, "rb").read())
            n = int.from_bytes(raw[:8], "little")
            hdr = json.loads(raw[8:8 + n])
            b, e = hdr[name]["data_offsets"]
            bits = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=np.uint16).astype(np.uint32) << 16
            a = bits.view(np.float32).reshape(sl.get_shape())
        x = a.astype(np.float64).ravel()
        s = t["stats"]
        ref = {"min": x.min(), "max": x.max(), "mean": x.mean(), "std": x.std(),
               "absmax": np.abs(x).max(), "zero_fraction": (x == 0).mean()}
        scale = max(np.abs(x).max(), 1e-30)
        for k, v in ref.items():
            err = abs(s[k] - v) / max(abs(v), 1e-12)
            if k in ("mean",):  # a mean near zero: judge it against the data's scale
                err = abs(s[k] - v) / scale
            worst = max(worst, err)
            assert err <= 1e-5, (name, k, s[k], v, err)
        checked += 1
print(f"{folder}: {checked} tensors, shapes and parameter counts match, "
      f"stats within {worst:.2e} relative of numpy; total parameters {report['totals']['parameters']}")
PYEOF
  rm -f "$json"
}

check "$MODELS/smollm2-135m-instruct-hf" 272
check "$MODELS/smollm2-135m-instruct-hf-bf16" 272
check "$MODELS/vit-s-focus-hf" 242
"$BIN" "$MODELS/smollm2-135m-instruct-hf" | sed -n '1,12p'
"$BIN" "$MODELS/toy-vlm-dinov2s-smollm2" | sed -n '1,12p'

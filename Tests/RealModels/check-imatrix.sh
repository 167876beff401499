#!/usr/bin/env bash
# Runs llama-imatrix on SmolLM2-135M-Instruct in both of its output layouts (GGUF, the default,
# and the legacy .dat), computes the per-column weights llama-quantize would take from each with
# the gguf package and struct, and checks that ImportanceMatrix reads the same weights.
#
# Usage: LLAMA_QUANTIZE=/path/to/llama-quantize LLAMA_IMATRIX=/path/to/llama-imatrix \
#          Tests/RealModels/check-imatrix.sh
#   MODELS_DIR defaults to ~/.cache/qtoolchain-models (smollm2-135m-instruct-gguf and corpus/).
# Needs python3 with gguf and numpy, and a debug test build (swift build --build-tests).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
QUANTIZE=${LLAMA_QUANTIZE:?set LLAMA_QUANTIZE to the path of llama-quantize}
IMATRIX=${LLAMA_IMATRIX:?set LLAMA_IMATRIX to the path of llama-imatrix}
SOURCE=$MODELS/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$QUANTIZE" --allow-requantize "$SOURCE" "$WORK/f16.gguf" F16 >"$WORK/log" 2>&1 || { cat "$WORK/log" >&2; exit 2; }
head -c 20000 "$MODELS/corpus/wiki_vital_en.valid.txt" >"$WORK/calib.txt"
for layout in gguf dat; do
  "$IMATRIX" -m "$WORK/f16.gguf" -f "$WORK/calib.txt" -o "$WORK/m.imatrix.$layout" \
    --output-format "$layout" -c 128 --chunks 3 -t 2 >"$WORK/log" 2>&1 || { cat "$WORK/log" >&2; exit 2; }
  python3 - "$WORK/m.imatrix.$layout" "$layout" >"$WORK/expected-$layout.json" <<'PYEOF'
import json, struct, sys
import numpy as np

path, layout = sys.argv[1:]
bits = lambda a: [int(v) for v in np.asarray(a, dtype=np.float32).view(np.uint32)]
out = {"weights": {}}
if layout == "gguf":
    from gguf import GGUFReader
    r = GGUFReader(path)
    field = lambda k: r.fields[k].contents()
    out.update(datasets=field("imatrix.datasets"), chunkCount=int(field("imatrix.chunk_count")),
               chunkSize=int(field("imatrix.chunk_size")))
    t = {x.name: x for x in r.tensors}
    for name in t:
        if not name.endswith(".in_sum2"):
            continue
        base = name[: -len(".in_sum2")]
        counts = np.array(t[base + ".counts"].data, dtype=np.float32).reshape(-1)
        sums = np.array(t[name].data, dtype=np.float32).reshape(len(counts), -1)
        w = np.ones_like(sums)
        for j, c in enumerate(counts):
            c = np.float32(int(np.floor(abs(c) + 0.5)) * (1 if c >= 0 else -1))
            if c > 0:
                w[j] = sums[j] / c
        out["weights"][base] = bits(w.reshape(-1))
else:
    data = open(path, "rb").read()
    off = 0
    def i32():
        global off
        v = struct.unpack_from("<i", data, off)[0]; off += 4; return v
    for _ in range(i32()):
        n = i32(); name = data[off:off + n].decode(); off += n
        ncall, nval = i32(), i32()
        v = np.frombuffer(data, dtype="<f4", count=nval, offset=off).astype(np.float32); off += 4 * nval
        out["weights"][name] = bits(v / np.float32(ncall) if ncall > 0 else v)
    out["chunkCount"] = i32() if off < len(data) else 0
    n = i32() if off + 4 <= len(data) else 0
    out["datasets"] = [data[off:off + n].decode()] if n > 0 else []
    out["chunkSize"] = 0
json.dump(out, sys.stdout)
PYEOF
  echo "== llama-imatrix --output-format $layout: $(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['weights']))" "$WORK/expected-$layout.json") entries"
  IMATRIX_FILE="$WORK/m.imatrix.$layout" IMATRIX_EXPECTED="$WORK/expected-$layout.json" \
    swift test --skip-build --filter "ImportanceMatrixTests/readsARealLlamaImatrixFile" 2>&1 |
    grep -E "✔ Test readsARealLlamaImatrixFile|✘" || true
done

#!/usr/bin/env bash
# Quantizes SmolLM2-135M-Instruct with llama-quantize (from an F16 GGUF) and with qconvert (from
# the same weights as a Hugging Face folder) for several --gguf-type mixes, and prints per mix how
# many tensors have the same type and the same bytes in both files.
#
# Usage: LLAMA_QUANTIZE=/path/to/llama-quantize Tests/RealModels/check-gguf-mixes.sh [mix ...]
#   mixes default to: q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k_m q4_k_s q4_k_m q5_k_m q6_k iq4_nl
#   QCONVERT   qconvert to run (default: the release build, then the debug build)
#   MODELS_DIR where /work/shared/models/fetch.sh put the models (default ~/.cache/qtoolchain-models);
#              needs smollm2-135m-instruct-gguf/ and smollm2-135m-instruct-hf/ (SKIP_CONVERT=0).
# Needs python3 with the gguf package. The F16 GGUF is made with
#   llama-quantize --allow-requantize SmolLM2-135M-Instruct.Q4_1.gguf f16.gguf F16
# and the HF folder is fetch.sh's conversion of the same Q4_1 file, so both hold the same floats,
# except that the HF folder stores the F32 norms in F16 (so those may differ; they are not
# quantized by either tool).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
QUANTIZE=${LLAMA_QUANTIZE:?set LLAMA_QUANTIZE to the path of llama-quantize}
SOURCE=$MODELS/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf
HF=$MODELS/smollm2-135m-instruct-hf
for path in "$SOURCE" "$HF/model.safetensors"; do
  [ -f "$path" ] || { echo "check-gguf-mixes: missing $path (run /work/shared/models/fetch.sh)" >&2; exit 2; }
done
if [ -z "${QCONVERT:-}" ]; then
  QCONVERT=$(swift build -c release --show-bin-path)/qconvert
  [ -x "$QCONVERT" ] || QCONVERT=$(swift build --show-bin-path)/qconvert
fi
[ -x "$QCONVERT" ] || { echo "check-gguf-mixes: no qconvert at $QCONVERT (swift build first)" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$QUANTIZE" --allow-requantize "$SOURCE" "$WORK/f16.gguf" F16 >"$WORK/f16.log" 2>&1 ||
  { cat "$WORK/f16.log" >&2; exit 2; }

compare() {
  python3 - "$1" "$2" "$3" <<'EOF'
import sys
from gguf import GGUFReader

mix, ref_path, ours_path = sys.argv[1:]
ref = {t.name: t for t in GGUFReader(ref_path).tensors}
ours = {t.name: t for t in GGUFReader(ours_path).tensors}
same_type = identical = 0
quantized = quantized_identical = 0
differing = []
for name, r in ref.items():
    o = ours.get(name)
    if o is None:
        differing.append(f"{name}: missing")
        continue
    if o.tensor_type != r.tensor_type:
        differing.append(f"{name}: {o.tensor_type.name} vs {r.tensor_type.name}")
        continue
    same_type += 1
    is_quantized = r.tensor_type.name not in ("F32", "F16")
    quantized += is_quantized
    if bytes(o.data.tobytes()) == bytes(r.data.tobytes()):
        identical += 1
        quantized_identical += is_quantized
    else:
        differing.append(f"{name}: {o.tensor_type.name} bytes differ")
extra = sorted(set(ours) - set(ref))
print(f"{mix:8s} identical {identical}/{len(ref)} (block-quantized {quantized_identical}/{quantized})"
      f"  same type {same_type}/{len(ref)}" + (f"  extra {len(extra)}" if extra else ""))
for line in differing[:5]:
    print(f"           {line}")
if len(differing) > 5:
    print(f"           ... {len(differing) - 5} more")
EOF
}

for mix in "${@:-q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k_m q4_k_s q4_k_m q5_k_m q6_k iq4_nl}"; do
  for m in $mix; do
    upper=$(echo "$m" | tr '[:lower:]' '[:upper:]')
    start=$(date +%s.%N)
    "$QUANTIZE" "$WORK/f16.gguf" "$WORK/ref.gguf" "$upper" >"$WORK/quantize.log" 2>&1 ||
      { cat "$WORK/quantize.log" >&2; exit 2; }
    middle=$(date +%s.%N)
    "$QCONVERT" "$HF" --layout gguf --gguf-type "$m" -o "$WORK/ours.gguf" --quiet
    end=$(date +%s.%N)
    compare "$m" "$WORK/ref.gguf" "$WORK/ours.gguf"
    printf '           llama-quantize %.1fs, qconvert %.1fs\n' \
      "$(echo "$middle - $start" | bc)" "$(echo "$end - $middle" | bc)"
    rm -f "$WORK/ref.gguf" "$WORK/ours.gguf"
  done
done

#!/usr/bin/env bash
# Checks qdiff --data on the real models of ../shared/models/fetch.sh: SmolLM2-135M F16 against
# its own 4-bit and 2-bit packs made by qconvert, on the first 8 windows of 512 tokens of
# wiki_vital_en.test.txt. Prints both perplexities (the F16 model's must be 12.17, the reference
# perplexity of /work/shared/README.md), the mean KL(F16 || pack), top-1 agreement, a summary of
# the per-layer hidden-state cosines, the activation layer mapping, and the time; checks that the
# exit status is 1, the mapping is the identity, and that the 2-bit pack is further away than
# the 4-bit one.
#
# Usage: Tests/RealModels/check-qdiff-data.sh     (MODELS_DIR defaults to ~/.cache/qtoolchain-models)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
QDIFF=.build/release/qdiff
QCONVERT=.build/release/qconvert
swift build -c release --product qdiff >&2
swift build -c release --product qconvert >&2
PY=${PYTHON:-python3}
F16=$MODELS/smollm2-135m-instruct-hf
TEXT=$MODELS/corpus/wiki_vital_en.test.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for bits in 4 2; do
  "$QCONVERT" "$F16" -o "$work/pack$bits" --bits "$bits" --quiet
  echo "== SmolLM2-135M F16 against its $bits-bit pack on 8 windows of 512 tokens"
  start=$(date +%s.%N)
  set +e
  "$QDIFF" "$F16" "$work/pack$bits" --data "$TEXT" --context 512 --windows 8 --format json \
    >"$work/data$bits.json"
  status=$?
  set -e
  end=$(date +%s.%N)
  echo "exit status $status (expected 1), $(echo "$end - $start" | bc) s (static diff included)"
  [ "$status" = 1 ]
  "$PY" - "$work/data$bits.json" "$bits" <<'PYEOF'
import json, sys
report = json.load(open(sys.argv[1]))
d = report["data"]
old, new = d["old"], d["new"]
print(f"tokenization {d['tokenization']}, {d['windows']} windows, {d['compared_positions']} positions, "
      f"{d['seconds']:.1f} s for the data comparison")
print(f"perplexity F16 {old['perplexity']:.4f} ({old['bits_per_byte']:.4f} bits/byte), "
      f"{sys.argv[2]}-bit {new['perplexity']:.4f} ({new['bits_per_byte']:.4f} bits/byte)")
print(f"mean KL(F16 || pack) {d['mean_kl']:.6f} nats (max {d['max_kl']:.4f}), "
      f"top-1 agreement {100 * d['top1_agreement']:.2f}%")
cos = [l["cosine"] for l in d["layers"]]
low = min(range(len(cos)), key=lambda i: cos[i])
print(f"hidden-state cosine over {len(cos)} layers: mean {sum(cos) / len(cos):.6f}, "
      f"first {cos[0]:.6f}, last {cos[-1]:.6f}, lowest {cos[low]:.6f} at layer {low}")
print("per layer: " + " ".join(f"{c:.4f}" for c in cos))
mapping = [p["old"] for p in d["layer_similarity"]["mapping"]]
cka = [p["cka"] for p in d["layer_similarity"]["mapping"]]
print(f"activation CKA over {d['activation_examples']} tokens: mapping identity {mapping == list(range(len(mapping)))}, "
      f"diagonal CKA min {min(cka):.4f}")
assert d["tokenization"] == "shared"
assert round(old["perplexity"], 2) == 12.17, old["perplexity"]
assert not d["same"] and report["same"] is False
assert mapping == list(range(len(mapping)))
json.dump({"kl": d["mean_kl"], "agreement": d["top1_agreement"]}, open(sys.argv[1] + ".summary", "w"))
PYEOF
done
"$PY" - "$work/data4.json.summary" "$work/data2.json.summary" <<'PYEOF'
import json, sys
four, two = (json.load(open(p)) for p in sys.argv[1:3])
assert two["kl"] > four["kl"] and two["agreement"] < four["agreement"], (four, two)
print("2-bit pack is further from F16 than the 4-bit pack: OK")
PYEOF

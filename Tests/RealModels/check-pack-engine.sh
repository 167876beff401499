#!/usr/bin/env bash
# Checks that a pack runs from its codes exactly like its dequantized checkpoint, on a real model:
# SmolLM2-135M F16 is packed by qconvert at 2, 3 and 4 bits (g64), each pack is dequantized back
# to F32 with `qconvert --to f32`, and `qdiff --data` runs both on the first 2 windows of 512
# tokens of wiki_vital_en.test.txt (the pack through the fused low-bit kernels for generation-
# sized inputs and tiles for prompts, the F32 copy through BLAS). Prints both perplexities, the
# mean and max KL between them and the top-1 agreement, and checks that they agree to 1e-4
# relative in perplexity and 1e-6 nats of mean KL. Then the peak RSS of `qinspect --perplexity`
# on one window for the pack, the F32 copy and the F16 original: the pack must stay far below the
# F32 copy's size, so no dequantized copy of the model is ever built. Finally greedy generation of
# 32 tokens from the 2- and 4-bit packs (fused kernels) and their F32 copies: the same text.
#
# Usage: Tests/RealModels/check-pack-engine.sh     (MODELS_DIR defaults to ~/.cache/qtoolchain-models)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
PY=${PYTHON:-python3}
swift build -c release >&2
Q=.build/release
F16=$MODELS/smollm2-135m-instruct-hf
TEXT=$MODELS/corpus/wiki_vital_en.test.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rss() { # COMMAND...: runs it, prints its peak RSS in MB
  /usr/bin/time -f "%M" -o "$work/rss" "$@" >/dev/null 2>&1
  echo $(($(tail -1 "$work/rss") / 1024))
}

for bits in 2 3 4; do
  "$Q/qconvert" "$F16" -o "$work/pack$bits" --bits "$bits" --group-size 64 --quiet
  "$Q/qconvert" "$work/pack$bits" -o "$work/f32-$bits" --to f32 --quiet
  echo "== $bits-bit g64 pack against its F32 dequantized copy, 2 windows of 512 tokens"
  set +e
  "$Q/qdiff" "$work/pack$bits" "$work/f32-$bits" --data "$TEXT" --context 512 --windows 2 --format json \
    >"$work/data$bits.json"
  set -e
  "$PY" - "$work/data$bits.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))["data"]
old, new = d["old"]["perplexity"], d["new"]["perplexity"]
print(f"perplexity pack {old:.6f}, F32 copy {new:.6f} (relative {abs(old - new) / new:.2e}); "
      f"mean KL {d['mean_kl']:.2e} nats (max {d['max_kl']:.2e}), top-1 agreement {100 * d['top1_agreement']:.3f}%")
assert abs(old - new) / new < 1e-4, (old, new)
assert d["mean_kl"] < 1e-6, d["mean_kl"]
PYEOF
  pack_mb=$(du -m "$work/pack$bits/model.safetensors" | cut -f1)
  f32_mb=$(du -m "$work/f32-$bits/model.safetensors" | cut -f1)
  pack_rss=$(rss "$Q/qinspect" "$work/pack$bits" --perplexity "$TEXT" --windows 1)
  f32_rss=$(rss "$Q/qinspect" "$work/f32-$bits" --perplexity "$TEXT" --windows 1)
  echo "peak RSS, one window of perplexity: pack $pack_rss MB (file $pack_mb MB), F32 copy $f32_rss MB (file $f32_mb MB)"
  [ "$pack_rss" -lt "$f32_mb" ]
done
f16_rss=$(rss "$Q/qinspect" "$F16" --perplexity "$TEXT" --windows 1)
echo "peak RSS of the F16 original, same run: $f16_rss MB"

prompt="The history of the city of Rome begins"
for bits in 2 4; do
  "$Q/qinspect" "$work/pack$bits" --generate "$prompt" --max-tokens 32 --format json >"$work/gen-pack.json"
  "$Q/qinspect" "$work/f32-$bits" --generate "$prompt" --max-tokens 32 --format json >"$work/gen-f32.json"
  "$PY" - "$work/gen-pack.json" "$work/gen-f32.json" "$bits" <<'PYEOF'
import json, sys
pack, f32 = (json.load(open(p))[0]["generation"] for p in sys.argv[1:3])
print(f"{sys.argv[3]}-bit greedy generation of {pack['tokens']} tokens, the same text from the pack and the F32 copy: "
      f"{pack['completion'] == f32['completion']}\n  {pack['completion']!r}")
assert pack["completion"] == f32["completion"] and pack["tokens"] == f32["tokens"]
PYEOF
done
echo "OK"

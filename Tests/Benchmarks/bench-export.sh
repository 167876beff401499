#!/usr/bin/env bash
# qconvert's runtime layouts against the runtimes' own converters, side by side in one run:
# - MLX 4-bit g64: `qconvert --layout mlx` against `mlx_lm.convert -q --q-bits 4 --q-group-size 64`
#   (goal: peak RSS <= 0.5x, wall time <= 0.25x);
# - GGUF Q4_0: `qconvert --layout gguf --gguf-type q4_0` from the Hugging Face folder against
#   `llama-quantize ... Q4_0` from the F16 GGUF that llama.cpp's convert_hf_to_gguf.py makes of the
#   same folder (goal: wall time <= 0.8x, peak RSS <= 0.5x).
# Prints the largest tensor (which the streaming exports' peak memory should follow), then wall
# time, CPU time and peak RSS (/usr/bin/time -v's "Maximum resident set size") of each, and the
# ratios; on a shared machine the CPU-time ratio is the steadier of the two times.
#
# Usage: Tests/Benchmarks/bench-export.sh [MODEL_FOLDER ...]
#   default: SmolLM2-135M-Instruct, and Qwen2.5-Coder-0.5B-Instruct when present (MODELS_DIR,
#   default ~/.cache/qtoolchain-models).
#   QCONVERT     qconvert to run (default: the release build)
#   LLAMA_CPP    a llama.cpp tree with build/bin/llama-quantize and convert_hf_to_gguf.py
#   MLX_PYTHON   python with mlx and mlx-lm (pip install "mlx[cpu]" mlx-lm), also running
#                convert_hf_to_gguf.py (which needs sentencepiece); default python3
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
BIN=${QCONVERT:-.build/release/qconvert}
[ -x "$BIN" ] || swift build -c release --product qconvert >&2
LLAMA=${LLAMA_CPP:?set LLAMA_CPP to a llama.cpp tree (with build/bin/llama-quantize)}
QUANTIZE=$LLAMA/build/bin/llama-quantize
PY=${MLX_PYTHON:-python3}
if [ $# -gt 0 ]; then
  MODEL_LIST=("$@")
else
  MODEL_LIST=("$MODELS/smollm2-135m-instruct-hf")
  [ -d "$MODELS/qwen2.5-coder-0.5b-instruct-hf" ] && MODEL_LIST+=("$MODELS/qwen2.5-coder-0.5b-instruct-hf")
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

measure() { # runs the command; prints "wall_seconds peak_kb cpu_seconds", or "fail" with its stderr
  if /usr/bin/time -v -o "$WORK/time" "$@" >/dev/null 2>"$WORK/stderr"; then
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); wall = (n == 3) ? t[1] * 3600 + t[2] * 60 + t[3] : t[1] * 60 + t[2] }
      /Maximum resident set size/ { peak = $2 } /User time/ { cpu += $2 } /System time/ { cpu += $2 }
      END { printf "%.2f %d %.2f\n", wall, peak, cpu }' "$WORK/time"
  else
    echo "fail"
    tail -2 "$WORK/stderr" >&2
  fi
}

row() { printf "%-8s %-34s %9.2f %9.2f %8d MB\n" "$1" "$2" "$3" "$5" $(($4 / 1024)); }

ratio() { # label ours_wall ours_kb theirs_wall theirs_kb wall_goal rss_goal ours_cpu theirs_cpu
  python3 -c "
w, r, c = $2 / $4, $3 / $5, $8 / $9
print(f'{\"$1\":<8} ratio: wall time {w:.2f}x (goal <= $6), peak RSS {r:.2f}x (goal <= $7)'
      f' -> {\"met\" if w <= $6 and r <= $7 else \"NOT met\"}; CPU time {c:.2f}x')"
}

echo "$(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for MODEL in "${MODEL_LIST[@]}"; do
  echo
  echo "== $(basename "$MODEL") ($(du -shL "$MODEL" | cut -f1))"
  python3 - "$MODEL" <<'EOF'
import json, struct, sys, glob, os
largest = (0, "")
for path in glob.glob(os.path.join(sys.argv[1], "*.safetensors")):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    for name, entry in header.items():
        if name != "__metadata__":
            size = entry["data_offsets"][1] - entry["data_offsets"][0]
            largest = max(largest, (size, name))
print(f"largest tensor: {largest[1]}, {largest[0] / 2**20:.0f} MB as stored")
EOF
  printf "%-8s %-34s %9s %9s %11s\n" layout tool "wall (s)" "CPU (s)" "peak RSS"
  cat "$MODEL"/*.safetensors >/dev/null # both read the model from the page cache

  read -r QW QK QC < <(measure "$BIN" "$MODEL" -o "$WORK/ours-mlx" --layout mlx --bits 4 --group-size 64 --quiet)
  read -r MW MK MC < <(measure "$PY" -m mlx_lm convert --hf-path "$MODEL" --mlx-path "$WORK/ref-mlx" -q --q-bits 4 --q-group-size 64)
  if [ "$QW" != fail ] && [ "$MW" != fail ]; then
    row mlx "qconvert --layout mlx" "$QW" "$QK" "$QC"
    row mlx "mlx_lm.convert -q" "$MW" "$MK" "$MC"
    ratio mlx "$QW" "$QK" "$MW" "$MK" 0.25 0.5 "$QC" "$MC"
  else
    echo "mlx      skipped: a run failed (see above)"
  fi
  rm -rf "$WORK/ours-mlx" "$WORK/ref-mlx"

  # The peer's input: an F16 GGUF of the same folder (made once, not timed).
  if ! "$PY" "$LLAMA/convert_hf_to_gguf.py" "$MODEL" --outtype f16 --outfile "$WORK/f16.gguf" >"$WORK/convert.log" 2>&1; then
    echo "gguf     skipped: convert_hf_to_gguf.py failed: $(tail -1 "$WORK/convert.log")"
    continue
  fi
  read -r QW QK QC < <(measure "$BIN" "$MODEL" -o "$WORK/ours.gguf" --layout gguf --gguf-type q4_0 --quiet)
  read -r LW LK LC < <(measure "$QUANTIZE" "$WORK/f16.gguf" "$WORK/ref.gguf" Q4_0)
  if [ "$QW" != fail ] && [ "$LW" != fail ]; then
    row gguf "qconvert --layout gguf (q4_0)" "$QW" "$QK" "$QC"
    row gguf "llama-quantize Q4_0" "$LW" "$LK" "$LC"
    ratio gguf "$QW" "$QK" "$LW" "$LK" 0.8 0.5 "$QC" "$LC"
  else
    echo "gguf     skipped: a run failed (see above)"
  fi
  rm -f "$WORK/f16.gguf" "$WORK/ours.gguf" "$WORK/ref.gguf"
done

#!/usr/bin/env bash
# qconvert (native pack, round-to-nearest) against mlx_lm.convert -q on the same F16 model, same
# bits and group size, side by side in one run. Prints wall time and peak RSS of each, and the
# ratios (goal: qconvert >= 4x faster and <= half the peak RSS).
#
# Usage: Tests/Benchmarks/bench-qconvert.sh [MODEL_FOLDER]
#   default MODEL_FOLDER: SmolLM2-135M-Instruct F16 from ../shared/models/fetch.sh
#   QCONVERT=path runs another qconvert build (e.g. a copy of an older one, for before/after).
# Needs: a release build (swift build -c release), mlx_lm.convert on PATH (pip install "mlx[cpu]" mlx-lm).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
MODEL=${1:-$MODELS/smollm2-135m-instruct-hf}
BIN=${QCONVERT:-.build/release/qconvert}
[ -x "$BIN" ] || swift build -c release --product qconvert >&2
MLX=${MLX_CONVERT:-mlx_lm.convert}
GROUP=64
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

measure() { # runs the command, prints "wall_seconds peak_kb cpu_seconds"
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/stderr" || { cat "$WORK/stderr" >&2; exit 1; }
  read -r wall peak user sys <"$WORK/time"
  echo "$wall $peak $(python3 -c "print(f'{$user + $sys:.2f}')")"
}

echo "model: $MODEL ($(du -sh "$MODEL/model.safetensors" | cut -f1) F16), group size $GROUP, $(nproc) cores"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (CPU time is shown too: wall time suffers when other jobs share the cores)"
printf "%-5s %-22s %9s %9s %11s\n" bits tool "wall (s)" "CPU (s)" "peak RSS"
for BITS in 4 2; do
  # Warm the page cache so both read the model from memory.
  cat "$MODEL"/*.safetensors >/dev/null
  read -r QS QK QC < <(measure "$BIN" "$MODEL" -o "$WORK/q$BITS" --bits "$BITS" --group-size $GROUP --method rtn --quiet)
  read -r MS MK MC < <(measure "$MLX" --hf-path "$MODEL" --mlx-path "$WORK/m$BITS" -q --q-bits "$BITS" --q-group-size $GROUP)
  printf "%-5s %-22s %9.2f %9.2f %8d MB\n" "$BITS" "qconvert" "$QS" "$QC" $((QK / 1024))
  printf "%-5s %-22s %9.2f %9.2f %8d MB\n" "$BITS" "mlx_lm.convert" "$MS" "$MC" $((MK / 1024))
  python3 -c "
qs, qk, qc, ms, mk, mc = $QS, $QK, $QC, $MS, $MK, $MC
print(f'{$BITS:<5} ratio: qconvert is {ms / qs:.1f}x faster in wall time (goal >= 4), {mc / qc:.1f}x in CPU time, '
      f'uses {qk / mk:.2f}x the peak RSS (goal <= 0.5)')"
  rm -rf "$WORK/q$BITS" "$WORK/m$BITS"
done

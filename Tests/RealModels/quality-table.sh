#!/usr/bin/env bash
# One quality table for SmolLM2-135M-Instruct (F16): our qconvert methods against llama.cpp and
# mlx-lm at about the same bits, every row measured on the SAME windows of the test text.
#
# For each row: bits per weight (8 x bytes of the weight files / the F16 model's 134,515,008
# parameters, embeddings and headers included), size in MB, perplexity on the first WINDOWS
# windows of CONTEXT (512) tokens of wiki_vital_en.test.txt with our evaluator, the mean
# KL(FP16 || row) of the next-token distributions and the top-1 agreement with FP16 on the same
# positions (`qdiff --data`; its perplexity of the new model is the one `qinspect --perplexity`
# gives on the same windows), and the wall time, CPU time (user + system), peak RSS and load
# average (1-minute, before/after) of the conversion (`/usr/bin/time -v`).
#
# Rows (PLAN, in this order; every element may be dropped or reordered):
#   fp16            the reference: `qinspect --perplexity` (and llama-perplexity on the F16 GGUF)
#   ours:GRID[:M,M] `qconvert --method M` for each M in METHODS (or the listed ones) on GRID:
#                     w2g16g16   SPEED-Q's bilevel 2-bit grid (linears 2.625 bpw, embedding 4-bit
#                                sym g32): rtn = `--method bilevel --bits 2`, gptq = GPTQ on the same
#                                grid through rules, speedq = stage-3 QAT (QAT_STEPS steps), adaround
#                                when qconvert has it; clip and hqq have no bilevel variant
#                     w4g32g128  the 4-bit bilevel grid: rtn (= bilevel 4) and speedq
#                     BgG        affine B bits, group G (e.g. 2g64, 3g64, 4g64): rtn, clip (Gram-
#                                weighted clip search on the calibration text), hqq, gptq, adaround;
#                                speedq trains on the bilevel grids only
#   llama.cpp[:T,T] llama-quantize Q2_K and Q4_K_M (LLAMA_TYPES) from an F16 GGUF made by llama.cpp's
#                   convert_hf_to_gguf.py; perplexity both by llama-perplexity (-c CONTEXT, WINDOWS
#                   chunks: it scores only the second half of each window, so its number is not
#                   comparable to ours) and by our evaluator on the GGUF dequantized back to an HF
#                   folder (../shared/models/tools/gguf_to_hf.py), on the same windows as every row
#   mlx[:B,B]       mlx_lm.convert -q affine at MLX_BITS bits, group 64; evaluated by our evaluator
#                   on the folder dequantized back by `mlx_lm.convert -d` (our reader does not load
#                   MLX-quantized folders)
# Calibration (gptq, clip, speedq, adaround) reads wiki_vital_en.train.txt only, never the test split.
#
# Usage: Tests/RealModels/quality-table.sh
#   env: WINDOWS (16), CONTEXT (512), METHODS ("rtn clip hqq gptq speedq", add adaround), PLAN,
#        QAT_STEPS (60), QAT_LR (5e-5), QAT_EMBEDDING (a rule SPEC such as 8g32:sym for the
#        embedding of speedq rows, which then trains against it; empty: SPEED-Q's 4-bit policy),
#        QAT_TARGET_BPW (bits per weight of the linears for speedq rows: a bilevel grid per linear
#        by sensitivity, each trained on its own; empty: the row's grid everywhere),
#        QAT_CHECKPOINT (a training-state file for speedq rows: a run resumes from it, so a long
#        training can be spread over several runs with the same settings), QAT_STOP_AFTER (stop
#        training after this global step and measure the pack so far; with QAT_CHECKPOINT a later run
#        goes on from there), QAT_FREEZE_NORMS (1: speedq rows keep the norm weights as stored
#        instead of training them),
#        CALIB_WINDOWS (32), LLAMA_TYPES ("Q2_K Q4_K_M"),
#        MLX_BITS ("2 3 4"), THREADS (2), OUT (work folder, .build/quality-table), TSV
#        (OUT/quality-table.tsv), MODELS_DIR (~/.cache/qtoolchain-models), PYTHON (python3),
#        LLAMA_CPP_DIR (the llama.cpp source tree with convert_hf_to_gguf.py and gguf-py),
#        LLAMA_CPP_BIN (its build/bin with llama-quantize and llama-perplexity), GGUF_PYTHONPATH
#        (extra PYTHONPATH for convert_hf_to_gguf.py, e.g. a folder with torch), SHARED_TOOLS
#        (../shared/models/tools), KEEP (1 keeps the converted models in OUT)
# Needs: a release build (`swift build -c release`), python3 with numpy and safetensors; llama.cpp
# and mlx_lm for their rows (each anchor is skipped with a message when its tools are missing).
# Each finished row is appended to the TSV at once, so a run cut short still leaves its rows.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/Tests/RealModels"
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
MODEL=${MODEL:-$MODELS/smollm2-135m-instruct-hf}
TEXT=${TEXT:-$MODELS/corpus/wiki_vital_en.test.txt}
CALIB=${CALIB:-$MODELS/corpus/wiki_vital_en.train.txt}
WINDOWS=${WINDOWS:-16}
CONTEXT=${CONTEXT:-512}
METHODS=${METHODS:-"rtn clip hqq gptq speedq"}
PLAN=${PLAN:-"fp16 ours:w2g16g16 llama.cpp mlx ours:4g64 ours:3g64 ours:2g64 ours:w4g32g128"}
QAT_STEPS=${QAT_STEPS:-60}
QAT_LR=${QAT_LR:-5e-5}
QAT_EMBEDDING=${QAT_EMBEDDING:-}
QAT_TARGET_BPW=${QAT_TARGET_BPW:-}
QAT_CHECKPOINT=${QAT_CHECKPOINT:-}
QAT_STOP_AFTER=${QAT_STOP_AFTER:-}
QAT_FREEZE_NORMS=${QAT_FREEZE_NORMS:-}
CALIB_WINDOWS=${CALIB_WINDOWS:-32}
LLAMA_TYPES=${LLAMA_TYPES:-"Q2_K Q4_K_M"}
MLX_BITS=${MLX_BITS:-"2 3 4"}
THREADS=${THREADS:-2}
PY=${PYTHON:-python3}
LLAMA_CPP_DIR=${LLAMA_CPP_DIR:-/work/peers/llama_cpp_python-0.3.36/vendor/llama.cpp}
LLAMA_CPP_BIN=${LLAMA_CPP_BIN:-$LLAMA_CPP_DIR/build/bin}
GGUF_PYTHONPATH=${GGUF_PYTHONPATH:-}
SHARED_TOOLS=${SHARED_TOOLS:-$ROOT/../shared/models/tools}
OUT=${OUT:-$ROOT/.build/quality-table}
TSV=${TSV:-$OUT/quality-table.tsv}
KEEP=${KEEP:-0}
QC=$ROOT/.build/release/qconvert
QI=$ROOT/.build/release/qinspect
QD=$ROOT/.build/release/qdiff
TABLE="$PY $HERE/quality_table.py"
# The F16 model's parameter count: bits per weight of every row are over the same parameters.
PARAMETERS=134515008

say() { echo "quality-table: $*" >&2; }

for tool in "$QC" "$QI" "$QD"; do
  [ -x "$tool" ] || { say "$tool is missing: run 'swift build -c release' first"; exit 2; }
done
for file in "$MODEL/model.safetensors" "$TEXT" "$CALIB"; do
  [ -f "$file" ] || { say "$file is missing: run ../shared/models/fetch.sh"; exit 2; }
done
mkdir -p "$OUT"
WORK="$OUT/work"
mkdir -p "$WORK"

HEADER="row	bpw	size_mb	ppl	ppl_llama_cpp	mean_kl	top1	wall_s	cpu_s	rss_mb	load	note"
if [ ! -s "$TSV" ]; then echo "$HEADER" >"$TSV"; fi
{
  echo "# $(date -u +%FT%TZ) model $MODEL, text $TEXT, $WINDOWS windows of $CONTEXT tokens,"
  echo "# calibration $CALIB ($CALIB_WINDOWS windows), QAT $QAT_STEPS steps at lr $QAT_LR, $(nproc) cores"
} >>"$OUT/runs.log"

load1() { cut -d' ' -f1 /proc/loadavg; }

# bytes of a model: a file, or the weight files of a folder
weight_bytes() {
  if [ -f "$1" ]; then stat -c %s "$1"; else cat "$1"/*.safetensors | wc -c; fi
}

# emit ROW BYTES PPL PPL_LLAMA KL TOP1 TIMEFILE LOAD NOTE: one TSV line, and the table so far
emit() {
  local row=$1 bytes=$2 ppl=$3 pplc=$4 kl=$5 top1=$6 timefile=$7 load=$8 note=$9
  local bpw=- size=- timing="-	-	-"
  if [ "$bytes" != - ]; then
    bpw=$(awk -v b="$bytes" -v p="$PARAMETERS" 'BEGIN { printf "%.3f", 8 * b / p }')
    size=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
  fi
  [ -n "$timefile" ] && [ -f "$timefile" ] && timing=$($TABLE time "$timefile")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "$bpw" "$size" "$ppl" "$pplc" "$kl" "$top1" \
    "$timing" "$load" "$note" >>"$TSV"
  say "row done: $row"
  $TABLE render "$TSV" >&2
}

# timed NAME COMMAND...: runs COMMAND under /usr/bin/time -v (report in WORK/NAME.time, output in
# WORK/NAME.log); sets LOAD to the 1-minute load average before/after.
timed() {
  local name=$1
  shift
  local before
  before=$(load1)
  /usr/bin/time -v -o "$WORK/$name.time" "$@" >"$WORK/$name.log" 2>&1
  local status=$?
  LOAD="$before/$(load1)"
  return $status
}

# evaluate FOLDER NAME: sets PPL, KL, TOP1 from `qdiff --data` of the FP16 model against FOLDER
evaluate() {
  local folder=$1 name=$2
  PPL=- KL=- TOP1=-
  "$QD" "$MODEL" "$folder" --data "$TEXT" --context "$CONTEXT" --windows "$WINDOWS" --format json \
    >"$WORK/$name.qdiff.json" 2>"$WORK/$name.qdiff.err"
  local status=$?
  if [ $status -gt 1 ]; then
    say "$name: qdiff failed (exit $status): $(tail -1 "$WORK/$name.qdiff.err")"
    return 1
  fi
  local fields
  fields=$($TABLE qdiff "$WORK/$name.qdiff.json") || return 1
  IFS=$'\t' read -r PPL KL TOP1 _ <<<"$fields"
}

cleanup() { [ "$KEEP" = 1 ] || rm -rf "$@"; }

# llama-perplexity MODEL.gguf NAME: prints its final estimate on the same text, context and count
llama_ppl() {
  [ -x "$LLAMA_CPP_BIN/llama-perplexity" ] || { echo -; return; }
  "$LLAMA_CPP_BIN/llama-perplexity" -m "$1" -f "$TEXT" -c "$CONTEXT" --chunks "$WINDOWS" -t "$THREADS" \
    >"$WORK/$2.llama-ppl.log" 2>&1
  $TABLE llama-ppl "$WORK/$2.llama-ppl.log"
}

F16_GGUF=""
# Finds or makes the F16 GGUF of MODEL; sets F16_GGUF, or returns 1 with a message.
f16_gguf() {
  [ -n "$F16_GGUF" ] && return 0
  local found
  found=$(ls "$MODELS"/smollm2-135m-instruct-gguf/*[Ff]16*.gguf 2>/dev/null | head -1)
  if [ -n "$found" ]; then F16_GGUF=$found; return 0; fi
  if [ -s "$WORK/smollm2-f16.gguf" ]; then F16_GGUF=$WORK/smollm2-f16.gguf; return 0; fi
  if [ ! -f "$LLAMA_CPP_DIR/convert_hf_to_gguf.py" ]; then
    say "llama.cpp: $LLAMA_CPP_DIR/convert_hf_to_gguf.py is missing (set LLAMA_CPP_DIR): skipping its rows"
    return 1
  fi
  say "llama.cpp: converting $MODEL to an F16 GGUF"
  if ! PYTHONPATH="$LLAMA_CPP_DIR/gguf-py${GGUF_PYTHONPATH:+:$GGUF_PYTHONPATH}" timed f16-gguf \
    "$PY" "$LLAMA_CPP_DIR/convert_hf_to_gguf.py" "$MODEL" --outtype f16 --outfile "$WORK/smollm2-f16.gguf"; then
    say "llama.cpp: convert_hf_to_gguf.py failed ($(tail -1 "$WORK/f16-gguf.log")); it needs torch:"
    say "  pip install --target DIR torch and set GGUF_PYTHONPATH=DIR; skipping its rows"
    return 1
  fi
  F16_GGUF=$WORK/smollm2-f16.gguf
}

row_fp16() {
  say "fp16: perplexity of $MODEL"
  local before ppl=-
  before=$(load1)
  if "$QI" "$MODEL" --perplexity "$TEXT" --context "$CONTEXT" --windows "$WINDOWS" --format json \
    >"$WORK/fp16.qinspect.json" 2>"$WORK/fp16.qinspect.err"; then
    ppl=$($TABLE qinspect "$WORK/fp16.qinspect.json" | cut -f1)
  else
    say "fp16: qinspect failed: $(tail -1 "$WORK/fp16.qinspect.err")"
  fi
  local pplc=-
  if [ -x "$LLAMA_CPP_BIN/llama-perplexity" ] && f16_gguf; then pplc=$(llama_ppl "$F16_GGUF" fp16); fi
  emit "fp16" "$(weight_bytes "$MODEL")" "$ppl" "$pplc" 0 1 "" "$before/$(load1)" \
    "reference; ppl_llama_cpp on the F16 GGUF"
}

# Sets ARGS to the qconvert arguments of METHOD on GRID, or SKIP to why it has none.
ours_arguments() {
  local method=$1 grid=$2
  SKIP=""
  ARGS=()
  local calib=(--calib "$CALIB" --calib-windows "$CALIB_WINDOWS" --calib-context "$CONTEXT")
  case "$grid" in
    w2g16g16 | w4g32g128)
      local bits=${grid:1:1}
      case "$method" in
        rtn) ARGS=(--method bilevel --bits "$bits") ;;
        speedq)
          ARGS=(--method speedq --bits "$bits" "${calib[@]}" --qat-steps "$QAT_STEPS" --qat-lr "$QAT_LR")
          [ -n "$QAT_EMBEDDING" ] && ARGS+=(--rule "embed_tokens\\.weight\$=$QAT_EMBEDDING")
          [ -n "$QAT_TARGET_BPW" ] && ARGS+=(--target-bpw "$QAT_TARGET_BPW")
          [ -n "$QAT_CHECKPOINT" ] && ARGS+=(--qat-checkpoint "$QAT_CHECKPOINT")
          [ -n "$QAT_STOP_AFTER" ] && ARGS+=(--qat-stop-after "$QAT_STOP_AFTER")
          [ "$QAT_FREEZE_NORMS" = 1 ] && ARGS+=(--qat-freeze-norms) ;;
        gptq | adaround)
          # The bilevel grid on the decoder linears, SPEED-Q's 4-bit symmetric g32 embedding.
          ARGS=(--method "$method" --bits "$bits" "${calib[@]}"
            --rule "layers\\..*_proj\\.weight\$=bilevel$bits" --rule "embed_tokens\\.weight\$=4g32:sym") ;;
        *) SKIP="$method has no bilevel variant" ;;
      esac ;;
    [2348]g*)
      local bits=${grid%%g*} group=${grid#*g}
      case "$method" in
        rtn | hqq) ARGS=(--method "$method" --bits "$bits" --group-size "$group") ;;
        clip | gptq | adaround) ARGS=(--method "$method" --bits "$bits" --group-size "$group" "${calib[@]}") ;;
        speedq) SKIP="speedq trains on the bilevel grids (w2g16g16, w4g32g128) only" ;;
        *) SKIP="unknown method" ;;
      esac ;;
    *) SKIP="unknown grid '$grid'" ;;
  esac
}

row_ours() {
  local grid=$1 methods=${2:-$METHODS} method
  for method in ${methods//,/ }; do
    local name="ours-$method-$grid"
    [ "$method" = speedq ] && [ -n "$QAT_EMBEDDING" ] && name="$name-embed-$QAT_EMBEDDING"
    [ "$method" = speedq ] && [ -n "$QAT_TARGET_BPW" ] && name="$name-bpw-$QAT_TARGET_BPW"
    [ "$method" = speedq ] && [ -n "$QAT_STOP_AFTER" ] && name="$name-step-$QAT_STOP_AFTER"
    [ "$method" = speedq ] && [ "$QAT_FREEZE_NORMS" = 1 ] && name="$name-frozen-norms"
    if ! "$QC" --help 2>&1 | tr '\n' ' ' | grep -qE "values: +rtn[^)]*\b$method\b"; then
      say "$name: qconvert has no '--method $method': skipped"
      continue
    fi
    ours_arguments "$method" "$grid"
    if [ -n "$SKIP" ]; then
      say "$name: skipped ($SKIP)"
      continue
    fi
    say "$name: qconvert $MODEL -o $WORK/$name ${ARGS[*]}"
    if ! timed "$name" "$QC" "$MODEL" -o "$WORK/$name" "${ARGS[@]}" --force; then
      local reason
      reason=$(grep -v '^\s' "$WORK/$name.log" | tail -1)
      say "$name: qconvert failed: $reason"
      emit "$name" - - - - - "$WORK/$name.time" "$LOAD" "conversion failed: $reason"
      continue
    fi
    local note="qconvert ${ARGS[*]}"
    note=${note//$CALIB/TRAIN}
    if evaluate "$WORK/$name" "$name"; then
      emit "$name" "$(weight_bytes "$WORK/$name")" "$PPL" - "$KL" "$TOP1" "$WORK/$name.time" "$LOAD" "$note"
    else
      emit "$name" "$(weight_bytes "$WORK/$name")" - - - - "$WORK/$name.time" "$LOAD" "evaluation failed; $note"
    fi
    cleanup "$WORK/$name"
  done
}

row_llama() {
  local types=${1:-$LLAMA_TYPES}
  if [ ! -x "$LLAMA_CPP_BIN/llama-quantize" ]; then
    say "llama.cpp: $LLAMA_CPP_BIN/llama-quantize is missing (set LLAMA_CPP_BIN): skipping its rows"
    return
  fi
  f16_gguf || return
  local type
  for type in ${types//,/ }; do
    local name="llama.cpp-$type"
    say "$name: llama-quantize $F16_GGUF $type"
    if ! timed "$name" "$LLAMA_CPP_BIN/llama-quantize" "$F16_GGUF" "$WORK/$name.gguf" "$type" "$THREADS"; then
      say "$name: llama-quantize failed: $(tail -1 "$WORK/$name.log")"
      continue
    fi
    local load=$LOAD pplc
    pplc=$(llama_ppl "$WORK/$name.gguf" "$name")
    local note="llama-quantize $type; ppl by our evaluator on the GGUF dequantized to F32"
    if PYTHONPATH="$MODELS/py${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$SHARED_TOOLS/gguf_to_hf.py" "$WORK/$name.gguf" \
      "$WORK/$name-hf" --dtype f32 --tokenizer-from "$MODEL" >"$WORK/$name.dequant.log" 2>&1 \
      && evaluate "$WORK/$name-hf" "$name"; then
      emit "$name" "$(weight_bytes "$WORK/$name.gguf")" "$PPL" "$pplc" "$KL" "$TOP1" "$WORK/$name.time" "$load" "$note"
    else
      say "$name: dequantizing to an HF folder failed: $(tail -1 "$WORK/$name.dequant.log")"
      emit "$name" "$(weight_bytes "$WORK/$name.gguf")" - "$pplc" - - "$WORK/$name.time" "$load" \
        "llama-quantize $type; not evaluated on our windows"
    fi
    cleanup "$WORK/$name-hf" "$WORK/$name.gguf"
  done
}

row_mlx() {
  local bits_list=${1:-$MLX_BITS}
  if ! "$PY" -c "import mlx_lm" 2>/dev/null; then
    say "mlx: mlx_lm is not installed (pip install 'mlx[cpu]' mlx-lm): skipping its rows"
    return
  fi
  local bits
  for bits in ${bits_list//,/ }; do
    local name="mlx-affine-${bits}g64"
    rm -rf "$WORK/$name" "$WORK/$name-f16"
    say "$name: mlx_lm.convert -q --q-bits $bits --q-group-size 64"
    if ! timed "$name" "$PY" -m mlx_lm convert --hf-path "$MODEL" --mlx-path "$WORK/$name" -q --q-bits "$bits" \
      --q-group-size 64; then
      say "$name: mlx_lm.convert failed: $(tail -1 "$WORK/$name.log")"
      continue
    fi
    local load=$LOAD note="mlx_lm.convert -q affine; ppl by our evaluator on the folder dequantized by mlx_lm.convert -d"
    # mlx_lm rewrites tokenizer.json in a form our tokenizer does not read; the tokenizer is the model's.
    if "$PY" -m mlx_lm convert --hf-path "$WORK/$name" --mlx-path "$WORK/$name-f16" -d >"$WORK/$name.dequant.log" 2>&1 \
      && cp "$MODEL/tokenizer.json" "$WORK/$name-f16/tokenizer.json" \
      && evaluate "$WORK/$name-f16" "$name"; then
      emit "$name" "$(weight_bytes "$WORK/$name")" "$PPL" - "$KL" "$TOP1" "$WORK/$name.time" "$load" "$note"
    else
      say "$name: dequantizing failed: $(tail -1 "$WORK/$name.dequant.log")"
      emit "$name" "$(weight_bytes "$WORK/$name")" - - - - "$WORK/$name.time" "$load" "not evaluated"
    fi
    cleanup "$WORK/$name" "$WORK/$name-f16"
  done
  say "mlx: DWQ, GPTQ and AWQ (mlx_lm dwq/gptq/awq) are not run: distillation and calibration on the"
  say "  reference BLAS of mlx's Linux CPU build take far longer than the other rows"
}

say "$WINDOWS windows of $CONTEXT tokens of $TEXT; rows go to $TSV"
for step in $PLAN; do
  case "$step" in
    fp16) row_fp16 ;;
    ours:*:*) step=${step#ours:}; row_ours "${step%%:*}" "${step#*:}" ;;
    ours:*) row_ours "${step#ours:}" ;;
    llama.cpp) row_llama ;;
    llama.cpp:*) row_llama "${step#llama.cpp:}" ;;
    mlx) row_mlx ;;
    mlx:*) row_mlx "${step#mlx:}" ;;
    *) say "unknown PLAN step '$step'" ;;
  esac
done
echo
$TABLE render "$TSV"
say "TSV: $TSV"

#!/usr/bin/env bash
# Reruns, on a real system, the trials of a hostile but fair user that the suite cannot hold:
# signals at random moments of a --force overwrite, a full disk, endless and blocking inputs,
# special files as outputs, and writers racing for one output. Prints one line per trial kind
# with its counts, and exits 1 if any trial went wrong.
#
# Usage: Tests/RealModels/check-hostile.sh [MODEL_FOLDER]
#   MODEL_FOLDER  a safetensors model folder (default: Fixtures/tiny-chat; the SmolLM2 folder of
#                 ../shared/models/fetch.sh makes the signal trials land mid-write more often)
#   TRIALS        signal trials per signal (default 20)
#   BIN           folder of the built tools (default: .build/release, built if missing)
set -uo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-Fixtures/tiny-chat}
TRIALS=${TRIALS:-20}
BIN=${BIN:-.build/release}
[ -x "$BIN/qconvert" ] || swift build -c release >&2 || exit 1
QCONVERT=$BIN/qconvert QINSPECT=$BIN/qinspect QDIFF=$BIN/qdiff
WORK=$(mktemp -d /tmp/check-hostile.XXXXXX)
trap 'umount "$WORK/disk" 2>/dev/null; rm -rf "$WORK"' EXIT
failures=0
report() { # name ok total [detail]
  printf '%-44s %3d of %3d as expected%s\n' "$1" "$2" "$3" "${4:+  ($4)}"
  [ "$2" -eq "$3" ] || failures=$((failures + 1))
}
# The files of a folder with their hashes, one line each: equal listings mean equal folders.
listing() { (cd "$1" 2>/dev/null && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) ; }
leftovers() { find "$(dirname "$1")" -maxdepth 1 -name ".$(basename "$1").tmp-*" | wc -l; }

# A first output, and a second one written differently, so every state of the path is known.
"$QCONVERT" "$MODEL" -o "$WORK/old" --bits 4 --group-size 32 --quiet || exit 1
"$QCONVERT" "$MODEL" -o "$WORK/new" --bits 8 --group-size 64 --quiet || exit 1
old_listing=$(listing "$WORK/old")
new_listing=$(listing "$WORK/new")
start=$(date +%s%N)
"$QCONVERT" "$MODEL" -o "$WORK/timed" --bits 8 --group-size 64 --quiet
run_ns=$(( $(date +%s%N) - start ))

# 1. A signal at a random moment of `--force` over an existing output: the output is the old
#    one or the new one, whole; TERM and HUP leave no temporary; after KILL the next run clears it.
for signal in TERM HUP KILL; do
  ok=0 mid=0
  for _ in $(seq "$TRIALS"); do
    rm -rf "$WORK/out"
    cp -r "$WORK/old" "$WORK/out"
    "$QCONVERT" "$MODEL" -o "$WORK/out" --bits 8 --group-size 64 --quiet --force &
    pid=$!
    sleep "$(awk -v r="$RANDOM" -v t="$run_ns" 'BEGIN { printf "%.4f", r / 32768 * t / 1e9 }')"
    kill -s "$signal" "$pid" 2>/dev/null && mid=$((mid + 1))
    wait "$pid" 2>/dev/null
    now=$(listing "$WORK/out")
    whole=0; [ "$now" = "$old_listing" ] || [ "$now" = "$new_listing" ] && whole=1
    left=$(leftovers "$WORK/out")
    if [ "$signal" = KILL ] && [ "$left" -gt 0 ]; then
      # The next run for the same output removes what the killed one left.
      "$QCONVERT" "$MODEL" -o "$WORK/out" --bits 8 --group-size 64 --quiet --force
      left=$(leftovers "$WORK/out")
      [ "$(listing "$WORK/out")" = "$new_listing" ] || whole=0
    fi
    [ "$whole" -eq 1 ] && [ "$left" -eq 0 ] && ok=$((ok + 1))
  done
  report "SIG$signal during a --force overwrite" "$ok" "$TRIALS" "$mid signalled mid-run"
done

# 2. A full disk: the run fails with a message, the old output is untouched, nothing is left.
mkdir -p "$WORK/disk"
if mount -t tmpfs -o size=64k tmpfs "$WORK/disk" 2>/dev/null; then
  cp -r "$WORK/old" "$WORK/disk/out" 2>/dev/null || { rm -rf "$WORK/disk/out"; mkdir "$WORK/disk/out"; }
  before=$(listing "$WORK/disk/out")
  "$QCONVERT" "$MODEL" -o "$WORK/disk/out" --bits 8 --quiet --force 2>"$WORK/disk.err"
  status=$?
  ok=0
  [ "$status" -eq 1 ] && ok=$((ok + 1))
  [ "$(listing "$WORK/disk/out")" = "$before" ] && ok=$((ok + 1))
  [ "$(leftovers "$WORK/disk/out")" -eq 0 ] && ok=$((ok + 1))
  [ "$(wc -l <"$WORK/disk.err")" -eq 1 ] && ok=$((ok + 1))
  report "disk full (64 KiB tmpfs)" "$ok" 4 "exit $status: $(head -c 120 "$WORK/disk.err")"
  umount "$WORK/disk"
else
  echo "disk full: not run (mounting a tmpfs needs root with CAP_SYS_ADMIN)"
fi

# 3. Endless and blocking inputs end at once with an error; special files are never replaced.
ok=0 total=0
expect_fast_failure() { # label, command...
  local label=$1; shift
  total=$((total + 1))
  local begin=$(date +%s)
  timeout 20 "$@" >/dev/null 2>"$WORK/err"
  local status=$?
  if [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && [ $(( $(date +%s) - begin )) -lt 10 ] \
    && [ "$(wc -l <"$WORK/err")" -eq 1 ]; then
    ok=$((ok + 1))
  else
    echo "  $label: exit $status: $(head -c 200 "$WORK/err")"
  fi
}
expect_fast_failure "qinspect /dev/zero" "$QINSPECT" /dev/zero
expect_fast_failure "qinspect - </dev/zero" sh -c "'$QINSPECT' - </dev/zero"
mkdir -p "$WORK/zero-shard"
ln -sf /dev/zero "$WORK/zero-shard/model.safetensors"
expect_fast_failure "shard linked to /dev/zero" "$QINSPECT" "$WORK/zero-shard"
mkfifo "$WORK/fifo"
expect_fast_failure "qinspect FIFO" "$QINSPECT" "$WORK/fifo"
expect_fast_failure "qconvert FIFO" "$QCONVERT" "$WORK/fifo" -o "$WORK/from-fifo"
for device in /dev/null /dev/full; do
  expect_fast_failure "qconvert -o $device --force" "$QCONVERT" "$MODEL" -o "$device" --force
  expect_fast_failure "gguf -o $device --force" "$QCONVERT" "$MODEL" -o "$device" --layout gguf --force
  expect_fast_failure "qdiff --save-mapping $device" "$QDIFF" "$MODEL" "$MODEL" --save-mapping "$device"
  total=$((total + 1)); [ -c "$device" ] && ok=$((ok + 1))
done
expect_fast_failure "qconvert -o FIFO --force" "$QCONVERT" "$MODEL" -o "$WORK/fifo" --force --layout gguf
total=$((total + 1)); [ -p "$WORK/fifo" ] && ok=$((ok + 1))
expect_fast_failure "qinspect > /dev/full" sh -c "'$QINSPECT' '$MODEL' >/dev/full"
report "endless inputs, special files" "$ok" "$total"

# 4. Writers racing for one output without --force: exactly one wins, the output is whole.
ok=0
for _ in $(seq 10); do
  rm -rf "$WORK/race"
  "$QCONVERT" "$MODEL" -o "$WORK/race" --bits 8 --group-size 64 --quiet 2>/dev/null & a=$!
  "$QCONVERT" "$MODEL" -o "$WORK/race" --bits 8 --group-size 64 --quiet 2>/dev/null & b=$!
  wait "$a"; sa=$?
  wait "$b"; sb=$?
  wins=$(( (sa == 0) + (sb == 0) ))
  [ "$wins" -eq 1 ] && [ "$(listing "$WORK/race")" = "$new_listing" ] && [ "$(leftovers "$WORK/race")" -eq 0 ] \
    && ok=$((ok + 1))
done
report "two writers, one output, no --force" "$ok" 10

# 5. Outputs over, around or inside the input are refused and the input is unchanged.
cp -r "$MODEL" "$WORK/input"
before=$(listing "$WORK/input")
ok=0 total=0
for output in "$WORK/input" "$WORK" "$WORK/input/sub" "$WORK/input/model.safetensors"; do
  total=$((total + 1))
  "$QCONVERT" "$WORK/input" -o "$output" --force --quiet 2>/dev/null || ok=$((ok + 1))
done
total=$((total + 1))
(cd "$WORK/input" && "$QCONVERT" "$WORK/input" -o . --force --quiet 2>/dev/null) || ok=$((ok + 1))
total=$((total + 1)); [ "$(listing "$WORK/input")" = "$before" ] && ok=$((ok + 1))
report "outputs over or around the input" "$ok" "$total"

exit $((failures > 0))

#!/usr/bin/env bash
# simple_nn.sh: the course's SimpleNN (100 epochs), cgrad against PyTorch in the same run on the
# same machine: whole processes, and each program's training loop alone, with the ratios. It
# builds nothing: build cgrad first (cmake -S . -B build && cmake --build build -j2). Figures, not
# pass/fail: it exits 0 unless cgrad fails or an option is wrong.
#
# Timed, each RUNS times after warm-up runs (hyperfine when installed, else a loop around
# `date +%s.%N`, subtracted with awk):
#   cgrad, one thread       BUILD/simple_nn --device DEV --threads 1
#   cgrad, OpenMP default   BUILD/simple_nn --device DEV
#   PyTorch, one thread     PYTHON TORCH_WORKLOADS simple_nn --device DEV --threads 1
# Each program also reports the seconds of its training loop alone, which leave out start-up
# (loading libraries, creating the CUDA context, importing torch) and making the data: cgrad on
# its last line, "Training: 100 epochs, 3200 steps in 0.091 s (28.5 us per step)", PyTorch as
# "seconds" in its JSON line. The timed runs append their output to files to read these from.
# When PyTorch cannot run (no torch, or a CPU-only torch asked for cuda), cgrad is timed alone.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$ROOT/build"
DEVICE=cpu
RUNS=10
PYTHON=${PYTHON:-/usr/bin/python3}
TORCH_WORKLOADS=${TORCH_WORKLOADS:-$ROOT/bench/torch_workloads.py}
KEEP_DIR=""
USE_HYPERFINE=auto
USE_TORCH=yes

usage() {
    cat <<EOF
usage: bench/simple_nn.sh [options]
Time cgrad's simple_nn and PyTorch's SimpleNN (100 epochs each), as whole processes and as each
program reports its training loop, and print the medians, the minimums and the ratios.

  --build-dir DIR         where simple_nn was built (default: ROOT/build)
  --device DEV            cpu, cuda or cuda:N, passed to both programs (default: cpu)
  --runs N                timed runs of each command (default: 10)
  --torch-workloads PATH  the PyTorch script (default: \$TORCH_WORKLOADS, else
                          ROOT/bench/torch_workloads.py)
  --python PATH           interpreter with torch and numpy (default: \$PYTHON, else /usr/bin/python3)
  --no-torch              time cgrad only
  --keep DIR              keep the raw timings (seconds per run, hyperfine JSON, both programs' output)
  --no-hyperfine          time with a shell loop even when hyperfine is installed
  --help                  this text

ROOT is the repository holding this script: $ROOT
EOF
}

die() {
    echo "simple_nn.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) BUILD_DIR=${2:?--build-dir needs a value}; shift 2 ;;
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
    --torch-workloads) TORCH_WORKLOADS=${2:?--torch-workloads needs a value}; shift 2 ;;
    --python) PYTHON=${2:?--python needs a value}; shift 2 ;;
    --no-torch) USE_TORCH=no; shift ;;
    --keep) KEEP_DIR=${2:?--keep needs a value}; shift 2 ;;
    --no-hyperfine) USE_HYPERFINE=no; shift ;;
    --help | -h) usage; exit 0 ;;
    *) echo "simple_nn.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

case "$DEVICE" in cpu | cuda | cuda:[0-9]*) ;; *) die "--device: '$DEVICE' is not cpu, cuda or cuda:N" ;; esac
case "$RUNS" in '' | *[!0-9]*) die "--runs: '$RUNS' is not a whole number" ;; esac
[ "$RUNS" -ge 1 ] || die "--runs must be at least 1"
SIMPLE_NN="$BUILD_DIR/simple_nn"
[ -x "$SIMPLE_NN" ] || die "no executable $SIMPLE_NN (build first: cmake -S . -B build && cmake --build build -j2, or give --build-dir)"
if [ "$USE_TORCH" = yes ]; then
    [ -f "$TORCH_WORKLOADS" ] || die "no PyTorch script $TORCH_WORKLOADS (set TORCH_WORKLOADS, give --torch-workloads, or --no-torch)"
    "$PYTHON" -c "import torch, numpy" 2>/dev/null ||
        die "$PYTHON cannot import torch and numpy (give --python or --no-torch; Debian: apt install python3-torch)"
fi
if [ "$USE_HYPERFINE" = auto ]; then
    if command -v hyperfine >/dev/null; then USE_HYPERFINE=yes; else USE_HYPERFINE=no; fi
fi

if [ -n "$KEEP_DIR" ]; then
    mkdir -p "$KEEP_DIR"
    WORK=$(cd "$KEEP_DIR" && pwd)
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi

# The three commands, as shell text. Each timed run appends its output to a file, so that the
# program's own training seconds can be read afterwards: cgrad's "Training:" line (simple_nn
# without --quiet: ten "Epoch" lines more, a few microseconds of printing), PyTorch's JSON line.
q() { printf '%q' "$1"; }
CMD_CG1="$(q "$SIMPLE_NN") --device $DEVICE --threads 1"
CMD_CGN="$(q "$SIMPLE_NN") --device $DEVICE"
CMD_PT1="$(q "$PYTHON") $(q "$TORCH_WORKLOADS") simple_nn --device $DEVICE --threads 1"
TORCH_LINES="$WORK/torch_lines.jsonl"

# run_once COMMAND: runs it once, untimed; prints its output, returns its status. This warms the
# file cache, and a failure (no GPU, a CPU-only build) shows the program's own message here
# rather than inside the timing loop.
run_once() {
    bash -c "$1" 2>&1
}

# time_runs NAME COMMAND: writes the wall-clock seconds of RUNS runs of COMMAND to WORK/NAME.txt.
# hyperfine runs the command through a shell and subtracts the shell's start-up time; the loop
# runs it with eval, so that no extra shell is started.
time_runs() {
    local name=$1 cmd=$2
    if [ "$USE_HYPERFINE" = yes ]; then
        hyperfine --warmup 1 --runs "$RUNS" --style none --export-json "$WORK/$name.json" "$cmd" >/dev/null
        "$PYTHON" -c 'import json, sys
for t in json.load(open(sys.argv[1]))["results"][0]["times"]:
    print(t)' "$WORK/$name.json" >"$WORK/$name.txt"
    else
        local i t0 t1
        : >"$WORK/$name.txt"
        for ((i = 0; i < RUNS; i++)); do
            t0=$(date +%s.%N)
            eval "$cmd" >/dev/null
            t1=$(date +%s.%N)
            awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }' >>"$WORK/$name.txt"
        done
    fi
}

# stats FILE: the median and the minimum of the numbers in FILE, one a line, as "MEDIAN MIN".
stats() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        print ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1] }'
}

# json_of KEY: the field KEY of the JSON line on stdin.
json_of() {
    "$PYTHON" -c 'import json, sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"
}

# time_cgrad NAME COMMAND: time_runs with COMMAND's output appended to WORK/NAME.out, then the
# training loop's seconds of the timed runs (the last RUNS "Training:" lines; hyperfine's warm-up
# run comes first) into WORK/NAME_loop.txt. The seconds are worked out from the per-step figure,
# which has more digits: "3200 steps in 0.091 s (28.5 us per step)" gives 3200 x 28.5 us.
time_cgrad() {
    local name=$1 cmd=$2
    : >"$WORK/$name.out"
    time_runs "$name" "$cmd >> $(q "$WORK/$name.out") 2>&1"
    grep '^Training:' "$WORK/$name.out" | tail -n "$RUNS" |
        awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "steps") steps = $i
               sub(/^\(/, "", $(NF - 3)); printf "%.6f\n", steps * $(NF - 3) / 1e6 }' >"$WORK/${name}_loop.txt"
    [ "$(wc -l <"$WORK/${name}_loop.txt")" -eq "$RUNS" ] ||
        die "expected $RUNS 'Training:' lines from $cmd in $WORK/$name.out"
}

CG_OUT=$(run_once "$CMD_CG1") || { echo "$CG_OUT" >&2; die "cgrad failed: $CMD_CG1"; }
CG_ACCURACY=$(printf '%s\n' "$CG_OUT" | sed -n 's/^Accuracy on .*: //p') # "Accuracy on cpu: 0.6370"
printf '%s\n' "$CG_OUT" | grep -q '^Training:' || die "no 'Training:' line from $CMD_CG1"
run_once "$CMD_CGN" >/dev/null || die "cgrad failed: $CMD_CGN"
if [ "$USE_TORCH" = yes ]; then
    if PT_OUT=$(run_once "$CMD_PT1"); then
        PT_LAST=$(printf '%s\n' "$PT_OUT" | grep '^{' | tail -n 1) # its JSON line, after any warnings
    else
        echo "simple_nn.sh: PyTorch cannot run on $DEVICE ($(printf '%s\n' "$PT_OUT" | tail -n 1)); timing cgrad alone" >&2
        USE_TORCH=no
    fi
fi

echo "timing $RUNS runs of each on $DEVICE ($([ "$USE_HYPERFINE" = yes ] && echo hyperfine || echo 'date loop'))..." >&2
time_cgrad cgrad_threads1 "$CMD_CG1"
time_cgrad cgrad_default "$CMD_CGN"
read -r T_CG1 M_CG1 < <(stats "$WORK/cgrad_threads1.txt")
read -r T_CGN M_CGN < <(stats "$WORK/cgrad_default.txt")
read -r L_CG1 N_CG1 < <(stats "$WORK/cgrad_threads1_loop.txt")
read -r L_CGN N_CGN < <(stats "$WORK/cgrad_default_loop.txt")
if [ "$USE_TORCH" = yes ]; then
    : >"$TORCH_LINES"
    time_runs torch_threads1 "$CMD_PT1 >> $(q "$TORCH_LINES")"
    # Its own training seconds, from the timed runs' JSON lines (hyperfine's warm-up run comes first).
    tail -n "$RUNS" "$TORCH_LINES" | "$PYTHON" -c 'import json, sys
for line in sys.stdin:
    print(json.loads(line)["seconds"])' >"$WORK/torch_loop.txt"
    read -r T_PT1 M_PT1 < <(stats "$WORK/torch_threads1.txt")
    read -r T_PTL M_PTL < <(stats "$WORK/torch_loop.txt")
    TORCH_VERSION=$(printf '%s\n' "$PT_LAST" | json_of torch)
    PT_ACCURACY=$(printf '%s\n' "$PT_LAST" | json_of accuracy | awk '{ printf "%.4f", $1 }')
fi

CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
GPU=""
case "$DEVICE" in cuda*) GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true) ;; esac
if COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT with uncommitted changes"
else
    COMMIT="no git history"
fi

echo
echo "simple_nn, 100 epochs, $DEVICE; $(date -u '+%Y-%m-%d %H:%M UTC'); median and minimum of $RUNS runs"
echo "machine: ${CPU:-unknown CPU}, $(nproc) cores${GPU:+; GPU: $GPU}; load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
echo "cgrad: $SIMPLE_NN, built $(date -u -r "$SIMPLE_NN" '+%Y-%m-%d %H:%M UTC') (checkout at $COMMIT)"
if [ "$USE_TORCH" = yes ]; then
    echo "PyTorch $TORCH_VERSION ($PYTHON); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
    echo "final accuracy on the whole set: cgrad $CG_ACCURACY, PyTorch $PT_ACCURACY (random labels: 0.55 to 0.70 is right)"
else
    echo "final accuracy on the whole set: cgrad $CG_ACCURACY (random labels: 0.55 to 0.70 is right)"
fi
echo

# The goal depends on the device: on the CPU, cgrad's whole process against PyTorch's loop;
# on a GPU the two training loops, because any GPU process spends about
# 0.3 s starting CUDA (driver, context) and stopping it, whatever the engine.
case "$DEVICE" in
cpu) GOAL_ROW=whole GOAL_TEXT="cgrad's whole process at least 50x faster than PyTorch's training loop" ;;
*) GOAL_ROW=loop GOAL_TEXT="cgrad's training loop at least 30x faster than PyTorch's training loop" ;;
esac

if [ "$USE_TORCH" = yes ]; then
    # Ratios: PyTorch's median divided by this row's median (bigger is better for cgrad). A loop
    # row is compared with PyTorch's loop only.
    awk -v cg1="$T_CG1" -v cgn="$T_CGN" -v lcg1="$L_CG1" -v lcgn="$L_CGN" -v pt1="$T_PT1" -v ptl="$T_PTL" \
        -v mcg1="$M_CG1" -v mcgn="$M_CGN" -v ncg1="$N_CG1" -v ncgn="$N_CGN" -v mpt1="$M_PT1" -v mptl="$M_PTL" \
        -v goal_row="$GOAL_ROW" -v goal_text="$GOAL_TEXT" 'BEGIN {
        f = "%-42s %9.4f %9.4f %9.1fx %9.1fx\n"
        fl = "%-42s %9.4f %9.4f %10s %9.1fx\n"
        printf "%-42s %9s %9s %10s %10s\n", "", "median s", "min s", "PT whole", "PT loop"
        printf f, "cgrad --threads 1, whole process", cg1, mcg1, pt1 / cg1, ptl / cg1
        printf fl, "cgrad --threads 1, training loop only", lcg1, ncg1, "", ptl / lcg1
        printf f, "cgrad default threads, whole process", cgn, mcgn, pt1 / cgn, ptl / cgn
        printf fl, "cgrad default threads, training loop only", lcgn, ncgn, "", ptl / lcgn
        printf "%-42s %9.4f %9.4f\n", "PyTorch --threads 1, whole process", pt1, mpt1
        printf "%-42s %9.4f %9.4f\n", "PyTorch --threads 1, training loop only", ptl, mptl
        printf "\nPT whole, PT loop: the median of PyTorch'"'"'s whole process, or of its training loop alone,\n"
        printf "divided by this row'"'"'s median.\n"
        printf "Goal: %s;\nnow %.1fx (--threads 1, %s).\n", goal_text,
            goal_row == "whole" ? ptl / cg1 : ptl / lcg1, goal_row == "whole" ? "whole process" : "training loop"
    }'
else
    awk -v cg1="$T_CG1" -v cgn="$T_CGN" -v lcg1="$L_CG1" -v lcgn="$L_CGN" \
        -v mcg1="$M_CG1" -v mcgn="$M_CGN" -v ncg1="$N_CG1" -v ncgn="$N_CGN" -v goal_text="$GOAL_TEXT" 'BEGIN {
        printf "%-42s %9s %9s\n", "", "median s", "min s"
        printf "%-42s %9.4f %9.4f\n", "cgrad --threads 1, whole process", cg1, mcg1
        printf "%-42s %9.4f %9.4f\n", "cgrad --threads 1, training loop only", lcg1, ncg1
        printf "%-42s %9.4f %9.4f\n", "cgrad default threads, whole process", cgn, mcgn
        printf "%-42s %9.4f %9.4f\n", "cgrad default threads, training loop only", lcgn, ncgn
        printf "\nGoal: %s; no PyTorch timed in this run.\n", goal_text
    }'
fi

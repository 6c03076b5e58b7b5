#!/usr/bin/env bash
# cnn.sh: the tutorial CNN (course chapter 3) on Fashion-MNIST, cgrad against PyTorch in the same
# run on the same machine: seconds and images/s of each epoch's training, test accuracy after each
# epoch, and the speed ratio. It builds nothing: build cgrad first (cmake -S . -B build &&
# cmake --build build -j2). Figures, not pass/fail: it exits 0 unless a program fails or an
# option is wrong.
#
# Run once each, one after the other (never at the same time, so they do not share the cores):
#   cgrad     BUILD/cnn --device DEV --epochs E --data DATA [--limit N] [--threads T] --log WORK/cgrad.csv
#   PyTorch   PYTHON TORCH_WORKLOADS cnn --device DEV --epochs E --data DATA [--limit N] [--threads T]
# (--device cuda:N is passed to both as cuda with CUDA_VISIBLE_DEVICES=N.)
# Both train the same model (conv3x3 32, pool, conv3x3 64, pool, Linear 128, Linear 10) with Adam
# 1e-3, batch 128, shuffled, normalised with mean 0.2860 and std 0.3530, no augmentation, and time
# each epoch's training alone (no evaluation, no data loading). cgrad's CSV gives images/s per
# epoch (training images / training seconds); PyTorch prints a JSON line per epoch with
# train_seconds, images_per_s and test_accuracy.
#
# The ratio is cgrad's images/s divided by PyTorch's, each the MEDIAN OVER EPOCHS 2..E: the first
# epoch carries one-time costs (cuDNN / cuBLAS autotuning and the caching allocator's first
# requests on a GPU, first touches of memory on the CPU) and is left out. With one epoch (the
# CPU's default) there is nothing else, so epoch 1 is used and the output says so.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$ROOT/build"
DEVICE=cpu
EPOCHS=""
LIMIT=""
THREADS=""
DATA=/usr/share/datasets/fashion-mnist
PYTHON=${PYTHON:-/usr/bin/python3}
TORCH_WORKLOADS=${TORCH_WORKLOADS:-$ROOT/bench/torch_workloads.py}
KEEP_DIR=""
USE_TORCH=yes

usage() {
    cat <<EOF
usage: bench/cnn.sh [options]
Train the tutorial CNN on Fashion-MNIST with cgrad (build/cnn) and with PyTorch
(torch_workloads.py cnn), one after the other, and print each epoch's training seconds and
images/s, the test accuracies, and cgrad's images/s over PyTorch's (medians over epochs 2..E).

  --build-dir DIR         where cnn was built (default: ROOT/build)
  --device DEV            cpu, cuda or cuda:N, passed to both programs (default: cpu)
  --epochs N              epochs for both (default: 5 on a GPU, 1 on the CPU)
  --limit N               train both on the first N training images only (default: all 60000)
  --threads N             CPU threads for both (default: each program's own choice)
  --data DIR              the Fashion-MNIST folder (default: /usr/share/datasets/fashion-mnist)
  --torch-workloads PATH  the PyTorch script (default: \$TORCH_WORKLOADS, else
                          ROOT/bench/torch_workloads.py)
  --python PATH           interpreter with torch and numpy (default: \$PYTHON, else /usr/bin/python3)
  --no-torch              run cgrad only
  --keep DIR              keep both programs' output (cgrad.out, cgrad.csv, torch.jsonl, torch.err)
  --help                  this text

When OPENBLAS_CORETYPE is unset, it is set for both programs to SkylakeX on a CPU with AVX-512
(Haswell with AVX2 only): Debian's OpenBLAS 0.3.21 may otherwise run its slow generic core
(PyTorch's products; cgrad's, with AVX-512, are its own).
ROOT is the repository holding this script: $ROOT
EOF
}

die() {
    echo "cnn.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) BUILD_DIR=${2:?--build-dir needs a value}; shift 2 ;;
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --epochs) EPOCHS=${2:?--epochs needs a value}; shift 2 ;;
    --limit) LIMIT=${2:?--limit needs a value}; shift 2 ;;
    --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
    --data) DATA=${2:?--data needs a value}; shift 2 ;;
    --torch-workloads) TORCH_WORKLOADS=${2:?--torch-workloads needs a value}; shift 2 ;;
    --python) PYTHON=${2:?--python needs a value}; shift 2 ;;
    --no-torch) USE_TORCH=no; shift ;;
    --keep) KEEP_DIR=${2:?--keep needs a value}; shift 2 ;;
    --help | -h) usage; exit 0 ;;
    *) echo "cnn.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

# whole_number FLAG VALUE: dies unless VALUE is a whole number of at least 1.
whole_number() {
    case "$2" in '' | *[!0-9]*) die "$1: '$2' is not a whole number" ;; esac
    [ "$2" -ge 1 ] || die "$1 must be at least 1"
}

case "$DEVICE" in
cpu) : "${EPOCHS:=1}" ;;
cuda | cuda:[0-9]*) : "${EPOCHS:=5}" ;;
*) die "--device: '$DEVICE' is not cpu, cuda or cuda:N" ;;
esac
whole_number --epochs "$EPOCHS"
[ -z "$LIMIT" ] || whole_number --limit "$LIMIT"
[ -z "$THREADS" ] || whole_number --threads "$THREADS"
CNN="$BUILD_DIR/cnn"
[ -x "$CNN" ] || die "no executable $CNN (build first: cmake -S . -B build && cmake --build build -j2, or give --build-dir)"
[ -d "$DATA" ] || die "--data: no folder $DATA (Debian: apt install dataset-fashion-mnist)"
"$PYTHON" -c "import json" 2>/dev/null || die "cannot run $PYTHON (give --python)"
if [ "$USE_TORCH" = yes ]; then
    [ -f "$TORCH_WORKLOADS" ] || die "no PyTorch script $TORCH_WORKLOADS (set TORCH_WORKLOADS, give --torch-workloads, or --no-torch)"
    "$PYTHON" -c "import torch, numpy" 2>/dev/null ||
        die "$PYTHON cannot import torch and numpy (give --python or --no-torch; Debian: apt install python3-torch)"
fi

if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
        export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
        export OPENBLAS_CORETYPE=Haswell
    fi
fi

if [ -n "$KEEP_DIR" ]; then
    mkdir -p "$KEEP_DIR"
    WORK=$(cd "$KEEP_DIR" && pwd)
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi

# cuda:N is given to both programs as "cuda" with CUDA_VISIBLE_DEVICES=N, so that both see the
# same single GPU.
RUN_DEVICE=$DEVICE
case "$DEVICE" in
cuda:[0-9]*)
    export CUDA_VISIBLE_DEVICES=${DEVICE#cuda:}
    RUN_DEVICE=cuda
    ;;
esac
COMMON=(--device "$RUN_DEVICE" --epochs "$EPOCHS" --data "$DATA")
[ -z "$LIMIT" ] || COMMON+=(--limit "$LIMIT")
[ -z "$THREADS" ] || COMMON+=(--threads "$THREADS")

echo "cgrad: $CNN ${COMMON[*]} ..." >&2
"$CNN" "${COMMON[@]}" --log "$WORK/cgrad.csv" >"$WORK/cgrad.out" 2>&1 || {
    cat "$WORK/cgrad.out" >&2
    die "cgrad failed: $CNN ${COMMON[*]} --log $WORK/cgrad.csv"
}
# "fashion-mnist: 60000 training and 10000 test images of 1x28x28, ...": the training images.
TRAIN_IMAGES=$(sed -n 's/^[^:]*: \([0-9][0-9]*\) training and .*/\1/p' "$WORK/cgrad.out" | head -n 1)
[ -n "$TRAIN_IMAGES" ] || die "no 'N training and M test images' line in $WORK/cgrad.out"
# Per epoch: "EPOCH SECONDS IMAGES_PER_S TEST_ACCURACY"; the training seconds are the images over
# the images/s (the CSV's seconds column counts from the start, evaluation included).
# The columns are found by name in the header (cnn's log: epoch,...,images_per_s,... as --help says).
awk -F, -v n="$TRAIN_IMAGES" 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { ips = $col["images_per_s"]; printf "%d %.4f %.1f %s\n", $col["epoch"], n / ips, ips, $col["test_accuracy"] }' \
    "$WORK/cgrad.csv" >"$WORK/cgrad.txt"
[ "$(wc -l <"$WORK/cgrad.txt")" -eq "$EPOCHS" ] || die "expected $EPOCHS rows in $WORK/cgrad.csv"

if [ "$USE_TORCH" = yes ]; then
    echo "PyTorch: $PYTHON $TORCH_WORKLOADS cnn ${COMMON[*]} ..." >&2
    if "$PYTHON" "$TORCH_WORKLOADS" cnn "${COMMON[@]}" >"$WORK/torch.jsonl" 2>"$WORK/torch.err"; then
        "$PYTHON" -c 'import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
        if "epoch" in r:
            print(r["epoch"], "%.4f" % r["train_seconds"], "%.1f" % r["images_per_s"], "%.4f" % r["test_accuracy"])
        else:
            print("version", r["torch"], file=open(sys.argv[2], "w"))' \
            "$WORK/torch.jsonl" "$WORK/torch_version.txt" >"$WORK/torch.txt"
        [ "$(wc -l <"$WORK/torch.txt")" -eq "$EPOCHS" ] || die "expected $EPOCHS epoch lines in $WORK/torch.jsonl"
        TORCH_VERSION=$(cut -d' ' -f2 "$WORK/torch_version.txt")
        TORCH_THREADS=${THREADS:-$("$PYTHON" -c 'import torch; print(torch.get_num_threads())')}
    else
        echo "cnn.sh: PyTorch cannot run on $DEVICE ($(tail -n 1 "$WORK/torch.err")); cgrad alone" >&2
        USE_TORCH=no
    fi
fi

CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
GPU=""
case "$DEVICE" in
cuda*) GPU=$(nvidia-smi --id="${CUDA_VISIBLE_DEVICES:-0}" --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true) ;;
esac
if COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT with uncommitted changes"
else
    COMMIT="no git history"
fi
case "$DEVICE" in
cpu) GOAL=2 GOAL_TEXT="cgrad at least 2x PyTorch's images/s on the CPU" ;;
*) GOAL=5 GOAL_TEXT="cgrad at least 5x PyTorch eager's images/s on a GPU" ;;
esac
if [ "$EPOCHS" -ge 2 ]; then
    FROM=2 MEDIAN_TEXT="median over epochs 2..$EPOCHS (epoch 1, with its warm-up, left out)"
else
    FROM=1 MEDIAN_TEXT="epoch 1 only (warm-up included: give --epochs 2 or more to leave it out)"
fi

# median_ips FILE: the median of the third column over the rows of epochs FROM..E.
median_ips() {
    awk -v from="$FROM" '$1 >= from { print $3 }' "$1" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        print ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

echo
echo "tutorial CNN, Fashion-MNIST, $TRAIN_IMAGES training images, batch 128, $EPOCHS epoch(s), $DEVICE;" \
    "$(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: ${CPU:-unknown CPU}, $(nproc) cores${GPU:+; GPU: $GPU}; load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
echo "cgrad: $CNN, built $(date -u -r "$CNN" '+%Y-%m-%d %H:%M UTC') (checkout at $COMMIT)"
THREADS_TEXT=${THREADS:-"each program's default"}
echo "threads: $THREADS_TEXT; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
CG_MEDIAN=$(median_ips "$WORK/cgrad.txt")
if [ "$USE_TORCH" = yes ]; then
    echo "PyTorch $TORCH_VERSION ($PYTHON), $TORCH_THREADS thread(s) on the CPU"
    PT_MEDIAN=$(median_ips "$WORK/torch.txt")
    echo
    printf '%-6s %10s %12s %9s   %10s %12s %9s\n' "" "cgrad" "" "" "PyTorch" "" ""
    printf '%-6s %10s %12s %9s   %10s %12s %9s\n' epoch "train s" "images/s" "test acc" "train s" "images/s" "test acc"
    join "$WORK/cgrad.txt" "$WORK/torch.txt" |
        awk '{ printf "%-6d %10.3f %12.0f %9.4f   %10.3f %12.0f %9.4f\n", $1, $2, $3, $4, $5, $6, $7 }'
    echo
    awk -v cg="$CG_MEDIAN" -v pt="$PT_MEDIAN" -v goal="$GOAL" -v goal_text="$GOAL_TEXT" -v how="$MEDIAN_TEXT" 'BEGIN {
        printf "images/s, %s:\n", how
        printf "  cgrad %.0f, PyTorch %.0f: cgrad / PyTorch = %.2fx\n", cg, pt, cg / pt
        printf "Goal: %s; now %.2fx (%s).\n", goal_text, cg / pt, (cg / pt >= goal) ? "met" : "not met"
    }'
else
    echo
    printf '%-6s %10s %12s %9s\n' epoch "train s" "images/s" "test acc"
    awk '{ printf "%-6d %10.3f %12.0f %9.4f\n", $1, $2, $3, $4 }' "$WORK/cgrad.txt"
    echo
    printf "cgrad images/s, %s: %.0f\n" "$MEDIAN_TEXT" "$CG_MEDIAN"
    echo "Goal: $GOAL_TEXT; no PyTorch run to compare with."
fi

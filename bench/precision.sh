#!/usr/bin/env bash
# precision.sh: mixed precision on the tutorial CNN, cgrad against PyTorch AMP in the
# same run on the same machine: images/s and test accuracy per precision (fp32, fp16, bf16) and
# per batch size (128 and 512 by default). It builds nothing: build cgrad first (cmake -S . -B
# build -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j). Figures, not pass/fail: it exits
# 0 unless a program fails or an option is wrong.
#
# For each batch size B and precision P, one after the other (never at the same time):
#   cgrad     BUILD/cnn --device DEV --precision P --batch-size B --epochs E --data DATA [--limit N] --log ...
#   PyTorch   PYTHON TORCH_WORKLOADS cnn --device DEV --precision P --batch B --channels-last --epochs E --data DATA
# PyTorch's fp16 and bf16 are torch.autocast (fp16 with torch.cuda.amp.GradScaler), channels-last
# (NHWC) so that cuDNN uses its Tensor Core kernels; cgrad's are --precision (core/amp.h). Both time
# each epoch's training alone; images/s is the MEDIAN OVER EPOCHS 2..E (epoch 1 carries autotuning
# and allocation). The goals printed: fp16 and bf16 test accuracy within 0.3 points
# of fp32, cgrad's fp16 at least 3x PyTorch AMP at batch 128, and cgrad's fp16 faster than its own
# fp32 at batch 512.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$ROOT/build"
DEVICE=cuda
EPOCHS=5
LIMIT=""
BATCHES="128 512"
PRECISIONS="fp32 fp16 bf16"
DATA=/usr/share/datasets/fashion-mnist
PYTHON=${PYTHON:-python3}
TORCH_WORKLOADS=${TORCH_WORKLOADS:-$ROOT/bench/torch_workloads.py}
KEEP_DIR=""
USE_TORCH=yes
LAYOUT=${CGRAD_CONV16_LAYOUT:-}

usage() {
    cat <<EOF
usage: bench/precision.sh [options]
Train the tutorial CNN on Fashion-MNIST in fp32, fp16 and bf16 with cgrad (build/cnn --precision)
and with PyTorch AMP (torch_workloads.py cnn --precision P --channels-last), at each batch size,
and print images/s, test accuracy and the ratios (medians over epochs 2..E).

  --build-dir DIR         where cnn was built (default: ROOT/build)
  --device DEV            cuda (default), cuda:N or cpu (the CPU emulates the 16-bit rounding: slow)
  --epochs N              epochs for every run (default 5; at least 2 for a median without warm-up)
  --batches "B1 B2 .."    batch sizes (default "128 512")
  --precisions "P1 .."    among fp32 fp16 bf16 (default all three; fp32 is needed for the goals)
  --limit N               train on the first N training images only (default: all 60000)
  --data DIR              the Fashion-MNIST folder (default: /usr/share/datasets/fashion-mnist)
  --torch-workloads PATH  the PyTorch script (default: \$TORCH_WORKLOADS, else
                          ROOT/bench/torch_workloads.py)
  --python PATH           interpreter with torch and numpy (default: \$PYTHON, else python3)
  --conv16-layout L       nhwc (the GPU's default) or nchw: how cgrad's 16-bit convolutions store their
                          outputs (exported as CGRAD_CONV16_LAYOUT; nhwc: channels-last activations)
  --no-torch              run cgrad only
  --keep DIR              keep every program's output (cgrad_P_B.csv/.out, torch_P_B.jsonl/.err)
  --help                  this text
ROOT is the repository holding this script: $ROOT
EOF
}

die() {
    echo "precision.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) BUILD_DIR=${2:?--build-dir needs a value}; shift 2 ;;
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --epochs) EPOCHS=${2:?--epochs needs a value}; shift 2 ;;
    --batches) BATCHES=${2:?--batches needs a value}; shift 2 ;;
    --precisions) PRECISIONS=${2:?--precisions needs a value}; shift 2 ;;
    --limit) LIMIT=${2:?--limit needs a value}; shift 2 ;;
    --data) DATA=${2:?--data needs a value}; shift 2 ;;
    --torch-workloads) TORCH_WORKLOADS=${2:?--torch-workloads needs a value}; shift 2 ;;
    --python) PYTHON=${2:?--python needs a value}; shift 2 ;;
    --no-torch) USE_TORCH=no; shift ;;
    --conv16-layout) LAYOUT=${2:?--conv16-layout needs a value}; shift 2 ;;
    --keep) KEEP_DIR=${2:?--keep needs a value}; shift 2 ;;
    --help | -h) usage; exit 0 ;;
    *) echo "precision.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

whole_number() {
    case "$2" in '' | *[!0-9]*) die "$1: '$2' is not a whole number" ;; esac
    [ "$2" -ge 1 ] || die "$1 must be at least 1"
}
whole_number --epochs "$EPOCHS"
[ -z "$LIMIT" ] || whole_number --limit "$LIMIT"
for b in $BATCHES; do whole_number --batches "$b"; done
for p in $PRECISIONS; do
    case "$p" in fp32 | fp16 | bf16) ;; *) die "--precisions: '$p' is not fp32, fp16 or bf16" ;; esac
done
case "$DEVICE" in cpu | cuda | cuda:[0-9]*) ;; *) die "--device: '$DEVICE' is not cpu, cuda or cuda:N" ;; esac
case "$LAYOUT" in "") ;; nchw | nhwc) export CGRAD_CONV16_LAYOUT=$LAYOUT ;; *) die "--conv16-layout: '$LAYOUT' is not nchw or nhwc" ;; esac
CNN="$BUILD_DIR/cnn"
[ -x "$CNN" ] || die "no executable $CNN (build first, or give --build-dir)"
[ -d "$DATA" ] || die "--data: no folder $DATA"
if [ "$USE_TORCH" = yes ]; then
    [ -f "$TORCH_WORKLOADS" ] || die "no PyTorch script $TORCH_WORKLOADS (set TORCH_WORKLOADS, give --torch-workloads, or --no-torch)"
    "$PYTHON" -c "import torch, numpy" 2>/dev/null || die "$PYTHON cannot import torch and numpy (give --python or --no-torch)"
fi

if [ -n "$KEEP_DIR" ]; then
    mkdir -p "$KEEP_DIR"
    WORK=$(cd "$KEEP_DIR" && pwd)
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi

# Both programs are shown the one GPU through CUDA_VISIBLE_DEVICES and run on "cuda".
RUN_DEVICE=$DEVICE
case "$DEVICE" in
cuda:[0-9]*)
    export CUDA_VISIBLE_DEVICES=${DEVICE#cuda:}
    RUN_DEVICE=cuda
    ;;
esac
COMMON=(--device "$RUN_DEVICE" --epochs "$EPOCHS" --data "$DATA")
[ -z "$LIMIT" ] || COMMON+=(--limit "$LIMIT")
FROM=1
[ "$EPOCHS" -lt 2 ] || FROM=2

# median FILE: the median of the second column over the rows of epochs FROM..E ("EPOCH IPS ACC").
median() {
    awk -v from="$FROM" '$1 >= from { print $2 }' "$1" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        print ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

RESULTS="$WORK/results.txt" # B P cgrad_ips cgrad_acc torch_ips torch_acc skipped final_scale
: >"$RESULTS"
for B in $BATCHES; do
    for P in $PRECISIONS; do
        tag="${P}_$B"
        echo "cgrad: $CNN ${COMMON[*]} --precision $P --batch-size $B ..." >&2
        "$CNN" "${COMMON[@]}" --precision "$P" --batch-size "$B" --quiet --log "$WORK/cgrad_$tag.csv" \
            >"$WORK/cgrad_$tag.out" 2>&1 || {
            cat "$WORK/cgrad_$tag.out" >&2
            die "cgrad failed: $CNN ${COMMON[*]} --precision $P --batch-size $B"
        }
        # CSV: epoch,...,test_accuracy,...,images_per_s,...,precision,loss_scale,skipped_steps: by name
        awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
            { print $col["epoch"], $col["images_per_s"], $col["test_accuracy"], $col["loss_scale"], $col["skipped_steps"] }' \
            "$WORK/cgrad_$tag.csv" >"$WORK/cgrad_$tag.txt"
        CG_IPS=$(median "$WORK/cgrad_$tag.txt")
        CG_ACC=$(tail -n 1 "$WORK/cgrad_$tag.txt" | cut -d' ' -f3)
        SCALE=$(tail -n 1 "$WORK/cgrad_$tag.txt" | cut -d' ' -f4)
        SKIPPED=$(tail -n 1 "$WORK/cgrad_$tag.txt" | cut -d' ' -f5)
        PT_IPS=- PT_ACC=-
        if [ "$USE_TORCH" = yes ]; then
            echo "PyTorch: $TORCH_WORKLOADS cnn ${COMMON[*]} --precision $P --batch $B --channels-last ..." >&2
            if "$PYTHON" "$TORCH_WORKLOADS" cnn "${COMMON[@]}" --precision "$P" --batch "$B" --channels-last \
                >"$WORK/torch_$tag.jsonl" 2>"$WORK/torch_$tag.err"; then
                "$PYTHON" -c 'import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        r = json.loads(line)
        if "epoch" in r:
            print(r["epoch"], "%.1f" % r["images_per_s"], "%.4f" % r["test_accuracy"])
        elif "torch" in r:
            print(r["torch"], file=open(sys.argv[2], "w"))' "$WORK/torch_$tag.jsonl" "$WORK/torch_version.txt" \
                    >"$WORK/torch_$tag.txt"
                PT_IPS=$(median "$WORK/torch_$tag.txt")
                PT_ACC=$(tail -n 1 "$WORK/torch_$tag.txt" | cut -d' ' -f3)
            else
                echo "precision.sh: PyTorch failed for $P, batch $B ($(tail -n 1 "$WORK/torch_$tag.err"))" >&2
            fi
        fi
        echo "$B $P $CG_IPS $CG_ACC $PT_IPS $PT_ACC $SKIPPED $SCALE" >>"$RESULTS"
    done
done

GPU=""
case "$DEVICE" in
cuda*) GPU=$(nvidia-smi --id="${CUDA_VISIBLE_DEVICES:-0}" --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || true) ;;
esac
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
if COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT with uncommitted changes"
else
    COMMIT="no git history"
fi
echo
echo "tutorial CNN, Fashion-MNIST, $EPOCHS epoch(s), $DEVICE; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: ${CPU:-unknown CPU}, $(nproc) cores${GPU:+; GPU: $GPU}"
echo "cgrad: $CNN (checkout at $COMMIT); 16-bit convolutions in $LAYOUT"
[ "$USE_TORCH" = no ] || echo "PyTorch $(cat "$WORK/torch_version.txt" 2>/dev/null || echo '?') ($PYTHON), AMP, channels-last"
echo "images/s: median over epochs $FROM..$EPOCHS; accuracy: test accuracy after the last epoch"
echo
printf '%-6s %-5s %12s %9s %8s %12s %9s %9s\n' batch prec "cgrad img/s" "acc" "skipped" "torch img/s" "acc" "ratio"
awk '{ ratio = ($5 == "-") ? "-" : sprintf("%.2fx", $3 / $5)
       printf "%-6s %-5s %12.0f %9.4f %8s %12s %9s %9s\n", $1, $2, $3, $4, $7, ($5 == "-") ? "-" : sprintf("%.0f", $5), $6, ratio }' "$RESULTS"
echo
awk -v torch="$USE_TORCH" '{ ips[$1 " " $2] = $3; acc[$1 " " $2] = $4; pt[$1 " " $2] = $5 }
END {
    if (("128 fp32" in acc))
        for (p in acc) {
            split(p, k, " ")
            if (k[1] == 128 && k[2] != "fp32")
                printf "Goal: %s test accuracy within 0.3 points of fp32 (batch 128): %+.2f points (%s)\n", k[2],
                       100 * (acc[p] - acc["128 fp32"]), (100 * (acc["128 fp32"] - acc[p]) <= 0.3) ? "met" : "not met"
        }
    if (torch == "yes" && ("128 fp16" in pt) && pt["128 fp16"] != "-")
        printf "Goal: cgrad fp16 at least 3x PyTorch AMP fp16 at batch 128: %.2fx (%s)\n", ips["128 fp16"] / pt["128 fp16"],
               (ips["128 fp16"] >= 3 * pt["128 fp16"]) ? "met" : "not met"
    if (("512 fp16" in ips) && ("512 fp32" in ips))
        printf "Goal: cgrad fp16 faster than cgrad fp32 at batch 512: %.2fx (%s)\n", ips["512 fp16"] / ips["512 fp32"],
               (ips["512 fp16"] > ips["512 fp32"]) ? "met" : "not met"
}' "$RESULTS"

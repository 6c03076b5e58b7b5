#!/usr/bin/env bash
# resnet.sh: ResNet-18 on CIFAR-10, cgrad's cnn --model resnet18 against its PyTorch twin
# (bench/torch_train.py --model resnet18, bench/torch_models.py) in the same run, on the same
# device and the same data, with the same recipe: the training images/s of each program, for each
# precision and batch size, and cgrad's images/s over each PyTorch mode's (above 1: cgrad faster).
# It builds nothing: build cgrad first. Figures, not pass/fail: it exits 0 unless a program fails
# or an option is wrong.
#
# For each precision P and batch size B, and each repetition, one after the other (never at the
# same time), the programs take turns:
#   cgrad     BUILD/cnn --model resnet18 --dataset cifar10 --data DATA --device DEV --batch-size B
#             --precision P --epochs E RECIPE --log FILE [--limit N] [--limit-test N] [--threads T]
#   eager     PYTHON bench/torch_train.py with the same flags; P bf16 or fp16: torch.autocast and
#             --channels-last (model and batches channels-last, as PyTorch's AMP recipe for
#             convolutions asks); fp32: TF32 off (the twin's default, as cgrad's FP32)
#   compile   the same with --compile (torch.compile, static shapes; --device cuda only by default)
# RECIPE is lesson 07's: SGD 0.1 with Nesterov momentum 0.9, weight decay 5e-4 spared on BatchNorm
# and biases, the onecycle schedule, label smoothing 0.1, crop and flip. A run's figure is the
# median of the images/s its --log wrote for epochs 2 .. E (the first epoch holds the one-time
# costs: cgrad's cuDNN tuning and graph recording, PyTorch's cudnn.benchmark and compilation); a
# setting's figure is the median over its repetitions.
#
# On the GPU machine the working tree travels with the data set carried or fetched there
# (bench/README.md, "Real data"); --device cpu runs a smoke test with small settings:
#   bench/resnet.sh --device cpu --precisions fp32 --batch-sizes 64 --limit 256 --limit-test 64
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$ROOT/build"
DEVICE=cuda
DATA=/work/data/cifar10
PRECISIONS=bf16,fp32
BATCH_SIZES=512,128
EPOCHS=2
REPS=1
MODES=""
PYTHON=${PYTHON:-python3}
EXTRA=()
KEEP_DIR=""
RECIPE=(--optimizer sgd --lr 0.1 --momentum 0.9 --nesterov --weight-decay 5e-4 --no-decay-bn-bias
    --lr-schedule onecycle --label-smoothing 0.1)

usage() {
    cat <<EOF
usage: bench/resnet.sh [options]
Train ResNet-18 on CIFAR-10 with cgrad (build/cnn --model resnet18) and with its PyTorch twin
(bench/torch_train.py: eager, and torch.compile on a GPU), taking turns, for each precision and
batch size; print each run's images/s (median of epochs 2..E), then a table with cgrad's images/s
over each PyTorch mode's.

  --device DEV         cuda (default), cuda:N or cpu
  --data DIR           CIFAR-10's binary files (default $DATA)
  --build DIR          cgrad's build folder (default build/)
  --precisions LIST    comma-separated fp32, bf16, fp16 (default bf16,fp32); PyTorch's 16-bit runs
                       are torch.autocast with channels-last, its fp32 runs NCHW without TF32
  --batch-sizes LIST   comma-separated (default 512,128)
  --epochs E           epochs a run, at least 2; epochs 2..E are timed (default 2)
  --reps N             runs of each program and setting, taking turns (default 1)
  --modes LIST         PyTorch's modes: eager, compile (default eager,compile on a GPU, eager on
                       the CPU)
  --limit N, --limit-test N, --threads N   passed to both programs (smoke tests on the CPU)
  --keep DIR           keep every run's output and log in DIR (default: a temporary folder, removed)
  --help               this text
Environment: PYTHON (default python3), the interpreter with torch (and a compiler for --compile).
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --data) DATA=${2:?--data needs a value}; shift 2 ;;
    --build) BUILD_DIR=${2:?--build needs a value}; shift 2 ;;
    --precisions) PRECISIONS=${2:?--precisions needs a value}; shift 2 ;;
    --batch-sizes) BATCH_SIZES=${2:?--batch-sizes needs a value}; shift 2 ;;
    --epochs) EPOCHS=${2:?--epochs needs a value}; shift 2 ;;
    --reps) REPS=${2:?--reps needs a value}; shift 2 ;;
    --modes) MODES=${2:?--modes needs a value}; shift 2 ;;
    --limit|--limit-test|--threads) EXTRA+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --keep) KEEP_DIR=${2:?--keep needs a value}; shift 2 ;;
    --help|-h) usage; exit 0 ;;
    *) echo "resnet.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
whole() { # $1 the option, $2 its value, $3 the least allowed
    case "$2" in ''|*[!0-9]*) echo "resnet.sh: $1: '$2' is not a whole number" >&2; exit 2 ;; esac
    [ "$2" -ge "$3" ] || { echo "resnet.sh: $1: $2 is less than $3" >&2; exit 2; }
}
whole --epochs "$EPOCHS" 2
whole --reps "$REPS" 1
case "$DEVICE" in cpu|cuda|cuda:[0-9]*) ;; *) echo "resnet.sh: --device: '$DEVICE' is not cpu, cuda or cuda:N" >&2; exit 2 ;; esac
[ -n "$MODES" ] || { [ "$DEVICE" = cpu ] && MODES=eager || MODES=eager,compile; }
IFS=, read -r -a precisions <<< "$PRECISIONS"
IFS=, read -r -a batch_sizes <<< "$BATCH_SIZES"
IFS=, read -r -a modes <<< "$MODES"
for p in "${precisions[@]}"; do
    case "$p" in fp32|bf16|fp16) ;; *) echo "resnet.sh: --precisions: '$p' is not fp32, bf16 or fp16" >&2; exit 2 ;; esac
done
for b in "${batch_sizes[@]}"; do whole --batch-sizes "$b" 1; done
for m in "${modes[@]}"; do
    case "$m" in eager|compile) ;; *) echo "resnet.sh: --modes: '$m' is not eager or compile" >&2; exit 2 ;; esac
done
CNN="$BUILD_DIR/cnn"
TWIN="$ROOT/bench/torch_train.py"
[ -x "$CNN" ] || { echo "resnet.sh: $CNN is missing: build cgrad first (cmake --build build)" >&2; exit 2; }
[ -f "$DATA/data_batch_1.bin" ] || { echo "resnet.sh: --data $DATA: no CIFAR-10 binary files there" >&2; exit 2; }
"$PYTHON" -c "import torch" 2> /dev/null || { echo "resnet.sh: $PYTHON cannot import torch (set PYTHON)" >&2; exit 2; }

if [ -n "$KEEP_DIR" ]; then
    mkdir -p "$KEEP_DIR"
    WORK=$(cd "$KEEP_DIR" && pwd)
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/resnet_bench.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
fi

echo "resnet.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), device $DEVICE, epochs 2..$EPOCHS timed, $REPS rep(s), data $DATA"
if [ "$DEVICE" = cpu ]; then
    lscpu | grep -E '^Model name' | sed -E 's/^Model name: */CPU: /'
elif command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1 | sed 's/^/GPU: /'
fi

# The median of the numbers on stdin, one a line; nothing when there are none.
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The median of the images_per_s column of a --log CSV (cnn's and the twin's share the header)
# over epochs 2 .. E; empty when the file has no such rows.
log_median() {
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "images_per_s") c = i; next }
             c && $1 >= 2 { print $c }' "$1" | median
}

# One run: $1 the program (cgrad, eager or compile), $2 precision, $3 batch size, $4 repetition.
# Appends "program precision batch rep images/s" to results.tsv and prints a line.
run_one() {
    local who=$1 p=$2 b=$3 r=$4 name="$1_$2_b$3_r$4" cmd
    local common=(--model resnet18 --dataset cifar10 --data "$DATA" --device "$DEVICE" --batch-size "$b"
        --precision "$p" --epochs "$EPOCHS" "${RECIPE[@]}" --log "$WORK/$name.csv" "${EXTRA[@]}")
    case "$who" in
    cgrad) cmd=("$CNN" "${common[@]}") ;;
    eager | compile)
        cmd=("$PYTHON" "$TWIN" "${common[@]}")
        [ "$p" = fp32 ] || cmd+=(--channels-last)
        [ "$who" = eager ] || cmd+=(--compile) ;;
    esac
    if ! "${cmd[@]}" > "$WORK/$name.out" 2>&1; then
        echo "resnet.sh: $who ($p, batch $b) failed: ${cmd[*]}" >&2
        tail -5 "$WORK/$name.out" >&2
        exit 1
    fi
    local ips
    ips=$(log_median "$WORK/$name.csv")
    [ -n "$ips" ] || { echo "resnet.sh: $who ($p, batch $b) logged no epoch after the first: $WORK/$name.csv" >&2; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\n' "$who" "$p" "$b" "$r" "$ips" >> "$WORK/results.tsv"
    printf '%-8s %-5s batch %-5s rep %d: %10.0f images/s\n' "$who" "$p" "$b" "$r" "$ips"
}

: > "$WORK/results.tsv"
for p in "${precisions[@]}"; do
    for b in "${batch_sizes[@]}"; do
        for ((r = 1; r <= REPS; r++)); do
            run_one cgrad "$p" "$b" "$r"
            for m in "${modes[@]}"; do run_one "$m" "$p" "$b" "$r"; done
        done
    done
done

# ---- summary: medians over the repetitions, cgrad's over each PyTorch mode's ----------------------
median_of() { # program precision batch
    awk -F'\t' -v w="$1" -v p="$2" -v b="$3" '$1 == w && $2 == p && $3 == b { print $5 }' "$WORK/results.tsv" | median
}
echo
header=$(printf '%-9s %-6s %14s' precision batch "cgrad img/s")
for m in "${modes[@]}"; do header+=$(printf ' %14s %9s' "$m img/s" "cgrad /"); done
echo "$header"
for p in "${precisions[@]}"; do
    for b in "${batch_sizes[@]}"; do
        c=$(median_of cgrad "$p" "$b")
        line=$(printf '%-9s %-6s %14.0f' "$p" "$b" "$c")
        for m in "${modes[@]}"; do
            t=$(median_of "$m" "$p" "$b")
            line+=$(awk -v c="$c" -v t="$t" 'BEGIN { printf " %14.0f %8.2fx", t, c / t }')
        done
        echo "$line"
    done
done

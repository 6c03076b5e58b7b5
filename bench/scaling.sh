#!/usr/bin/env bash
# scaling.sh: data-parallel scaling of the tutorial CNN on Fashion-MNIST, cgrad against PyTorch's
# DistributedDataParallel on the same machine, on 1, 2, ... N GPUs (or N CPU processes): images/s
# of the whole run and the scaling efficiency, in two settings:
#   weak    every rank keeps the same batch (--batch per rank): more ranks, larger global batch
#   strong  the global batch stays (--batch x N) and is split: more ranks, smaller batch each
# Efficiency = images/s on K ranks / (K x images/s on 1 rank): 1.00 is perfect scaling.
# It builds nothing: build cgrad with MPI (and NCCL for GPUs) first. Figures, not pass/fail.
#
# Each configuration runs alone, one after the other:
#   cgrad     mpirun -np K MPIRUN_FLAGS BUILD/cnn --distributed --device DEV --epochs E --batch-size B
#             --log WORK/cgrad-MODE-K.csv (images/s per epoch in its CSV)
#   PyTorch   torchrun --standalone --nproc_per_node K bench/ddp_torch.py --device DEV --epochs E --batch B
#             (one JSON line per epoch); or mpirun -np K PYTHON bench/ddp_torch.py with --torch-launcher mpirun
# Both: Adam 1e-3, the data set on the device, DistributedSampler's shares, each epoch's training
# timed alone. Each figure is the MEDIAN OVER EPOCHS 2..E (epoch 1 carries autotuning, graph capture
# and NCCL's connection setup), or epoch 1 when E is 1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$ROOT/build"
DEVICE=cuda
MAX_RANKS=""
EPOCHS=5
BATCH=128
MODES="weak strong"
LIMIT=""
THREADS=""
DATA=/usr/share/datasets/fashion-mnist
PYTHON=${PYTHON:-/usr/bin/python3}
TORCHRUN=${TORCHRUN:-torchrun}
TORCH_LAUNCHER=torchrun
MPIRUN=${MPIRUN:-mpirun}
MPIRUN_FLAGS=${MPIRUN_FLAGS:---bind-to none}
USE_TORCH=yes
KEEP_DIR=""

usage() {
    cat <<EOF
usage: bench/scaling.sh [options]
Train the tutorial CNN on 1..N ranks with cgrad (mpirun ... cnn --distributed) and PyTorch DDP
(bench/ddp_torch.py), weak and strong scaling, and print images/s and efficiency per rank count.

  --device DEV            cuda (one rank per GPU, NCCL; default) or cpu (MPI; gloo for PyTorch)
  --max-ranks N           up to N ranks (default: the GPU count from nvidia-smi; 2 on the CPU)
  --epochs E              epochs per run (default 5)
  --batch B               weak: images per step on each rank; strong: the global batch is B x N
                          (default 128)
  --mode weak|strong|both (default both)
  --limit N               train on the first N training images only
  --threads T             CPU threads per rank (cgrad --threads, OMP_NUM_THREADS for PyTorch)
  --data DIR              Fashion-MNIST (default /usr/share/datasets/fashion-mnist)
  --build-dir DIR         where cnn was built (default ROOT/build)
  --python PATH           interpreter with torch (default \$PYTHON, else /usr/bin/python3)
  --torch-launcher L      torchrun (default) or mpirun (where torchrun does not work)
  --no-torch              run cgrad only
  --keep DIR              keep every run's output there
  --help                  this text

Environment: MPIRUN (default mpirun), MPIRUN_FLAGS (default "--bind-to none"; --oversubscribe is
added on the CPU), TORCHRUN (default torchrun). As root, Open MPI's OMPI_ALLOW_RUN_AS_ROOT* are set.
ROOT is the repository holding this script: $ROOT
EOF
}

die() {
    echo "scaling.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --max-ranks) MAX_RANKS=${2:?--max-ranks needs a value}; shift 2 ;;
    --epochs) EPOCHS=${2:?--epochs needs a value}; shift 2 ;;
    --batch) BATCH=${2:?--batch needs a value}; shift 2 ;;
    --mode)
        case "${2:-}" in
        weak | strong) MODES=$2 ;;
        both) MODES="weak strong" ;;
        *) die "--mode: '${2:-}' is not weak, strong or both" ;;
        esac
        shift 2 ;;
    --limit) LIMIT=${2:?--limit needs a value}; shift 2 ;;
    --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
    --data) DATA=${2:?--data needs a value}; shift 2 ;;
    --build-dir) BUILD_DIR=${2:?--build-dir needs a value}; shift 2 ;;
    --python) PYTHON=${2:?--python needs a value}; shift 2 ;;
    --torch-launcher)
        case "${2:-}" in torchrun | mpirun) TORCH_LAUNCHER=$2 ;; *) die "--torch-launcher: '${2:-}' is not torchrun or mpirun" ;; esac
        shift 2 ;;
    --no-torch) USE_TORCH=no; shift ;;
    --keep) KEEP_DIR=${2:?--keep needs a value}; shift 2 ;;
    --help | -h) usage; exit 0 ;;
    *) echo "scaling.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

case "$DEVICE" in cuda | cpu) ;; *) die "--device: '$DEVICE' is not cuda or cpu" ;; esac
[ -x "$BUILD_DIR/cnn" ] || die "no $BUILD_DIR/cnn: build cgrad first (cmake -S . -B build && cmake --build build -j)"
command -v "$MPIRUN" >/dev/null || die "no $MPIRUN: install Open MPI (tools/install_deps.sh)"
if [ -z "$MAX_RANKS" ]; then
    if [ "$DEVICE" = cuda ]; then
        MAX_RANKS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
        [ "$MAX_RANKS" -ge 1 ] || die "nvidia-smi finds no GPU (use --device cpu, or --max-ranks N)"
    else
        MAX_RANKS=2
    fi
fi
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ "$DEVICE" = cpu ] && MPIRUN_FLAGS="$MPIRUN_FLAGS --oversubscribe"
[ -n "$THREADS" ] && export OMP_NUM_THREADS=$THREADS

WORK=${KEEP_DIR:-$(mktemp -d)}
mkdir -p "$WORK"
[ -n "$KEEP_DIR" ] || trap 'rm -rf "$WORK"' EXIT

# The median of epochs 2..E of images/s: cgrad's CSV (7th column) or PyTorch's JSON lines.
median() {
    "$PYTHON" - "$1" <<'EOF'
import json, statistics, sys
path = sys.argv[1]
if path.endswith(".csv"):
    rows = [line.split(",") for line in open(path).read().splitlines()[1:] if line]
    values = [float(r[6]) for r in rows]
else:
    values = [json.loads(line)["images_per_s"] for line in open(path) if line.startswith("{")]
if not values:
    sys.exit("no epochs in " + path)
print(round(statistics.median(values[1:] if len(values) > 1 else values)))
EOF
}

common=(--epochs "$EPOCHS" --data "$DATA")
[ -n "$LIMIT" ] && common+=(--limit "$LIMIT")
echo "scaling.sh: the tutorial CNN on $DEVICE, 1..$MAX_RANKS ranks, $EPOCHS epochs, medians of epochs 2..$EPOCHS"
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1 | sed 's/^/GPU: /'
printf '%-7s %5s %10s %13s %6s %13s %6s %12s\n' mode ranks batch/rank "cgrad img/s" eff "torch img/s" eff cgrad/torch
for mode in $MODES; do
    base_cgrad="" base_torch=""
    for ((k = 1; k <= MAX_RANKS; k++)); do
        if [ "$mode" = weak ]; then
            b=$BATCH
        else
            global=$((BATCH * MAX_RANKS))
            [ $((global % k)) = 0 ] || continue # the global batch must split evenly
            b=$((global / k))
        fi
        cgrad_args=(--distributed --device "$DEVICE" --batch-size "$b" --quiet --log "$WORK/cgrad-$mode-$k.csv" "${common[@]}")
        [ -n "$THREADS" ] && cgrad_args+=(--threads "$THREADS")
        # shellcheck disable=SC2086 # MPIRUN_FLAGS is a list of flags
        "$MPIRUN" -np "$k" $MPIRUN_FLAGS "$BUILD_DIR/cnn" "${cgrad_args[@]}" >"$WORK/cgrad-$mode-$k.out" 2>&1 ||
            die "cgrad on $k ranks failed: $(tail -n 5 "$WORK/cgrad-$mode-$k.out")"
        ips_cgrad=$(median "$WORK/cgrad-$mode-$k.csv")
        base_cgrad=${base_cgrad:-$ips_cgrad}
        eff_cgrad=$(awk -v a="$ips_cgrad" -v b="$base_cgrad" -v k="$k" 'BEGIN { printf "%.2f", a / (k * b) }')
        ips_torch="-" eff_torch="-" ratio="-"
        if [ "$USE_TORCH" = yes ]; then
            torch_args=(--device "$DEVICE" --batch "$b" "${common[@]}")
            if [ "$TORCH_LAUNCHER" = torchrun ]; then
                "$TORCHRUN" --standalone --nproc_per_node "$k" "$ROOT/bench/ddp_torch.py" "${torch_args[@]}" \
                    >"$WORK/torch-$mode-$k.jsonl" 2>"$WORK/torch-$mode-$k.err" ||
                    die "PyTorch on $k ranks failed: $(tail -n 5 "$WORK/torch-$mode-$k.err")"
            else
                # shellcheck disable=SC2086
                "$MPIRUN" -np "$k" $MPIRUN_FLAGS "$PYTHON" "$ROOT/bench/ddp_torch.py" "${torch_args[@]}" \
                    >"$WORK/torch-$mode-$k.jsonl" 2>"$WORK/torch-$mode-$k.err" ||
                    die "PyTorch on $k ranks failed: $(tail -n 5 "$WORK/torch-$mode-$k.err")"
            fi
            ips_torch=$(median "$WORK/torch-$mode-$k.jsonl")
            base_torch=${base_torch:-$ips_torch}
            eff_torch=$(awk -v a="$ips_torch" -v b="$base_torch" -v k="$k" 'BEGIN { printf "%.2f", a / (k * b) }')
            ratio=$(awk -v a="$ips_cgrad" -v b="$ips_torch" 'BEGIN { printf "%.2fx", a / b }')
        fi
        printf '%-7s %5d %10d %13s %6s %13s %6s %12s\n' "$mode" "$k" "$b" "$ips_cgrad" "$eff_cgrad" "$ips_torch" "$eff_torch" "$ratio"
    done
done
[ -n "$KEEP_DIR" ] && echo "scaling.sh: every run's output is in $KEEP_DIR"
exit 0

#!/usr/bin/env bash
# cpu_bf16.sh: the tutorial CNN trained on the CPU in fp32 and in bf16, cgrad against PyTorch's
# CPU autocast in the same run on the same machine: training images/s of each, with each of
# cgrad's bf16 paths (AMX tiles, AVX512-BF16, the emulated reference: CGRAD_CPU_BF16) the CPU
# has. It builds nothing: build cgrad first. Figures, not pass/fail: it exits 0 unless a program
# fails or an option is wrong.
#
# Each configuration runs REPS times, the configurations taking turns (A B C A B C ...) so that
# a change in the machine's load touches them all alike; the figure is the median of the runs.
#   cgrad     BUILD/cnn --thread-tuning off --precision P --threads T --epochs 1 --limit N --data DATA
#             (CGRAD_CPU_BF16=path)
#   PyTorch   PYTHON TORCH_WORKLOADS cnn --device cpu --precision P --threads T --epochs 1 --limit N --data DATA
# Both time the epoch's training alone (no evaluation, no loading) and print images/s; PyTorch's
# bf16 is torch.autocast("cpu", dtype=torch.bfloat16) (oneDNN's bf16 kernels, AMX where present).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$ROOT/build"
THREADS=1
LIMIT=20000
REPS=3
DATA=/usr/share/datasets/fashion-mnist
PYTHON=${PYTHON:-/usr/bin/python3}
TORCH_WORKLOADS=${TORCH_WORKLOADS:-$ROOT/bench/torch_workloads.py}
USE_TORCH=yes

usage() {
    cat <<EOF
usage: bench/cpu_bf16.sh [options]
Train the tutorial CNN on Fashion-MNIST for one epoch on the CPU in fp32 and bf16, with cgrad
(every bf16 path this CPU has) and with PyTorch's CPU autocast, REPS times each, taking turns;
print the median training images/s of each and the ratios.

  --build-dir DIR         where cnn was built (default: ROOT/build)
  --threads N             threads for both (default: 1)
  --limit N               training images per epoch (default: 20000)
  --reps N                runs of each configuration (default: 3)
  --data DIR              the Fashion-MNIST folder (default: /usr/share/datasets/fashion-mnist)
  --torch-workloads PATH  the PyTorch script (default: \$TORCH_WORKLOADS, else
                          ROOT/bench/torch_workloads.py)
  --python PATH           interpreter with torch (default: \$PYTHON, else /usr/bin/python3)
  --no-torch              run cgrad only
  --help                  this text
EOF
}

die() {
    echo "cpu_bf16.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) BUILD_DIR=${2:?--build-dir needs a value}; shift 2 ;;
    --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
    --limit) LIMIT=${2:?--limit needs a value}; shift 2 ;;
    --reps) REPS=${2:?--reps needs a value}; shift 2 ;;
    --data) DATA=${2:?--data needs a value}; shift 2 ;;
    --torch-workloads) TORCH_WORKLOADS=${2:?--torch-workloads needs a value}; shift 2 ;;
    --python) PYTHON=${2:?--python needs a value}; shift 2 ;;
    --no-torch) USE_TORCH=no; shift ;;
    --help | -h) usage; exit 0 ;;
    *) echo "cpu_bf16.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for v in "$THREADS" "$LIMIT" "$REPS"; do
    case "$v" in '' | *[!0-9]* | 0) die "--threads, --limit and --reps take whole numbers of at least 1" ;; esac
done
CNN="$BUILD_DIR/cnn"
[ -x "$CNN" ] || die "no executable $CNN (build first: cmake -S . -B build && cmake --build build -j2)"
[ -d "$DATA" ] || die "--data: no folder $DATA"
if [ "$USE_TORCH" = yes ]; then
    [ -f "$TORCH_WORKLOADS" ] || die "no PyTorch script $TORCH_WORKLOADS (give --torch-workloads or --no-torch)"
    "$PYTHON" -c "import torch" 2>/dev/null || die "$PYTHON cannot import torch (give --python or --no-torch)"
fi
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    export OPENBLAS_CORETYPE=SkylakeX # Debian's OpenBLAS 0.3.21 may pick its slow generic core
fi

# The configurations: a label and a command printing images/s somewhere in its output.
LABELS=("cgrad fp32")
CNN="$CNN --thread-tuning off" # THREADS threads at every step (the tuner: bench/thread_tuning.sh)
CMDS=("$CNN --precision fp32")
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
case " $flags " in *" amx_bf16 "*) LABELS+=("cgrad bf16 AMX"); CMDS+=("env CGRAD_CPU_BF16=amx $CNN --precision bf16") ;; esac
case " $flags " in *" avx512_bf16 "*) LABELS+=("cgrad bf16 AVX512-BF16"); CMDS+=("env CGRAD_CPU_BF16=avx512bf16 $CNN --precision bf16") ;; esac
LABELS+=("cgrad bf16 emulated")
CMDS+=("env CGRAD_CPU_BF16=emulated $CNN --precision bf16")
if [ "$USE_TORCH" = yes ]; then
    LABELS+=("PyTorch fp32" "PyTorch bf16 autocast")
    CMDS+=("$PYTHON $TORCH_WORKLOADS cnn --device cpu --precision fp32" "$PYTHON $TORCH_WORKLOADS cnn --device cpu --precision bf16")
fi

# images/s of one run: cnn's "Training: ... (N images/s)" line, PyTorch's JSON "images_per_s".
run_once() {
    local out
    out=$($1 --threads "$THREADS" --epochs 1 --limit "$LIMIT" --data "$DATA" 2>/dev/null) || die "failed: $1"
    printf '%s\n' "$out" | sed -n 's/.*(\([0-9.]*\) images\/s).*/\1/p; s/.*"epoch": 1,.*"images_per_s": \([0-9.]*\).*/\1/p' | tail -n 1
}

declare -a RESULTS
for ((r = 0; r < REPS; r++)); do
    for i in "${!CMDS[@]}"; do
        RESULTS[$i]="${RESULTS[$i]:-} $(printf '%.0f' "$(run_once "${CMDS[$i]}")")" # (PyTorch's have decimals)
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
# OPENBLAS_CORETYPE (the user's, or SkylakeX above) chooses OpenBLAS's kernels for PyTorch's
# products (cgrad's, with AVX-512, are its own): shown, as the figures depend on it.
echo "tutorial CNN, Fashion-MNIST, $LIMIT training images, $THREADS thread(s), median of $REPS; $CPU;" \
     "load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC')${OPENBLAS_CORETYPE:+; OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE}"
declare -A MED
for i in "${!CMDS[@]}"; do
    MED[${LABELS[$i]}]=$(printf '%s' "${RESULTS[$i]}" | median)
    printf '  %-26s %10.0f images/s   (runs:%s)\n' "${LABELS[$i]}" "${MED[${LABELS[$i]}]}" "${RESULTS[$i]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
for l in "cgrad bf16 AMX" "cgrad bf16 AVX512-BF16" "cgrad bf16 emulated"; do
    [ -n "${MED[$l]:-}" ] || continue
    line="  $l / cgrad fp32: $(ratio "${MED[$l]}" "${MED[cgrad fp32]}")"
    [ "$USE_TORCH" = yes ] && line="$line;  / PyTorch bf16 autocast: $(ratio "${MED[$l]}" "${MED[PyTorch bf16 autocast]}")"
    echo "$line"
done
[ "$USE_TORCH" = yes ] && echo "  cgrad fp32 / PyTorch fp32: $(ratio "${MED[cgrad fp32]}" "${MED[PyTorch fp32]}")"
exit 0

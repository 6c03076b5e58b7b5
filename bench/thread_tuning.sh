#!/usr/bin/env bash
# thread_tuning.sh: the tutorial CNN trained on the CPU with a fixed N - 1 threads, a fixed N, and
# cnn's default (the thread tuner choosing N or N - 1 step by step: kernels/cpu/thread_tuner.c),
# in fp32 and bf16, on the CPU as it is ("idle") and with another program spinning on one core
# ("busy": taskset -c CORE yes, stopped at the end of each turn). It builds nothing: build cgrad
# first. Figures, not pass/fail: it exits 0 unless a program fails or an option is wrong.
#
# Each turn runs every configuration once, idle then busy, the configurations taking turns (the
# three thread settings in a rotating order: N-1, N, tuned; then N, tuned, N-1; ...), so that a
# change in the machine's load touches them all alike; the figure is the median of REPS turns,
# in training images/s (cnn's "Training: ... images/s" line):
#   BUILD/cnn --precision P --epochs E --limit N --data DATA --threads T --thread-tuning off
#   BUILD/cnn --precision P --epochs E --limit N --data DATA [--threads N]                   (tuned)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$ROOT/build"
THREADS=$(nproc)
LIMIT=10000
EPOCHS=1
REPS=3
CORE=1
DATA=/usr/share/datasets/fashion-mnist

usage() {
    cat <<EOF
usage: bench/thread_tuning.sh [options]
Train the tutorial CNN on Fashion-MNIST on the CPU with N - 1 threads, N threads and the thread
tuner (cnn's default), in fp32 and bf16, idle and with 'yes' spinning on one core; REPS turns,
taking turns; print the median training images/s of each.

  --build-dir DIR   where cnn was built (default: ROOT/build)
  --threads N       the thread count asked for, at least 2 (default: nproc, here $THREADS)
  --limit N         training images per epoch (default: 10000)
  --epochs N        epochs per run (default: 1)
  --reps N          turns (default: 3)
  --core C          the core the busy program spins on (default: 1)
  --data DIR        the Fashion-MNIST folder (default: /usr/share/datasets/fashion-mnist)
  --help            this text
EOF
}

die() {
    echo "thread_tuning.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) BUILD_DIR=${2:?--build-dir needs a value}; shift 2 ;;
    --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
    --limit) LIMIT=${2:?--limit needs a value}; shift 2 ;;
    --epochs) EPOCHS=${2:?--epochs needs a value}; shift 2 ;;
    --reps) REPS=${2:?--reps needs a value}; shift 2 ;;
    --core) CORE=${2:?--core needs a value}; shift 2 ;;
    --data) DATA=${2:?--data needs a value}; shift 2 ;;
    --help | -h) usage; exit 0 ;;
    *) echo "thread_tuning.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for v in "$THREADS" "$LIMIT" "$EPOCHS" "$REPS"; do
    case "$v" in '' | *[!0-9]* | 0) die "--threads, --limit, --epochs and --reps take whole numbers of at least 1" ;; esac
done
case "$CORE" in '' | *[!0-9]*) die "--core takes a core number" ;; esac
[ "$THREADS" -ge 2 ] || die "--threads: at least 2 (with 1 there is nothing to tune)"
command -v taskset > /dev/null || die "no taskset (util-linux) to hold a core"
CNN="$BUILD_DIR/cnn"
[ -x "$CNN" ] || die "no executable $CNN (build first: cmake -S . -B build && cmake --build build -j2)"
[ -d "$DATA" ] || die "--data: no folder $DATA"
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    export OPENBLAS_CORETYPE=SkylakeX # Debian's OpenBLAS 0.3.21 may pick its slow generic core
fi

LOW=$((THREADS - 1))
MODES=("$LOW thread(s)" "$THREADS threads" "tuned")
MODE_ARGS=("--threads $LOW --thread-tuning off" "--threads $THREADS --thread-tuning off" "--threads $THREADS")
BUSY_PID=
stop_busy() { if [ -n "$BUSY_PID" ]; then kill "$BUSY_PID" 2> /dev/null || true; wait "$BUSY_PID" 2> /dev/null || true; BUSY_PID=; fi; }
trap stop_busy EXIT

# images/s of one run: cnn's "Training: ... (N images/s)" line.
run_once() {
    local out
    # shellcheck disable=SC2086 # the mode's arguments are words
    out=$("$CNN" --precision "$1" --epochs "$EPOCHS" --limit "$LIMIT" --data "$DATA" $2 2> /dev/null) || die "failed: cnn --precision $1 $2"
    printf '%s\n' "$out" | sed -n 's/^Training: .*(\([0-9.]*\) images\/s).*/\1/p' | tail -n 1
}

declare -A RESULTS
for ((r = 0; r < REPS; r++)); do
    for cond in idle busy; do
        if [ "$cond" = busy ]; then
            taskset -c "$CORE" yes > /dev/null &
            BUSY_PID=$!
            sleep 0.5
        fi
        for p in fp32 bf16; do
            for k in 0 1 2; do # the three settings in turn, each turn starting one further
                m=$(((r + k) % 3))
                RESULTS[$cond $p $m]="${RESULTS[$cond $p $m]:-} $(run_once "$p" "${MODE_ARGS[$m]}")"
            done
        done
        stop_busy
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

CPU=$(lscpu 2> /dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
echo "tutorial CNN, Fashion-MNIST, $LIMIT training images, $EPOCHS epoch(s), median of $REPS; $CPU, $(nproc) cores;" \
    "busy: yes on core $CORE; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC')"
for cond in idle busy; do
    for p in fp32 bf16; do
        for m in "${!MODES[@]}"; do
            printf '  %-5s %-5s %-12s %8.0f images/s   (runs:%s)\n' "$cond" "$p" "${MODES[$m]}" \
                "$(printf '%s' "${RESULTS[$cond $p $m]}" | median)" "${RESULTS[$cond $p $m]}"
        done
    done
done
exit 0

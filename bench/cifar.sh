#!/usr/bin/env bash
# cifar.sh: CIFAR-10 time to accuracy, cgrad's fast network with --recipe airbench94 against
# airbench94 itself (PyPI airbench 0.1.8) in the same run on the same GPU and the same data: the
# test accuracy with TTA and the training time of each run, their means, and the ratio of the
# times (cgrad / airbench: below 1 is cgrad faster). It builds nothing: build cgrad first. Figures,
# not pass/fail: it exits 0 unless a program fails or an option is wrong.
#
# One after the other (never at the same time), RUNS runs each (seeds 0 .. RUNS-1 for cgrad), each
# program warmed up first on a GPU (cgrad: one short untimed run; airbench: warmup94()):
#   cgrad     BUILD/cnn --model fast --dataset cifar10 --data DATA --device DEV --recipe airbench94
#             --seed S --quiet [--precision P] [--epochs E] [--limit N] [--limit-test N] [--threads T]
#             [--untimed-step] (with --warmup on, the default, on a GPU: see below)
#             its last line: "airbench94: train_seconds T (training steps + whitening init ...),
#             tta_seconds U, test accuracy with TTA A, process wall W s"
#   airbench  (--device cuda only) PYTHON with PYTHONPATH=AIRBENCH (the sdist's folder that holds
#             airbench/), in a scratch folder where cifar10/ links to DATA: airbench.warmup94() once,
#             then airbench.train94(run=r) RUNS times; its CifarLoader reads cifar10/train.pt and
#             cifar10/test.pt (tools/cifar_to_airbench.py DATA writes them from the binary files, so
#             both see the same pixels). Each run's printed table is parsed: the final 'eval' row's
#             tta_val_acc and total_time_seconds. airbench adds the TTA evaluation to that total;
#             the script times airbench.evaluate(model, test_loader, tta_level=2) again with CUDA
#             events and reports train_seconds = total_time_seconds - that, the training steps and
#             whitening init as cgrad's train_seconds (issue 17's measure), besides the total.
#
# On the GPU machine (bench/README.md, "Real data"): the working tree travels, but .whl/ is
# ignored by git: carry it (run's carry: [".whl/airbench-0.1.8", "build"]) or pass --airbench DIR.
# --device cpu runs cgrad alone (airbench is CUDA-only), for a smoke test with small settings:
#   bench/cifar.sh --device cpu --runs 1 --limit 1024 --limit-test 100 --epochs 1 --threads 2
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$ROOT/build"
DEVICE=cuda
RUNS=5
DATA=/work/data/cifar10
AIRBENCH_DIR="$ROOT/.whl/airbench-0.1.8"
PYTHON=${PYTHON:-python3}
EXTRA=()
KEEP_DIR=""
WARMUP=on

usage() {
    cat <<EOF
usage: bench/cifar.sh [options]
Train CIFAR-10 with cgrad's cnn --model fast --recipe airbench94 and (on a GPU) with airbench94,
RUNS runs each, one after the other; print each run's TTA accuracy and training seconds, the means
and the time ratio cgrad / airbench.

  --device DEV     cuda (default), cuda:N or cpu (cgrad alone: airbench needs a GPU)
  --runs N         runs of each (default 5; seeds 0 .. N-1 for cgrad)
  --data DIR       CIFAR-10 binary files and airbench's train.pt / test.pt (default $DATA)
  --build DIR      cgrad's build folder (default build/)
  --airbench DIR   the folder holding the airbench package (default .whl/airbench-0.1.8)
  --epochs E       cgrad's --epochs (default airbench's 9.9; airbench always trains its 9.9; 10.4:
                   cgrad's time to airbench94's accuracy, lesson 08)
  --precision P    cgrad's --precision: fp32 (default), bf16 or fp16 (airbench94 trains in fp16)
  --limit N, --limit-test N, --threads N   passed to cgrad (smoke tests on the CPU)
  --warmup on|off  on (default): each cgrad run warms up before its clock starts, as airbench94's
                   runs do after its warmup94(): cnn --untimed-step (one untimed step of a throwaway copy
                   of the model), with the cuDNN engines timed by the untimed warm-up run
                   (CGRAD_CUDNN_CACHE); off: neither, each run pays its first step's costs
  --keep DIR       keep the outputs of every run in DIR (default: a temporary folder, removed)
  --help           this text
Environment: PYTHON (default python3), the interpreter with torch and torchvision for airbench.
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
    --data) DATA=${2:?--data needs a value}; shift 2 ;;
    --build) BUILD_DIR=${2:?--build needs a value}; shift 2 ;;
    --airbench) AIRBENCH_DIR=${2:?--airbench needs a value}; shift 2 ;;
    --epochs|--limit|--limit-test|--threads|--precision) EXTRA+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --keep) KEEP_DIR=${2:?--keep needs a value}; shift 2 ;;
    --warmup) WARMUP=${2:?--warmup needs a value}; shift 2 ;;
    --help|-h) usage; exit 0 ;;
    *) echo "cifar.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$RUNS" in ''|*[!0-9]*|0) echo "cifar.sh: --runs: '$RUNS' is not a positive whole number" >&2; exit 2 ;; esac
case "$DEVICE" in cpu|cuda|cuda:[0-9]*) ;; *) echo "cifar.sh: --device: '$DEVICE' is not cpu, cuda or cuda:N" >&2; exit 2 ;; esac
case "$WARMUP" in on|off) ;; *) echo "cifar.sh: --warmup: '$WARMUP' is not on or off" >&2; exit 2 ;; esac
CNN="$BUILD_DIR/cnn"
[ -x "$CNN" ] || { echo "cifar.sh: $CNN is missing: build cgrad first (cmake --build build)" >&2; exit 2; }
[ -f "$DATA/data_batch_1.bin" ] || { echo "cifar.sh: --data $DATA: no CIFAR-10 binary files there" >&2; exit 2; }
USE_AIRBENCH=no
if [ "$DEVICE" != cpu ]; then
    USE_AIRBENCH=yes
    [ -f "$AIRBENCH_DIR/airbench/__init__.py" ] || { echo "cifar.sh: --airbench $AIRBENCH_DIR: no airbench/ package there (carry .whl/)" >&2; exit 2; }
    AIRBENCH_DIR=$(cd "$AIRBENCH_DIR" && pwd) # absolute: airbench runs from a scratch folder
    for f in train.pt test.pt; do
        [ -f "$DATA/$f" ] || { echo "cifar.sh: $DATA/$f is missing: /usr/bin/python3 tools/cifar_to_airbench.py $DATA" >&2; exit 2; }
    done
fi

if [ -n "$KEEP_DIR" ]; then
    mkdir -p "$KEEP_DIR"
    WORK=$(cd "$KEEP_DIR" && pwd)
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/cifar_bench.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
fi

echo "cifar.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), device $DEVICE, $RUNS run(s) each, data $DATA, warm-up: $WARMUP"
[ "$DEVICE" != cpu ] && command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | sed 's/^/GPU: /'

# ---- cgrad ----------------------------------------------------------------------------------------
# On a GPU, one short untimed run first, as airbench.warmup94() is for airbench: the first process on
# a fresh machine reads cuDNN's libraries (over a gigabyte) from disk and wakes the GPU inside its
# first timed epoch (an H100 on 2026-12-06: 2.313 s of training, against 1.880-1.885 s for the three
# runs after it). With --warmup on (the default) it also writes the cuDNN engines it timed for
# each convolution to a file (CGRAD_CUDNN_CACHE) that the timed runs read, and each timed run
# starts with cnn --untimed-step: one untimed step of a throwaway copy of the model, which loads the
# kernels and starts the libraries before the clock does. airbench94's timed runs come after its
# warmup94(), which does all of that for PyTorch in its process. Without them, a run's first epoch
# took 0.62-0.64 s against 0.14-0.15 s for each epoch after it (an H100, 2026-12-07).
WARM=()
if [ "$WARMUP" = on ] && [ "$DEVICE" != cpu ]; then
    export CGRAD_CUDNN_CACHE="$WORK/cudnn_engines.txt"
    rm -f "$CGRAD_CUDNN_CACHE"
    WARM=(--untimed-step)
fi
if [ "$DEVICE" != cpu ]; then
    if ! "$CNN" --model fast --dataset cifar10 --data "$DATA" --device "$DEVICE" --recipe airbench94 --quiet \
        "${EXTRA[@]}" --epochs 1 --limit 2048 --limit-test 100 > "$WORK/cgrad_warmup.txt" 2>&1; then
        echo "cifar.sh: cgrad's warm-up run failed:" >&2
        tail -5 "$WORK/cgrad_warmup.txt" >&2
        exit 1
    fi
fi
: > "$WORK/cgrad.tsv"
for ((r = 0; r < RUNS; r++)); do
    out="$WORK/cgrad_run$r.txt"
    if ! "$CNN" --model fast --dataset cifar10 --data "$DATA" --device "$DEVICE" --recipe airbench94 --seed "$r" \
        --quiet "${EXTRA[@]}" "${WARM[@]}" > "$out" 2>&1; then
        echo "cifar.sh: cgrad run $r failed:" >&2
        tail -5 "$out" >&2
        exit 1
    fi
    line=$(grep '^airbench94: train_seconds' "$out" | tail -1)
    [ -n "$line" ] || { echo "cifar.sh: cgrad run $r printed no airbench94 line" >&2; tail -5 "$out" >&2; exit 1; }
    # airbench94: train_seconds T (...), tta_seconds U, test accuracy with TTA A, process wall W s
    echo "$line" | sed -E 's/.*train_seconds ([0-9.]+) .*tta_seconds ([0-9.]+), test accuracy with TTA ([0-9.]+), process wall ([0-9.]+) s.*/\3\t\1\t\2\t\4/' >> "$WORK/cgrad.tsv"
    printf 'cgrad    run %d: %s\n' "$r" "$(tail -1 "$WORK/cgrad.tsv" | awk -F'\t' '{printf "TTA accuracy %.4f, train_seconds %.3f, tta_seconds %.3f, process wall %.2f s", $1, $2, $3, $4}')"
done

# ---- airbench94 ------------------------------------------------------------------------------------
if [ "$USE_AIRBENCH" = yes ]; then
    mkdir -p "$WORK/airbench"
    ln -sfn "$(cd "$DATA" && pwd)" "$WORK/airbench/cifar10"
    GPU_ENV=()
    case "$DEVICE" in cuda:*) GPU_ENV=(env "CUDA_VISIBLE_DEVICES=${DEVICE#cuda:}") ;; esac
    if ! (cd "$WORK/airbench" && "${GPU_ENV[@]}" env PYTHONPATH="$AIRBENCH_DIR${PYTHONPATH:+:$PYTHONPATH}" \
        "$PYTHON" - "$RUNS" > "$WORK/airbench.txt" 2>&1) <<'PYEOF'
import contextlib, io, sys
import torch
import airbench

runs = int(sys.argv[1])
airbench.warmup94()  # its untimed warm-up: one step on random labels (cuDNN autotuning, allocator)
test_loader = airbench.CifarLoader("cifar10", train=False, batch_size=2000)
for r in range(runs):
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        model = airbench.train94(run=r)
    sys.stdout.write(text.getvalue())
    row = None
    for line in text.getvalue().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[1] == "eval":
            row = cells
    if row is None:
        sys.exit("airbench run %d printed no 'eval' row" % r)
    tta_acc, total = float(row[5]), float(row[6])
    # its TTA evaluation again, timed as airbench times it, to take it out of the total
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    again = airbench.evaluate(model, test_loader, tta_level=2)
    end.record()
    torch.cuda.synchronize()
    tta_seconds = 1e-3 * start.elapsed_time(end)
    print("RESULT\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f" % (tta_acc, total - tta_seconds, tta_seconds, total, again))
PYEOF
    then
        echo "cifar.sh: airbench failed:" >&2
        tail -8 "$WORK/airbench.txt" >&2
        exit 1
    fi
    grep '^RESULT' "$WORK/airbench.txt" | cut -f2- > "$WORK/airbench.tsv"
    awk -F'\t' '{printf "airbench run %d: TTA accuracy %.4f, train_seconds %.3f (total_time_seconds %.3f less its TTA %.3f)\n", NR - 1, $1, $2, $4, $3}' "$WORK/airbench.tsv"
fi

# ---- summary ---------------------------------------------------------------------------------------
mean_sd() { # column $2 of file $1: "mean sd"
    awk -F'\t' -v c="$2" '{s += $c; q += $c * $c; n++} END {m = s / n; v = n > 1 ? (q - n * m * m) / (n - 1) : 0; if (v < 0) v = 0; printf "%.6f %.6f", m, sqrt(v)}' "$1"
}
read -r c_acc c_acc_sd <<< "$(mean_sd "$WORK/cgrad.tsv" 1)"
read -r c_time c_time_sd <<< "$(mean_sd "$WORK/cgrad.tsv" 2)"
read -r c_wall _ <<< "$(mean_sd "$WORK/cgrad.tsv" 4)"
echo
printf 'cgrad      mean TTA accuracy %.4f (sd %.4f), mean train_seconds %.3f (sd %.3f), process wall %.2f s, %d runs\n' \
    "$c_acc" "$c_acc_sd" "$c_time" "$c_time_sd" "$c_wall" "$RUNS"
if [ "$USE_AIRBENCH" = yes ]; then
    read -r a_acc a_acc_sd <<< "$(mean_sd "$WORK/airbench.tsv" 1)"
    read -r a_time a_time_sd <<< "$(mean_sd "$WORK/airbench.tsv" 2)"
    read -r a_total _ <<< "$(mean_sd "$WORK/airbench.tsv" 4)"
    printf 'airbench94 mean TTA accuracy %.4f (sd %.4f), mean train_seconds %.3f (sd %.3f), total_time_seconds %.3f, %d runs\n' \
        "$a_acc" "$a_acc_sd" "$a_time" "$a_time_sd" "$a_total" "$RUNS"
    awk -v c="$c_time" -v a="$a_time" -v ca="$c_acc" -v aa="$a_acc" 'BEGIN {
        printf "time ratio cgrad / airbench94: %.3f (below 1: cgrad faster); accuracy difference %+.4f\n", c / a, ca - aa }'
else
    echo "(--device cpu: cgrad alone; airbench94 runs on a GPU only)"
fi

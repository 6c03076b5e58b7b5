#!/usr/bin/env bash
# quantize.sh: int8 against fp32 inference of a trained model, cgrad and PyTorch in the
# same run on the same machine: test accuracy and images/s at batch 4096 for each precision, and
# the ratios. It builds and trains nothing: build cgrad first, and train a model with
#   build/cnn --epochs 5 --save /tmp/cnn5.safetensors
# Figures, not pass/fail: it exits 0 unless a program fails or an option is wrong.
#
# Run once each, one after the other (never at the same time, so they do not share the cores):
#   cgrad     BUILD/quantize --load CKPT --device DEV --batch-size B --reps R --calib-batches N [--threads T] --quiet
#   PyTorch   PYTHON bench/quantize_torch.py --load CKPT --batch-size B --reps R --calib-batches N [--threads T]
# Both load the same weights, calibrate on N shuffled training batches of 128, evaluate the
# whole test set, and time one forward of the first B test images: the best of R after a warm-up.
# cgrad quantises as layers/quantize.h and core/quant/quantized.h say (per-channel int8 weights, percentile 99.99 %
# activations); PyTorch with torch.ao.quantization's eager static scheme (per-channel weights,
# HistogramObserver activations, fbgemm or onednn). PyTorch's int8 kernels are CPU only: with
# --device cuda only cgrad runs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$ROOT/build"
DEVICE=cpu
LOAD=""
BATCH=4096
REPS=5
CALIB=10
THREADS=""
DATA=/usr/share/datasets/fashion-mnist
PYTHON=${PYTHON:-/usr/bin/python3}
USE_TORCH=yes

usage() {
    cat <<EOF
usage: bench/quantize.sh --load CKPT [options]
Convert a trained model to int8 with cgrad (build/quantize) and with PyTorch
(bench/quantize_torch.py), one after the other, and print fp32 and int8 test accuracy and
inference images/s, with the int8 / fp32 ratios.

  --load PATH        the fp32 checkpoint (build/cnn --epochs 5 --save PATH writes one)
  --build-dir DIR    where quantize was built (default: ROOT/build)
  --device DEV       cpu, cuda or cuda:N for cgrad (default: cpu; PyTorch runs on the CPU only)
  --batch-size N     images per timed forward (default: 4096)
  --reps N           timed forwards per precision, the best is kept (default: 5)
  --calib-batches N  calibration batches of 128 (default: 10)
  --threads N        CPU threads for both (default: each program's own choice)
  --data DIR         the Fashion-MNIST folder (default: /usr/share/datasets/fashion-mnist)
  --python PATH      interpreter with torch and numpy (default: \$PYTHON, else /usr/bin/python3)
  --no-torch         run cgrad only
  --help             this text
EOF
}

die() { echo "quantize.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --load) LOAD=${2:?--load needs a value}; shift 2 ;;
    --build-dir) BUILD_DIR=${2:?--build-dir needs a value}; shift 2 ;;
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --batch-size) BATCH=${2:?--batch-size needs a value}; shift 2 ;;
    --reps) REPS=${2:?--reps needs a value}; shift 2 ;;
    --calib-batches) CALIB=${2:?--calib-batches needs a value}; shift 2 ;;
    --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
    --data) DATA=${2:?--data needs a value}; shift 2 ;;
    --python) PYTHON=${2:?--python needs a value}; shift 2 ;;
    --no-torch) USE_TORCH=no; shift ;;
    --help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
[ -n "$LOAD" ] || die "--load PATH is required (see --help)"
[ -f "$LOAD" ] || die "--load: $LOAD does not exist (build/cnn --epochs 5 --save $LOAD writes one)"
[ -x "$BUILD_DIR/quantize" ] || die "$BUILD_DIR/quantize is not built (cmake -S . -B build && cmake --build build -j2)"
case "$DEVICE" in cuda*) USE_TORCH=no ;; esac

THREAD_ARGS=()
[ -n "$THREADS" ] && THREAD_ARGS=(--threads "$THREADS")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs; device $DEVICE; batch $BATCH, best of $REPS"
"$BUILD_DIR/quantize" --load "$LOAD" --data "$DATA" --device "$DEVICE" --batch-size "$BATCH" --reps "$REPS" \
    --calib-batches "$CALIB" "${THREAD_ARGS[@]}" --quiet > "$WORK/cgrad.out"
if [ "$USE_TORCH" = yes ]; then
    "$PYTHON" "$ROOT/bench/quantize_torch.py" --load "$LOAD" --data "$DATA" --batch-size "$BATCH" --reps "$REPS" \
        --calib-batches "$CALIB" "${THREAD_ARGS[@]}" > "$WORK/torch.jsonl"
else
    : > "$WORK/torch.jsonl"
fi

"$PYTHON" - "$WORK/cgrad.out" "$WORK/torch.jsonl" <<'EOF'
import json, re, sys
out = open(sys.argv[1]).read()
acc = re.search(r"Test accuracy on (\S+): fp32 ([\d.]+), int8 ([\d.]+)", out)
ips = re.search(r"fp32 ([\d.]+) images/s, int8 ([\d.]+) images/s", out)
if not acc or not ips:
    sys.exit("quantize.sh: cannot read cgrad's output:\n" + out)
rows = [("cgrad", "fp32", float(acc.group(2)), float(ips.group(1))), ("cgrad", "int8", float(acc.group(3)), float(ips.group(2)))]
for line in open(sys.argv[2]):
    r = json.loads(line)
    rows.append((r["framework"] + (" " + r["engine"] if "engine" in r else ""), r["precision"], r["accuracy"], r["images_per_s"]))
print(f"{'program':28s} {'precision':9s} {'accuracy':>9s} {'images/s':>10s}")
for who, prec, a, s in rows:
    print(f"{who:28s} {prec:9s} {a:9.4f} {s:10.0f}")
c32, c8 = rows[0][3], rows[1][3]
print(f"cgrad: int8 {c8 / c32:.2f}x fp32 images/s, accuracy {100 * (rows[1][2] - rows[0][2]):+.2f} points (goal on a CPU: >= 1.5x, within 0.5 points)")
if len(rows) == 4:
    t32, t8 = rows[2][3], rows[3][3]
    print(f"pytorch: int8 {t8 / t32:.2f}x fp32 images/s, accuracy {100 * (rows[3][2] - rows[2][2]):+.2f} points")
    print(f"cgrad / pytorch: fp32 {c32 / t32:.2f}x, int8 {c8 / t8:.2f}x")
EOF

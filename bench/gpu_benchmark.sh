#!/usr/bin/env bash
# gpu_benchmark.sh: the course's GPU benchmark (chapter 0), cgrad against PyTorch in the same run
# on the same GPU: the N x N matrix product in fp32, tf32, fp16 and bf16 (TFLOPS), and the
# convolution 3 -> 64, 3x3, padding 1 on a batch of 3 x 224 x 224 images, forward and
# forward + backward, in fp32 and fp16 (iterations per second), with the ratios and the
# project's goals. It builds nothing: build cgrad first (cmake -S . -B build && cmake --build build -j2).
# Figures, not pass/fail: it exits 0 unless a program fails or an option is wrong.
#
# Each round runs, one after the other (never at the same time):
#   cgrad     BUILD/gpu_benchmark --device DEV --no-cpu --json --n N --reps R --iters I --batch B
#                                 --dtypes fp32,tf32,fp16,bf16 --conv-dtypes fp32,fp16
#   PyTorch   PYTHON TORCH_WORKLOADS matmul --device DEV --n N --reps R --dtypes fp32,tf32,fp16,bf16
#             PYTHON TORCH_WORKLOADS conv --device DEV --iters I --batch B --dtypes fp32,fp16
# Both print one JSON object per measurement. With --rounds K > 1 each figure is the best of
# its K rounds (GPU clocks and neighbours vary from one minute to the next).
#
# What is compared. Matrix product: torch.mm on two N x N tensors of the format (tf32: fp32
# tensors with allow_tf32) against cublasGemmEx with the same inputs, output and compute types;
# both time R products after a warm-up. Convolution: nn.Conv2d(3, 64, 3, padding=1) in NCHW
# (cudnn.benchmark on, TF32 off) against cgrad's tuned cuDNN layer: NCHW for fp32, NHWC with the
# channels padded 3 -> 8 for fp16 (bench.h); the training iteration is, on both sides, forward,
# loss = mean(y), backward to the weights and bias (PyTorch's input needs no gradient). cgrad's
# own conv2d kernels (what the cnn example trains with) are shown too, against the same PyTorch
# figure. The goals: each product within 3 % of PyTorch or faster (ratio >= 0.97), each
# convolution at least as fast (ratio >= 1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR="$ROOT/build"
DEVICE=cuda
N=10000
REPS=10
ITERS=100
BATCH=128
ROUNDS=1
DTYPES=fp32,tf32,fp16,bf16
CONV_DTYPES=fp32,fp16
PYTHON=${PYTHON:-/usr/bin/python3}
TORCH_WORKLOADS=${TORCH_WORKLOADS:-$ROOT/bench/torch_workloads.py}
KEEP_DIR=""
USE_TORCH=yes

usage() {
    cat <<EOF
usage: bench/gpu_benchmark.sh [options]
Run cgrad's gpu_benchmark and PyTorch's matmul and conv workloads on the same GPU, one after the
other, and print TFLOPS and iterations/s side by side with cgrad / PyTorch and the goals.

  --build-dir DIR         where gpu_benchmark was built (default: ROOT/build)
  --device DEV            cuda (default), cuda:N (through CUDA_VISIBLE_DEVICES) or cpu (fp32 only:
                          to try the script on a machine without a GPU, with small sizes)
  --n N                   matrix size (default: 10000)
  --reps N                products timed per format, after a warm-up (default: 10)
  --iters N               convolution iterations timed (default: 100)
  --batch N               convolution batch (default: 128)
  --rounds N              run both N times, alternating, and keep each figure's best (default: 1)
  --torch-workloads PATH  the PyTorch script (default: \$TORCH_WORKLOADS, else
                          ROOT/bench/torch_workloads.py)
  --python PATH           interpreter with torch and numpy (default: \$PYTHON, else /usr/bin/python3)
  --no-torch              run cgrad only
  --keep DIR              keep every program's JSON lines in DIR
  --help                  this text

ROOT is the repository holding this script: $ROOT
EOF
}

die() {
    echo "gpu_benchmark.sh: $*" >&2
    exit 1
}

whole() { case "$2" in '' | *[!0-9]*) die "$1: '$2' is not a whole number" ;; esac; [ "$2" -ge 1 ] || die "$1 must be at least 1"; }

while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) BUILD_DIR=${2:?--build-dir needs a value}; shift 2 ;;
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --n) N=${2:?--n needs a value}; shift 2 ;;
    --reps) REPS=${2:?--reps needs a value}; shift 2 ;;
    --iters) ITERS=${2:?--iters needs a value}; shift 2 ;;
    --batch) BATCH=${2:?--batch needs a value}; shift 2 ;;
    --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
    --torch-workloads) TORCH_WORKLOADS=${2:?--torch-workloads needs a value}; shift 2 ;;
    --python) PYTHON=${2:?--python needs a value}; shift 2 ;;
    --no-torch) USE_TORCH=no; shift ;;
    --keep) KEEP_DIR=${2:?--keep needs a value}; shift 2 ;;
    --help | -h) usage; exit 0 ;;
    *) echo "gpu_benchmark.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

whole --n "$N"
whole --reps "$REPS"
whole --iters "$ITERS"
whole --batch "$BATCH"
whole --rounds "$ROUNDS"
case "$DEVICE" in
cuda) ;;
cuda:[0-9]*)
    # Both programs are shown the one GPU through CUDA_VISIBLE_DEVICES and run on "cuda".
    export CUDA_VISIBLE_DEVICES=${DEVICE#cuda:}
    DEVICE=cuda ;;
cpu) DTYPES=fp32 CONV_DTYPES=fp32 ;;
*) die "--device: '$DEVICE' is not cuda, cuda:N or cpu" ;;
esac
BENCH="$BUILD_DIR/gpu_benchmark"
[ -x "$BENCH" ] || die "no executable $BENCH (build first: cmake -S . -B build && cmake --build build -j2, or give --build-dir)"
if [ "$USE_TORCH" = yes ]; then
    [ -f "$TORCH_WORKLOADS" ] || die "no PyTorch script $TORCH_WORKLOADS (set TORCH_WORKLOADS, give --torch-workloads, or --no-torch)"
    "$PYTHON" -c "import torch, numpy" 2>/dev/null ||
        die "$PYTHON cannot import torch and numpy (give --python or --no-torch)"
fi

if [ -n "$KEEP_DIR" ]; then
    mkdir -p "$KEEP_DIR"
    WORK=$(cd "$KEEP_DIR" && pwd)
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi
: >"$WORK/cgrad.jsonl"
: >"$WORK/torch.jsonl"

# cgrad on the CPU side needs no --no-cpu: on --device cpu it IS the CPU side.
CG_ARGS=(--device "$DEVICE" --json --n "$N" --reps "$REPS" --iters "$ITERS" --batch "$BATCH"
         --dtypes "$DTYPES" --conv-dtypes "$CONV_DTYPES")
[ "$DEVICE" = cpu ] && CG_ARGS+=(--cpu-iters "$ITERS") || CG_ARGS+=(--no-cpu)

for ((round = 1; round <= ROUNDS; round++)); do
    echo "round $round of $ROUNDS: cgrad..." >&2
    "$BENCH" "${CG_ARGS[@]}" >>"$WORK/cgrad.jsonl" 2>"$WORK/cgrad.err" ||
        { cat "$WORK/cgrad.err" >&2; die "cgrad failed: $BENCH ${CG_ARGS[*]}"; }
    if [ "$USE_TORCH" = yes ]; then
        echo "round $round of $ROUNDS: PyTorch..." >&2
        for workload in "matmul --n $N --reps $REPS --dtypes $DTYPES" "conv --iters $ITERS --batch $BATCH --dtypes $CONV_DTYPES"; do
            # shellcheck disable=SC2086 # the workload's arguments are words
            "$PYTHON" "$TORCH_WORKLOADS" $workload --device "$DEVICE" 2>"$WORK/torch.err" | grep '^{' >>"$WORK/torch.jsonl" ||
                { cat "$WORK/torch.err" >&2; die "PyTorch failed: $TORCH_WORKLOADS $workload --device $DEVICE"; }
        done
    fi
done
grep -q '"workload":"gpu_skipped"' "$WORK/cgrad.jsonl" && [ "$DEVICE" != cpu ] &&
    die "cgrad found no GPU: $(grep -o '"reason":"[^"]*"' "$WORK/cgrad.jsonl" | head -n 1)"

if COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT with uncommitted changes"
else
    COMMIT="no git history"
fi
echo
echo "gpu_benchmark, $DEVICE; $(date -u '+%Y-%m-%d %H:%M UTC'); cgrad at $COMMIT; best of $ROUNDS round(s)"
"$PYTHON" - "$WORK/cgrad.jsonl" "$WORK/torch.jsonl" "$N" "$BATCH" "$ITERS" "$DEVICE" <<'EOF'
import json, sys

cg_path, pt_path, n, batch, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
on_cpu = sys.argv[6] == "cpu"

def lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.startswith("{")]

cg, pt = lines(cg_path), lines(pt_path)

def best(rows, value, **match):
    """The largest `value` over the rows whose fields equal `match` (one per round), or None."""
    vals = [r[value] for r in rows if all(r.get(k) == v for k, v in match.items()) and r.get(value) is not None]
    return max(vals) if vals else None

gpu = next((r.get("gpu") for r in cg if r.get("gpu")), None)
torch_version = next((r.get("torch") for r in pt if r.get("torch")), None)
print(f"GPU: {gpu or 'none (CPU)'}; PyTorch: {torch_version or 'not run'}")
misses, checked = [], 0

def ratio_text(a, b):
    return f"{a / b:.3f}x" if a and b else "n/a"

print(f"\nTest 1: matrix product {n} x {n}, TFLOPS (cgrad / PyTorch: goal >= 0.97x)")
print(f"  {'dtype':6} {'cgrad':>9} {'PyTorch':>9} {'cgrad/PT':>9} {'of peak':>8}  goal")
for dt in ("fp32", "tf32", "fp16", "bf16"):
    c = best(cg, "tflops", workload="matmul", dtype=dt)
    p = best(pt, "tflops", workload="matmul", dtype=dt)
    if c is None and p is None:
        continue
    skip = next((r["skipped"] for r in cg if r.get("workload") == "matmul" and r.get("dtype") == dt and "skipped" in r), None)
    frac = best(cg, "fraction_of_peak", workload="matmul", dtype=dt)
    goal = ""
    if c and p:
        checked += 1
        goal = "met" if c / p >= 0.97 else "NOT MET"
        if goal != "met":
            misses.append(f"matmul {dt}")
    cs = f"{c:9.2f}" if c else f"{'skipped':>9}"
    ps = f"{p:9.2f}" if p else f"{'-':>9}"
    fs = f"{100 * frac:7.0f}%" if frac else f"{'n/a':>8}"
    print(f"  {dt:6} {cs} {ps} {ratio_text(c, p):>9} {fs}  {goal}" + (f"  ({skip})" if skip else ""))

print(f"\nTest 2: conv2d 3 -> 64, 3x3, padding 1, batch {batch} of 3 x 224 x 224, {iters} iterations, it/s "
      "(cgrad / PyTorch: goal >= 1x)")
print(f"  {'dtype':6} {'mode':8} {'cgrad method':12} {'cgrad':>9} {'PyTorch':>9} {'cgrad/PT':>9}  goal")
abouts = {}
for dt in ("fp32", "fp16"):
    for mode in ("forward", "train"):
        p = best(pt, "it_per_s", workload="conv", dtype=dt, mode=mode)
        for method in ("cudnn-tuned", "kernels"):
            c = best(cg, "it_per_s", workload="conv", dtype=dt, method=method, mode=mode)
            if c is None:
                continue
            about = next((r["about"] for r in cg if r.get("workload") == "conv" and r.get("dtype") == dt
                          and r.get("method") == method and "about" in r), "")
            abouts[(dt, method)] = about
            goal = ""
            if method == "cudnn-tuned" or dt == "fp32" and not any(
                    r.get("method") == "cudnn-tuned" for r in cg if r.get("workload") == "conv"):
                if p:
                    checked += 1
                    goal = "met" if c / p >= 1.0 else "NOT MET"
                    if goal != "met":
                        misses.append(f"conv {dt} {mode}")
            ps = f"{p:9.2f}" if p else f"{'-':>9}"
            print(f"  {dt:6} {mode:8} {method:12} {c:9.2f} {ps} {ratio_text(c, p):>9}  {goal}")
for r in cg:
    if r.get("workload") == "conv" and "skipped" in r:
        print(f"  {r['dtype']:6} {'':8} {r['method']:12} skipped: {r['skipped']}")
for (dt, method), about in abouts.items():
    error = best(cg, "max_error", workload="conv", dtype=dt, method=method, mode="check")
    check = f"; check error {error:.1e}" if error is not None else ""
    print(f"  {dt} {method}: {about}{check}")

mem = [r for r in cg if r.get("workload") == "memory" and r.get("phase") != "host"]
if mem:
    print("\nTest 3: memory (cgrad, GiB): total, free, allocated, reserved, peak")
    seen = set()
    for r in mem:
        if r["phase"] in seen:
            continue
        seen.add(r["phase"])
        g = lambda k: r.get(k, 0) / 2**30
        print(f"  {r['phase']:48} {g('total_bytes'):7.2f} {g('free_bytes'):7.2f} {g('allocated_bytes'):9.2f} "
              f"{g('reserved_bytes'):8.2f} {g('peak_bytes'):7.2f}")

where = " (they are set for a GPU: on the CPU these are figures only)" if on_cpu else ""
if checked:
    print(f"\nGoals{where}: {checked - len(misses)} of {checked} met"
          + (f"; not met: {', '.join(misses)}" if misses else ""))
else:
    print(f"\nGoals{where}: nothing to compare (no PyTorch figures)")
EOF

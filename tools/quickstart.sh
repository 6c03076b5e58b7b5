#!/usr/bin/env bash
# quickstart.sh: the main job of the README. Installs what is missing, builds, trains the course's
# SimpleNN on the CPU and, when a GPU is usable, on the GPU too, and plots their loss and
# accuracy curves into runs/simple_nn.png (CSV logs beside it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install_deps.sh"
"$root/tools/build.sh"
mkdir -p "$root/runs"
logs=("$root/runs/simple_nn_cpu.csv")
echo "== simple_nn on the CPU"
"$root/build/simple_nn" --device cpu --log "$root/runs/simple_nn_cpu.csv"
if "$root/build/device_info" | grep -q "is_available() -> True"; then
    echo "== simple_nn on the GPU"
    "$root/build/simple_nn" --device cuda --log "$root/runs/simple_nn_cuda.csv"
    logs+=("$root/runs/simple_nn_cuda.csv")
else
    echo "== no usable GPU: $("$root/build/device_info" | grep '^no GPU' || echo 'see build/device_info')"
fi
/usr/bin/python3 "$root/tools/plot_curves.py" "${logs[@]}" -o "$root/runs/simple_nn.png" --title "SimpleNN, 100 epochs"
echo "== curves: runs/simple_nn.png"

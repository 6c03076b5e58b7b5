#!/usr/bin/env bash
# build.sh: configure and build cgrad in build/ (Release; the CUDA backend too when nvcc is
# found). Extra arguments go to CMake's configure step, e.g. -DCMAKE_CUDA_ARCHITECTURES=90.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$root/build" -j"$(nproc)"

#!/usr/bin/env bash
# install_deps.sh: install, with apt-get, the Debian packages cgrad needs and that are missing:
# a C compiler, CMake, OpenBLAS (CBLAS, the OpenMP build), zlib, stb_image, cJSON, matplotlib for the
# plots, Fashion-MNIST (Debian's dataset-fashion-mnist: the CNN examples and the tests on real data),
# Open MPI (distributed training and its tests: mpirun -np N cnn --distributed) and python3-venv
# (tools/install_lint.sh puts the container and manifest linters in a virtual environment).
# Uses sudo when not run as root. It installs no CUDA toolkit: with one present (nvcc on PATH)
# the CUDA backend is built too, without one the CPU build is complete on its own.
set -euo pipefail

packages=(build-essential cmake pkg-config libopenblas-openmp-dev zlib1g-dev libstb-dev libcjson-dev python3-matplotlib
          dataset-fashion-mnist libopenmpi-dev openmpi-bin python3-venv)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install_deps: everything needed is installed"
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install_deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
fi
echo "install_deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# run_tests.sh: the README's test command. Installs what is missing, builds, and runs every
# test with ctest. GPU tests report themselves skipped on a machine without a GPU.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/install_deps.sh"
"$root/tools/build.sh"
cd "$root/build"
ctest --output-on-failure

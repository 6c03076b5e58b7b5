#!/usr/bin/env bash
# run_tests.sh: the README's test command. Installs what is missing, builds, and runs every
# test with ctest. GPU tests report themselves skipped on a machine without a GPU.
#
# --sanitize: builds instead in build-sanitize/ with AddressSanitizer and UndefinedBehaviorSanitizer
# (CMake -DCGRAD_SANITIZE=ON, the CPU backend only) and runs every test there: any sanitizer report
# fails the test that caused it. Slower (see README.md, "Building by hand").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sanitize=0
for arg in "$@"; do
    case "$arg" in
        --sanitize) sanitize=1 ;;
        *) echo "run_tests.sh: unknown argument '$arg' (only --sanitize)" >&2; exit 2 ;;
    esac
done
"$root/tools/install_deps.sh"
if [ $sanitize -eq 1 ]; then
    build="$root/build-sanitize"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCGRAD_SANITIZE=ON -DCGRAD_CUDA=OFF
    cmake --build "$build" -j"$(nproc)"
    cd "$build"
    # halt_on_error: the first report ends the test; detect_leaks: leaks are reports too.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=0}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tools/lsan.supp:print_suppressions=0}
    ctest --output-on-failure
else
    "$root/tools/build.sh"
    cd "$root/build"
    ctest --output-on-failure
fi

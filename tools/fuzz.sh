#!/usr/bin/env bash
# fuzz.sh: fuzzes cgrad's parsers with libFuzzer: builds the targets of tests/fuzz/ with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer in build-fuzz/ (CMake -DCGRAD_FUZZ=ON), then runs
# each for SECONDS. New interesting inputs go to build-fuzz/corpus/TARGET/ (not committed); every
# crash, leak or timeout input is written into tests/fuzz/corpus/TARGET/ as crash-*, leak-* or
# timeout-*, where the ctest fuzz_corpus_TARGET replays it from then on: fix the parser, keep the file.
#
# usage: tools/fuzz.sh [SECONDS] [TARGET...]   (default: 60 seconds each, every target)
# targets: idx cifar image tinyimagenet safetensors
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(idx cifar image tinyimagenet safetensors)
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2;; esac
command -v clang >/dev/null || { echo "fuzz.sh: clang not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

build="$root/build-fuzz"
CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCGRAD_FUZZ=ON -DCGRAD_CUDA=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null

status=0
for t in "${targets[@]}"; do
    work="$build/corpus/$t"
    mkdir -p "$work"
    echo "== fuzz_$t: $seconds s (seeds and regressions: tests/fuzz/corpus/$t)"
    # -rss_limit_mb / -malloc_limit_mb: an input that makes a parser ask for more is a finding too.
    if ! "$build/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
         -print_final_stats=1 -artifact_prefix="$root/tests/fuzz/corpus/$t/" \
         "$work" "$root/tests/fuzz/corpus/$t" 2>"$build/fuzz_$t.log"; then
        status=1
        echo "fuzz_$t: FOUND A PROBLEM; the input is in tests/fuzz/corpus/$t/ (log: $build/fuzz_$t.log)"
        grep -m 3 -E "ERROR|runtime error|SUMMARY" "$build/fuzz_$t.log" || true
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/fuzz_$t.log" | sed 's/^/   /'
done
exit $status

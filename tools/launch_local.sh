#!/usr/bin/env bash
# launch_local.sh: start N processes of a program on this machine for a distributed run without MPI
# (GPUs only: the ranks meet through NCCL, rank 0 writing NCCL's id to a file the others read, as
# llm.c does). Each gets CGRAD_DIST_RANK (0..N-1), CGRAD_DIST_WORLD (N) and CGRAD_DIST_ID_FILE (in a
# fresh temporary folder, removed at the end); with --distributed --device cuda, rank r takes GPU r.
# As mpirun does, when one process fails the others are ended (SIGTERM), and the exit status is the
# first failure's. Several machines, or CPUs, need MPI: mpirun -np N PROGRAM --distributed ...
#
# Usage: tools/launch_local.sh N PROGRAM [ARGS...]
#   e.g. tools/launch_local.sh 2 build/cnn --distributed --device cuda --epochs 5
set -uo pipefail
set -m # each rank in a process group of its own, so that ending a rank ends what it started too
if [ $# -lt 2 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: tools/launch_local.sh N PROGRAM [ARGS...]" >&2
    exit 2
fi
n=$1
shift
dir=$(mktemp -d)
pids=()
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' INT TERM
for ((rank = 0; rank < n; rank++)); do
    CGRAD_DIST_RANK=$rank CGRAD_DIST_WORLD=$n CGRAD_DIST_ID_FILE="$dir/nccl-id" "$@" &
    pids+=("$!")
done
# Each rank's end, looked for every 0.1 s (`wait -n` could miss a rank that ended while the later
# ones were being started, under job control, and then waited for the others: a test saw 60 s).
status=0
running=("${pids[@]}")
while [ ${#running[@]} -gt 0 ]; do
    still=()
    for pid in "${running[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then still+=("$pid"); continue; fi
        wait "$pid"
        code=$?
        if [ "$code" != 0 ] && [ "$status" = 0 ]; then
            status=$code
            echo "launch_local.sh: a rank exited with status $code; ending the others" >&2
            for other in "${pids[@]}"; do kill -TERM -- "-$other" 2>/dev/null; done
        fi
    done
    running=("${still[@]+"${still[@]}"}")
    [ ${#running[@]} -gt 0 ] && sleep 0.1
done
exit "$status"

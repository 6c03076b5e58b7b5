#!/usr/bin/env bash
# unpack_datasets.sh: the receiving side of tools/pack_datasets.sh, run on the GPU machine. Each
# call of the device tool carries one packed file (and SHA256SUMS); `receive` checks it against
# its sum and keeps it in a staging folder that outlives the call while the machine stays warm;
# `unpack` then puts the TinyImageNet parts back together (checking the whole archive's sum),
# extracts it, and turns the CIFAR-10 JPEG archive into the binary files (tools/cifar_jpeg_to_binary.py)
# and airbench's train.pt / test.pt (tools/cifar_to_airbench.py). It downloads nothing.
#
# Usage: tools/unpack_datasets.sh [--stage DIR] receive SHA256SUMS FILE...
#        tools/unpack_datasets.sh [--stage DIR] unpack DEST
#   --stage DIR   where received files wait (default /tmp/cgrad-stage)
# unpack writes, for what was received:
#   DEST/cifar10/            data_batch_1..5.bin, test_batch.bin, batches.meta.txt, train.pt, test.pt
#   DEST/tiny-imagenet-200/  wnids.txt, words.txt, train/, val/
# PYTHON (default python3) runs the two converters; it needs Pillow, and torch for the .pt files
# (without torch the .pt files are left out, with a line saying so).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stage=/tmp/cgrad-stage
python=${PYTHON:-python3}

usage() {
    sed -n '9,11p' "$0" | sed 's/^# //'
    exit "${1:-0}"
}
fail() {
    echo "unpack_datasets: $*" >&2
    exit 1
}

[ "${1:-}" = --stage ] && { stage="${2:?--stage needs a folder}"; shift 2; }
cmd="${1:-}"
[ -n "$cmd" ] || usage 2
shift

case "$cmd" in
receive)
    sums="${1:?receive needs SHA256SUMS and the files}"
    shift
    [ $# -ge 1 ] || fail "receive: no file given after $sums"
    mkdir -p "$stage"
    cp "$sums" "$stage/SHA256SUMS"
    for f in "$@"; do
        name=$(basename "$f")
        want=$(awk -v n="$name" '$2 == n {print $1}' "$sums")
        [ -n "$want" ] || fail "$f: not listed in $sums"
        got=$(sha256sum "$f" | cut -d' ' -f1)
        [ "$got" = "$want" ] || fail "$f: sha256 $got, expected $want (damaged in transit?)"
        cp "$f" "$stage/$name"
        echo "received $name ($(stat -c %s "$f") bytes, sha256 OK) into $stage"
    done
    ;;
unpack)
    dest="${1:?unpack needs DEST}"
    [ -f "$stage/SHA256SUMS" ] || fail "$stage: nothing received (no SHA256SUMS)"
    mkdir -p "$dest"
    did=0
    if [ -f "$stage/cifar10-jpeg.tar.gz" ]; then
        "$python" "$here/cifar_jpeg_to_binary.py" --no-verify "$stage/cifar10-jpeg.tar.gz" "$dest/cifar10"
        if "$python" -c 'import torch' 2>/dev/null; then
            "$python" "$here/cifar_to_airbench.py" "$dest/cifar10"
        else
            echo "unpack_datasets: $python has no torch: train.pt and test.pt not written"
        fi
        did=1
    fi
    parts=$(awk '$2 ~ /^tiny-imagenet-200\.tar\.gz\.part-/ {print $2}' "$stage/SHA256SUMS" | sort)
    if [ -n "$parts" ]; then
        missing=""
        for p in $parts; do [ -f "$stage/$p" ] || missing="$missing $p"; done
        if [ -n "$missing" ]; then
            echo "unpack_datasets: TinyImageNet not unpacked: missing$missing in $stage (receive them first)" >&2
        else
            want=$(awk '$2 == "tiny-imagenet-200.tar.gz" {print $1}' "$stage/SHA256SUMS")
            got=$(cd "$stage" && cat $parts | sha256sum | cut -d' ' -f1)
            [ "$got" = "$want" ] || fail "the parts put together have sha256 $got, expected $want"
            (cd "$stage" && cat $parts) | tar -xzf - -C "$dest"
            echo "unpacked $dest/tiny-imagenet-200: $(find "$dest/tiny-imagenet-200/train" -name '*.JPEG' | wc -l) training and $(find "$dest/tiny-imagenet-200/val" -name '*.JPEG' | wc -l) validation images"
            did=1
        fi
    fi
    [ "$did" = 1 ] || fail "$stage: neither cifar10-jpeg.tar.gz nor the tiny-imagenet-200 parts"
    ;;
-h|--help) usage 0 ;;
*) echo "unpack_datasets: unknown command '$cmd' (receive or unpack)" >&2; usage 2 ;;
esac

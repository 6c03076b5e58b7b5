#!/usr/bin/env bash
# pack_datasets.sh: packs the public JPEG copies of CIFAR-10 and TinyImageNet-200 into archives
# small enough to travel to a GPU machine whose calls carry at most 64 MiB each: CIFAR-10 as one
# .tar.gz (about 20 MB), TinyImageNet-200 (train/, val/, wnids.txt, words.txt; not test/, which
# has no labels) as one .tar.gz cut into parts of --part-mib MiB (default 56: three parts of the
# 153 MB archive, leaving room for the repository that travels with each part), and SHA256SUMS.
# It converts nothing and sends nothing: tools/unpack_datasets.sh puts the parts back together
# on the other side and converts CIFAR-10 there (bench/README.md, "Real data on the GPU machine").
#
# Usage: tools/pack_datasets.sh [--part-mib N] [--cifar-jpeg DIR] [--tiny DIR] OUT
#   --cifar-jpeg DIR   the CIFAR-10 JPEG tree, DIR/train/CLASS/NNNN.jpg and DIR/test/CLASS/NNNN.jpg
#   --tiny DIR         the extracted tiny-imagenet-200/ folder
# Writes OUT/cifar10-jpeg.tar.gz, OUT/tiny-imagenet-200.tar.gz.part-00 .. -NN and OUT/SHA256SUMS
# (one line per file, and one for the whole tiny-imagenet-200.tar.gz). The archives are made
# deterministically (names sorted, fixed dates and owners, gzip -n), so the same folders give the
# same bytes and the same sums on any machine with GNU tar and gzip.
set -euo pipefail

usage() {
    sed -n '10,12p' "$0" | sed 's/^# //'
    exit "${1:-0}"
}

part_mib=56
cifar=""
tiny=""
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --part-mib) part_mib="${2:?--part-mib needs a value}"; shift 2 ;;
        --cifar-jpeg) cifar="${2:?--cifar-jpeg needs a folder}"; shift 2 ;;
        --tiny) tiny="${2:?--tiny needs a folder}"; shift 2 ;;
        -h|--help) usage 0 ;;
        -*) echo "pack_datasets: unknown option $1" >&2; usage 2 ;;
        *) [ -z "$out" ] || { echo "pack_datasets: unexpected argument $1" >&2; exit 2; }; out="$1"; shift ;;
    esac
done
[ -n "$out" ] || { echo "pack_datasets: missing OUT" >&2; usage 2; }
[ -n "$cifar" ] || [ -n "$tiny" ] || { echo "pack_datasets: nothing to pack: give --cifar-jpeg DIR and/or --tiny DIR" >&2; exit 2; }
case "$part_mib" in ''|*[!0-9]*) echo "pack_datasets: --part-mib: '$part_mib' is not a whole number of MiB" >&2; exit 2 ;; esac
[ "$part_mib" -ge 1 ] && [ "$part_mib" -le 63 ] || { echo "pack_datasets: --part-mib: $part_mib is not in 1..63" >&2; exit 2; }
mkdir -p "$out"

# tar with everything that varies between machines fixed; macOS litter and cgrad's caches left out.
det_tar() {
    tar --sort=name --mtime='2000-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
        --exclude='.DS_Store' --exclude='.cgrad-cache*' -cf - "$@"
}

sums=()
if [ -n "$cifar" ]; then
    for split in train test; do
        [ -d "$cifar/$split" ] || { echo "pack_datasets: $cifar/$split: missing: expected the CIFAR-10 JPEG tree" >&2; exit 2; }
    done
    parent=$(cd "$cifar/.." && pwd)
    name=$(basename "$cifar")
    # The archive holds cifar10-jpeg/train/... whatever the folder is called here.
    det_tar -C "$parent" --transform "s|^$name|cifar10-jpeg|" "$name/train" "$name/test" | gzip -9 -n > "$out/cifar10-jpeg.tar.gz"
    sums+=(cifar10-jpeg.tar.gz)
    echo "wrote $out/cifar10-jpeg.tar.gz: $(stat -c %s "$out/cifar10-jpeg.tar.gz") bytes"
fi
if [ -n "$tiny" ]; then
    for f in wnids.txt train val/val_annotations.txt val/images; do
        [ -e "$tiny/$f" ] || { echo "pack_datasets: $tiny/$f: missing: expected the extracted tiny-imagenet-200/" >&2; exit 2; }
    done
    parent=$(cd "$tiny/.." && pwd)
    name=$(basename "$tiny")
    members=("$name/wnids.txt" "$name/train" "$name/val")
    [ -f "$tiny/words.txt" ] && members+=("$name/words.txt")
    rm -f "$out"/tiny-imagenet-200.tar.gz.part-*
    det_tar -C "$parent" --transform "s|^$name|tiny-imagenet-200|" "${members[@]}" | gzip -9 -n > "$out/tiny-imagenet-200.tar.gz"
    split -b "${part_mib}M" -d -a 2 "$out/tiny-imagenet-200.tar.gz" "$out/tiny-imagenet-200.tar.gz.part-"
    echo "wrote $out/tiny-imagenet-200.tar.gz: $(stat -c %s "$out/tiny-imagenet-200.tar.gz") bytes, in parts of at most $part_mib MiB:"
    for p in "$out"/tiny-imagenet-200.tar.gz.part-*; do
        echo "  $p: $(stat -c %s "$p") bytes"
        sums+=("$(basename "$p")")
    done
    sums+=(tiny-imagenet-200.tar.gz)
fi
# Keep the lines of the data set not packed this time, replace the others.
keep='^$'
[ -n "$cifar" ] && keep="$keep|  cifar10-jpeg"
[ -n "$tiny" ] && keep="$keep|  tiny-imagenet-200"
(cd "$out" && { [ -f SHA256SUMS ] && grep -Ev "$keep" SHA256SUMS || true; sha256sum "${sums[@]}"; } | sort -k2 > SHA256SUMS.new &&
    mv SHA256SUMS.new SHA256SUMS)
# The whole tiny archive is only needed for its sum; the parts are what travels.
[ -z "$tiny" ] || rm -f "$out/tiny-imagenet-200.tar.gz"
echo "wrote $out/SHA256SUMS:"
sed 's/^/  /' "$out/SHA256SUMS"

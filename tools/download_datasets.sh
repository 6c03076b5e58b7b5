#!/usr/bin/env bash
# download_datasets.sh: fetch MNIST, CIFAR-10 / CIFAR-100 (binary versions) and TinyImageNet-200
# from their official addresses into DIR, check each archive's MD5, and extract it; Fashion-MNIST
# comes from Debian's dataset-fashion-mnist package instead. It downloads nothing else, and never
# deletes a file whose checksum matches. --dry-run prints every step and touches nothing.
#
# Usage: tools/download_datasets.sh [--dry-run] DIR [mnist] [cifar10] [cifar100] [tinyimagenet]
#                                                   [fashion-mnist] [all]     (default: all)
# Result (what the cnn example's --data takes):
#   DIR/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz    (read as they are, gzip included)
#   DIR/cifar-10-batches-bin/      data_batch_1..5.bin, test_batch.bin, batches.meta.txt
#   DIR/cifar-100-binary/          train.bin, test.bin, fine_label_names.txt, coarse_label_names.txt
#   DIR/tiny-imagenet-200/         wnids.txt, words.txt, train/, val/, test/
#   /usr/share/datasets/fashion-mnist/   (apt-get install dataset-fashion-mnist)
# Sources: MNIST, Yann LeCun's page (http://yann.lecun.com/exdb/mnist/), through the mirror list
# torchvision uses (its MD5s); CIFAR, Alex Krizhevsky's page (https://www.cs.toronto.edu/~kriz/cifar.html,
# which lists the MD5s); TinyImageNet-200, Stanford CS231n (http://cs231n.stanford.edu/).
set -euo pipefail

usage() {
    sed -n '7,8p' "$0" | sed 's/^# //'
    exit "${1:-0}"
}

dry_run=0
dir=""
wanted=()
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=1 ;;
        -h|--help) usage 0 ;;
        -*) echo "download_datasets: unknown option $arg" >&2; usage 2 ;;
        *)
            if [ -z "$dir" ]; then dir="$arg"; else wanted+=("$arg"); fi ;;
    esac
done
[ -n "$dir" ] || { echo "download_datasets: missing DIR" >&2; usage 2; }
[ ${#wanted[@]} -gt 0 ] || wanted=(all)
for w in "${wanted[@]}"; do
    case "$w" in
        mnist|cifar10|cifar100|tinyimagenet|fashion-mnist|all) ;;
        *) echo "download_datasets: unknown data set '$w' (mnist, cifar10, cifar100, tinyimagenet, fashion-mnist, all)" >&2
           exit 2 ;;
    esac
done

wants() {
    local w
    for w in "${wanted[@]}"; do
        if [ "$w" = "$1" ] || [ "$w" = all ]; then return 0; fi
    done
    return 1
}

# Run a command, or print it under --dry-run.
run() {
    if [ "$dry_run" = 1 ]; then
        printf 'would run:'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

fetch_tool() {
    if command -v curl >/dev/null; then echo curl
    elif command -v wget >/dev/null; then echo wget
    else echo "download_datasets: need curl or wget" >&2; exit 1
    fi
}

md5_of() { md5sum "$1" | cut -d' ' -f1; }

# fetch DEST MD5 URL...: DEST with the given MD5, from the first URL that gives it. A DEST already
# there with the right MD5 is kept; a download goes to DEST.part and is renamed once checked.
fetch() {
    local dest="$1" md5="$2"
    shift 2
    if [ "$dry_run" = 1 ]; then
        echo "would download $dest (md5 $md5) from: $*"
        return 0
    fi
    if [ -f "$dest" ] && [ "$(md5_of "$dest")" = "$md5" ]; then
        echo "download_datasets: $dest is already there (md5 ok)"
        return 0
    fi
    local tool url got
    tool=$(fetch_tool)
    for url in "$@"; do
        echo "download_datasets: $url"
        rm -f "$dest.part"
        if [ "$tool" = curl ]; then
            curl -fL --retry 3 --connect-timeout 30 -o "$dest.part" "$url" || { echo "  failed" >&2; continue; }
        else
            wget -t 3 -T 30 -O "$dest.part" "$url" || { echo "  failed" >&2; continue; }
        fi
        got=$(md5_of "$dest.part")
        if [ "$got" = "$md5" ]; then
            mv "$dest.part" "$dest"
            return 0
        fi
        echo "  md5 $got, expected $md5: discarded" >&2
        rm -f "$dest.part"
    done
    echo "download_datasets: could not get $dest with md5 $md5 from: $*" >&2
    exit 1
}

# check FILE...: every file must exist after extraction.
check() {
    local f
    for f in "$@"; do
        if [ "$dry_run" = 1 ]; then
            echo "would check that $f exists"
        elif [ ! -f "$f" ]; then
            echo "download_datasets: $f missing after extraction" >&2
            exit 1
        fi
    done
}

run mkdir -p "$dir/downloads"

if wants mnist; then
    mirrors=(https://ossci-datasets.s3.amazonaws.com/mnist/ http://yann.lecun.com/exdb/mnist/)
    run mkdir -p "$dir/mnist"
    while read -r name md5; do
        fetch "$dir/mnist/$name" "$md5" "${mirrors[@]/%/$name}"
    done <<'EOF'
train-images-idx3-ubyte.gz f68b3c2dcbeaaa9fbdd348bbdeb94873
train-labels-idx1-ubyte.gz d53e105ee54ea40749a09fcbcd1e9432
t10k-images-idx3-ubyte.gz 9fb629c4189551a2d022fa330f9573f3
t10k-labels-idx1-ubyte.gz ec29112dd5afa0611ce80d1b7f02629c
EOF
fi

if wants cifar10; then
    fetch "$dir/downloads/cifar-10-binary.tar.gz" c32a1d4ab5d03f1284b67883e8d87530 \
        https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
    run tar -xzf "$dir/downloads/cifar-10-binary.tar.gz" -C "$dir"
    check "$dir"/cifar-10-batches-bin/{data_batch_{1,2,3,4,5},test_batch}.bin "$dir/cifar-10-batches-bin/batches.meta.txt"
fi

if wants cifar100; then
    fetch "$dir/downloads/cifar-100-binary.tar.gz" 03b5dce01913d631647c71ecec9e9cb8 \
        https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz
    run tar -xzf "$dir/downloads/cifar-100-binary.tar.gz" -C "$dir"
    check "$dir"/cifar-100-binary/{train,test}.bin "$dir"/cifar-100-binary/{fine,coarse}_label_names.txt
fi

if wants tinyimagenet; then
    fetch "$dir/downloads/tiny-imagenet-200.zip" 90528d7ca1a48142e341f4ef8d21d0de \
        http://cs231n.stanford.edu/tiny-imagenet-200.zip
    if command -v unzip >/dev/null || [ "$dry_run" = 1 ]; then
        run unzip -q -o "$dir/downloads/tiny-imagenet-200.zip" -d "$dir"
    else
        run python3 -m zipfile -e "$dir/downloads/tiny-imagenet-200.zip" "$dir"
    fi
    check "$dir"/tiny-imagenet-200/{wnids.txt,words.txt,val/val_annotations.txt}
fi

if wants fashion-mnist; then
    if [ -d /usr/share/datasets/fashion-mnist ] && [ "$dry_run" = 0 ]; then
        echo "download_datasets: Fashion-MNIST is installed in /usr/share/datasets/fashion-mnist"
    else
        sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        run "${sudo[@]}" apt-get install -y dataset-fashion-mnist
        check /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
    fi
fi

if [ "$dry_run" = 1 ]; then
    echo "download_datasets: dry run, nothing was downloaded or written"
else
    echo "download_datasets: done; the archives stay in $dir/downloads (delete them to save space)"
fi

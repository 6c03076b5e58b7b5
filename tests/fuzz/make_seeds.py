#!/usr/bin/python3
"""make_seeds.py: writes the seed inputs of the fuzz targets into tests/fuzz/corpus/NAME/seed-*.

Each seed is a small valid (or nearly valid) file of the format, in the input layout of its target
(tests/fuzz/fuzz_NAME.c: parts cut by 2-byte little-endian lengths). The inputs that once crashed
or misled a parser are kept beside them as regression-* files; those are written here too, so that
the corpus can be rebuilt from this script. The fuzzer's own finds (crash-*) are added by hand.
Run: /usr/bin/python3 tests/fuzz/make_seeds.py (needs Pillow for the JPEG seeds).
"""
import gzip
import io
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def part(data):
    return struct.pack("<H", len(data)) + data


# ---- IDX: labels part, then the images file --------------------------------------------------------

def idx(ndim, sizes, payload):
    return bytes([0, 0, 8, ndim]) + b"".join(struct.pack(">I", s) for s in sizes) + payload


images = idx(3, [3, 4, 4], bytes(range(48)))
labels = idx(1, [3], bytes([1, 7, 9]))
put("idx", "seed-plain", part(labels) + images)
put("idx", "seed-gzip", part(gzip.compress(labels, mtime=0)) + gzip.compress(images, mtime=0))
put("idx", "seed-swapped", part(images) + labels)
put("idx", "seed-truncated", part(labels) + images[:30])

# ---- CIFAR: mode byte, class names part, then the records ------------------------------------------

names10 = b"".join(b"class%d\n" % i for i in range(10))
records10 = b"".join(bytes([i % 10]) + bytes([i] * 3072) for i in range(2))
put("cifar", "seed-cifar10", bytes([0]) + part(names10) + records10)
names100 = b"".join(b"fine%d\n" % i for i in range(100))
records100 = b"".join(bytes([i % 20, i % 100]) + bytes([i] * 3072) for i in range(2))
put("cifar", "seed-cifar100-fine", bytes([1]) + part(names100) + records100)
names20 = b"".join(b"coarse%d\r\n" % i for i in range(20))
put("cifar", "seed-cifar100-coarse", bytes([2]) + part(names20) + records100)
put("cifar", "seed-bad-label", bytes([0]) + part(names10) + bytes([10]) + bytes(3072))

# ---- images -----------------------------------------------------------------------------------------


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png(w, h, color_type, rows, empty_idat=False):
    sig = b"\x89PNG\r\n\x1a\n"
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0))
    body = png_chunk(b"IDAT", b"") if empty_idat else b""
    return sig + ihdr + body + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")


rgb_rows = b"".join(b"\x00" + b"".join(bytes([10 + x, 20 + y, 30]) for x in range(4)) for y in range(3))
put("image", "seed-rgb.png", png(4, 3, 2, rgb_rows))
grey_rows = b"".join(b"\x01" + bytes([y * 40 + x for x in range(5)]) for y in range(5))  # filter Sub
put("image", "seed-grey-sub.png", png(5, 5, 0, grey_rows))
put("image", "regression-empty-idat.png", png(4, 3, 2, rgb_rows, empty_idat=True))

try:
    from PIL import Image

    img = Image.new("RGB", (16, 8))
    img.putdata([(x * 16, y * 30, 128) for y in range(8) for x in range(16)])
    for name, kw in [("seed-baseline.jpg", {}), ("seed-progressive.jpg", {"progressive": True}),
                     ("seed-optimized.jpg", {"optimize": True})]:
        out = io.BytesIO()
        img.save(out, "JPEG", quality=90, **kw)
        put("image", name, out.getvalue())
    out = io.BytesIO()
    img.convert("L").save(out, "JPEG", quality=75, subsampling=0)
    put("image", "seed-grey.jpg", out.getvalue())
except ImportError:
    print("no Pillow: the JPEG seeds are not rewritten")


def segment(marker, body):
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg_without_dht(sof):
    """A 16 x 16 grey JPEG whose scans use Huffman tables it never defines (stb_image read them
    uninitialised and crashed, at an index the file chooses)."""
    out = b"\xFF\xD8" + segment(0xDB, bytes([0]) + bytes([1] * 64))
    out += segment(sof, bytes([8, 0, 16, 0, 16, 1, 1, 0x11, 0]))
    scan = bytes((0x12 + 0x35 * i) % 256 for i in range(200)).replace(b"\xFF", b"\x7F")
    out += segment(0xDA, bytes([1, 1, 0x23, 0, 0 if sof == 0xC2 else 63, 0])) + scan
    if sof == 0xC2:
        out += segment(0xDA, bytes([1, 1, 0x23, 1, 63, 0])) + scan
    return out + b"\xFF\xD9"


put("image", "regression-progressive-no-dht.jpg", jpeg_without_dht(0xC2))
put("image", "regression-baseline-no-dht.jpg", jpeg_without_dht(0xC0))

# ---- TinyImageNet: split byte, then wnids.txt, words.txt, val_annotations.txt parts ----------------

wnids = b"n0\nn1\n"
words = b"n0\tgoldfish, Carassius auratus\nn1\ttench\nn9\tother\n"
ann = b"val_0.png\tn1\t0\t0\t1\t1\n"
put("tinyimagenet", "seed-val", bytes([0]) + part(wnids) + part(words) + part(ann))
put("tinyimagenet", "seed-train", bytes([1]) + part(b"n0\n") + part(words) + part(b""))
put("tinyimagenet", "seed-crlf", bytes([0]) + part(b"n0\r\nn1\r\n") + part(b"") + part(b"val_0.png\tn0\r\n"))
put("tinyimagenet", "regression-escape-wnid", bytes([1]) + part(b"n\x1b[2J\n") + part(b"") + part(b""))

# ---- safetensors: the file ----------------------------------------------------------------------------


def safetensors(header, data):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


weights = struct.pack("<6f", *[0.5, -1, 2, 0.25, 3, -0.125]) + struct.pack("<3f", 1, 2, 3)
good = {"fc.weight": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 24]},
        "fc.bias": {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]}}
put("safetensors", "seed-good", safetensors(good, weights))
put("safetensors", "seed-metadata", safetensors({"__metadata__": {"model": "mlp", "epochs": "5"}, **good}, weights))
put("safetensors", "seed-extra", safetensors({**good, "x": {"dtype": "F16", "shape": [2], "data_offsets": [36, 40]}},
                                             weights + b"\0\0\0\0"))
nan = struct.pack("<6f", *[float("nan")] * 6) + struct.pack("<3f", 1, 2, 3)
put("safetensors", "regression-nan-weights", safetensors(good, nan))
put("safetensors", "regression-escape-name",
    safetensors({"\x1b]0;title\x07": {"dtype": "F\n32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4))
print("seeds written under", ROOT)

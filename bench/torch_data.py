#!/usr/bin/env python3
"""torch_data.py: the data of bench/torch_train.py, cgrad's cnn's PyTorch twin: the same files read
the same way (IDX, the CIFAR binary files, TinyImageNet-200 and image folders, from cgrad's
decoded cache when it matches the files), the same class-balanced --limit, and the batches with
the same augmentation (random crop, flips, cutout) on the run's device. A benchmark twin, not part
of cgrad; torch_train.py's docstring describes the flags that reach it.
"""
import gzip
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


# Per-channel mean and standard deviation of pixel / 255, the figures of cgrad's cnn (torchvision's).
DATASETS = {
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist", (0.2860,), (0.3530,), False),
    "mnist": ("data/mnist", (0.1307,), (0.3081,), False),
    "cifar10": ("data/cifar-10-batches-bin", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True),
    "cifar100": ("data/cifar-100-binary", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), True),
    "tinyimagenet": ("data/tiny-imagenet-200", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), True),
    "folder": (None, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), True),
}


class InputError(Exception):
    """Bad input (a file, a flag): one line naming it; exit status 2."""


def say(args, *parts):
    if not args.quiet:
        print(*parts, flush=True)


# ---- data: files --------------------------------------------------------------------------------

class Split:
    """images: uint8 (N, C, H, W) numpy; labels: int64 (N,); classes: names."""

    def __init__(self, images, labels, classes):
        self.images, self.labels, self.classes = images, labels, classes


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise InputError("%s: not an IDX file of unsigned bytes" % path)
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    if len(data) != 4 + 4 * nd + int(np.prod(dims)):
        raise InputError("%s: %d bytes, expected %d for dims %s" % (path, len(data), 4 + 4 * nd + int(np.prod(dims)), dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load_idx(d, train, fashion):
    prefix = "train" if train else "t10k"
    def find(kind):
        for name in ("%s-%s-ubyte.gz" % (prefix, kind), "%s-%s-ubyte" % (prefix, kind)):
            if os.path.isfile(os.path.join(d, name)):
                return os.path.join(d, name)
        raise InputError("%s: no %s-%s-ubyte(.gz)" % (d, prefix, kind))
    images = read_idx(find("images-idx3"))[:, None, :, :]
    labels = read_idx(find("labels-idx1")).astype(np.int64)
    names = (["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
             if fashion else [str(i) for i in range(10)])
    return Split(np.ascontiguousarray(images), labels, names)


def load_cifar(d, train, hundred):
    folder_name, first = ("cifar-100-binary", "train.bin") if hundred else ("cifar-10-batches-bin", "data_batch_1.bin")
    root = d if os.path.isfile(os.path.join(d, first)) or os.path.isfile(os.path.join(d, "test_batch.bin")) \
        or os.path.isfile(os.path.join(d, "test.bin")) else os.path.join(d, folder_name)
    if hundred:
        files, label_bytes, meta, label_at = ["train.bin" if train else "test.bin"], 2, "fine_label_names.txt", 1
    else:
        files = ["data_batch_%d.bin" % i for i in range(1, 6)] if train else ["test_batch.bin"]
        label_bytes, meta, label_at = 1, "batches.meta.txt", 0
    record = label_bytes + 3072
    raws = []
    for name in files:
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            raise InputError("%s: missing: expected the CIFAR binary version" % path)
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % record:
            raise InputError("%s: %d bytes is not a whole number of %d-byte records" % (path, raw.size, record))
        raws.append(raw.reshape(-1, record))
    raw = np.concatenate(raws)
    with open(os.path.join(root, meta)) as f:
        classes = [line.strip() for line in f if line.strip()]
    labels = raw[:, label_at].astype(np.int64)
    if labels.max() >= len(classes):
        raise InputError("%s: label %d, but %d class names" % (root, labels.max(), len(classes)))
    return Split(np.ascontiguousarray(raw[:, label_bytes:].reshape(-1, 3, 32, 32)), labels, classes)


# Image folders, listed as cgrad's datasets/image_folder.c lists them (the order decides the labels and
# the cache's fingerprint).

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def read_lines(path):
    """cg_read_lines: lines split on \\n (\\r\\n too), trailing spaces and tabs removed, empty ones dropped."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "surrogateescape")
    lines = [line.rstrip("\r").rstrip(" \t\r") for line in text.split("\n")]
    return [line for line in lines if line]


def walk(folder, recurse, label, entries):
    for name in os.listdir(folder):
        if name.startswith("."):
            continue
        path = folder + "/" if not folder.endswith("/") else folder
        path += name
        if os.path.isdir(path):
            if recurse:
                walk(path, True, label, entries)
        elif name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(path):
            entries.append((path, label))


def sort_entries(entries):
    """By (folder, file name) as bytes, cgrad's by_folder_then_name."""
    def key(e):
        p = e[0].encode("utf-8", "surrogateescape")
        cut = p.rfind(b"/") + 1
        return (p[:cut], p[cut:])
    entries.sort(key=key)


def join(a, b):
    return a + b if a.endswith("/") else a + "/" + b


def list_folder(root):
    classes = sorted((n for n in os.listdir(root) if not n.startswith(".") and os.path.isdir(join(root, n))),
                     key=lambda n: n.encode("utf-8", "surrogateescape"))
    if not classes:
        raise InputError("%s: no class folders" % root)
    entries = []
    for label, name in enumerate(classes):
        start = len(entries)
        walk(join(root, name), True, label, entries)
        part = entries[start:]
        sort_entries(part)
        entries[start:] = part
    return classes, entries


def list_tiny(root, train):
    wnids = read_lines(join(root, "wnids.txt"))
    index = {w: i for i, w in enumerate(wnids)}
    names = [None] * len(wnids)
    words = join(root, "words.txt")
    if os.path.isfile(words):
        with open(words, "rb") as f:
            for line in f.read().decode("utf-8", "surrogateescape").split("\n"):
                if "\t" not in line:
                    continue
                wnid, syn = line.split("\t", 1)
                i = index.get(wnid)
                if i is not None and names[i] is None:
                    cut = min([p for p in (syn.find(","), syn.find("\r")) if p >= 0] or [len(syn)])
                    names[i] = wnid + " " + syn[:cut]
    names = [n if n is not None else w for n, w in zip(names, wnids)]
    entries = []
    if train:
        for label, wnid in enumerate(wnids):
            start = len(entries)
            walk(join(join(join(root, "train"), wnid), "images"), False, label, entries)
            part = entries[start:]
            sort_entries(part)
            entries[start:] = part
    else:
        images = join(root, "val/images")
        for k, line in enumerate(read_lines(join(root, "val/val_annotations.txt"))):
            name, wnid = line.split("\t")[:2]
            if wnid not in index:
                raise InputError("%s: entry %d: class '%s' is not in wnids.txt" % (join(root, "val/val_annotations.txt"),
                                                                                k + 1, wnid))
            entries.append((join(images, name), index[wnid]))
    return names, entries


def fingerprint(entries, root, names):
    """cgrad's fingerprint of a file list: (count, total bytes, newest mtime ns, FNV-1a 64 hash)."""
    prime, mask = 0x100000001b3, (1 << 64) - 1
    h = 0xcbf29ce484222325
    root_len = len(root) + (0 if root.endswith("/") else 1)

    def fnv(h, data):
        for byte in data:
            h = ((h ^ byte) * prime) & mask
        return h

    for name in names:
        h = fnv(h, name.encode("utf-8", "surrogateescape") + b"\0")
    total, newest = 0, -(1 << 63)
    for path, label in entries:
        st = os.stat(path)
        h = fnv(h, path[root_len:].encode("utf-8", "surrogateescape") + b"\0")
        h = fnv(h, struct.pack("<IQQ", label & 0xffffffff, st.st_size, st.st_mtime_ns & mask))
        total += st.st_size
        newest = max(newest, st.st_mtime_ns)
    return len(entries), total, newest, h


def read_cgrad_cache(path, fp):
    """The pixels (N, 3, H, W) of cgrad's decoded cache when it exists and matches fp, else None."""
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:8] != b"CGRADIMG":
            return None
        version, channels, height, width = struct.unpack("<IIII", head[8:24])
        count, total, newest, h, pixel_bytes = struct.unpack("<QQqQQ", head[24:64])
        if version != 1 or channels != 3 or (count, total, newest, h) != fp or pixel_bytes != count * 3 * height * width:
            return None
        pixels = np.fromfile(f, dtype=np.uint8, count=pixel_bytes)
    if pixels.size != pixel_bytes:
        return None
    return pixels.reshape(count, 3, height, width)


def decode_one(path):
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy()


def decode_all(entries):
    paths = [p for p, _ in entries]
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise InputError("%s: cannot decode without Pillow, and cgrad's decoded cache is not there or stale "
                         "(run build/cnn on this data set first)" % paths[0])
    import multiprocessing
    workers = max(1, min(16, os.cpu_count() or 1))
    if workers > 1 and len(paths) > 2000:
        with multiprocessing.Pool(workers) as pool:
            images = pool.map(decode_one, paths, chunksize=256)
    else:
        images = [decode_one(p) for p in paths]
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise InputError("%s: images of several sizes %s: cgrad does not resize" % (os.path.dirname(paths[0]), shapes))
    return np.stack(images)


def load_images(args, root, names, entries, cache_name, split_name):
    t = time.perf_counter()
    if not entries:
        raise InputError("%s: no images" % root)
    fp = fingerprint(entries, root, names)
    pixels = read_cgrad_cache(join(root, cache_name), fp)
    how = "from cgrad's decoded cache %s" % join(root, cache_name)
    if pixels is None:
        pixels = decode_all(entries)
        how = "decoded with Pillow (no matching cgrad cache; cgrad's stb_image may differ by a few levels)"
    say(args, "%s split (%s): %d images %s in %.2f s" % (split_name, root, len(entries), how, time.perf_counter() - t))
    return Split(pixels, np.array([label for _, label in entries], dtype=np.int64), names)


def load_split(args, train):
    d = args.data or DATASETS[args.dataset][0]
    if d is None:
        raise InputError("--dataset folder needs --data DIR")
    if args.dataset in ("fashion-mnist", "mnist"):
        return load_idx(d, train, args.dataset == "fashion-mnist")
    if args.dataset in ("cifar10", "cifar100"):
        return load_cifar(d, train, args.dataset == "cifar100")
    if args.dataset == "tinyimagenet":
        names, entries = list_tiny(d, train)
        return load_images(args, d, names, entries, ".cgrad-cache-train.bin" if train else ".cgrad-cache-val.bin",
                           "train" if train else "val")
    split = "train" if train else ("val" if os.path.isdir(join(d, "val")) or not os.path.isdir(join(d, "test")) else "test")
    root = join(d, split)
    if not os.path.isdir(root):
        raise InputError("%s: missing (expected DIR/train and DIR/val or DIR/test)" % root)
    names, entries = list_folder(root)
    return load_images(args, root, names, entries, ".cgrad-cache.bin", split)


def keep_balanced(split, n):
    """cgrad's cg_dataset_keep_balanced: the classes take turns, each its next sample in order."""
    if n >= len(split.labels):
        return split
    queues = [list(np.flatnonzero(split.labels == c)) for c in range(len(split.classes))]
    heads, keep = [0] * len(queues), []
    while len(keep) < n:
        for c, q in enumerate(queues):
            if len(keep) < n and heads[c] < len(q):
                keep.append(q[heads[c]])
                heads[c] += 1
    keep = np.array(keep)
    return Split(split.images[keep], split.labels[keep], split.classes)


# ---- data: batches on the device ----------------------------------------------------------------

class Batches:
    """The split's pixels on the device as uint8; each batch is gathered, normalised and augmented there."""

    def __init__(self, split, device, mean, std, batch_size, shuffle, drop_last, generator):
        self.images = torch.from_numpy(split.images).to(device)
        self.labels = torch.from_numpy(split.labels).to(device)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.batch_size, self.shuffle, self.drop_last, self.generator = batch_size, shuffle, drop_last, generator
        self.device = device
        self.augment = None  # a function (float batch, generator) -> float batch, or None

    def __len__(self):
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def normalize(self, uint8_images):
        return (uint8_images.float() / 255.0 - self.mean) / self.std

    def __iter__(self):
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.normalize(self.images[idx])
            if self.augment is not None:
                x = self.augment(x)
            yield x, self.labels[idx]


def random_crop(x, padding, mode, generator, black=None):
    """Each image cropped back to its size out of a copy padded by `padding` (zeros or reflection).
    x is normalised; `black` (1, C, 1, 1), the normalised value of a 0 pixel, is what zero padding
    adds, as cgrad's gather kernel (and torchvision's RandomCrop before Normalize) pads with pixels
    of 0, not with the normalised 0 (the mean colour)."""
    if padding <= 0:
        return x
    b, c, h, w = x.shape
    if mode == "reflect":
        padded = F.pad(x, (padding,) * 4, mode="reflect")
    else:
        base = black if black is not None else torch.zeros(1, c, 1, 1, device=x.device)
        padded = F.pad(x - base, (padding,) * 4, mode="constant") + base
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # b, h, 1
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # b, 1, w
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_flip(x, generator):
    mask = (torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5).view(-1, 1, 1, 1)
    return torch.where(mask, x.flip(3), x)


def cutout(x, size, generator):
    """A size x size square set to 0 (the mean, after normalisation) at a random centre per image."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=generator, device=x.device).view(-1, 1, 1, 1)
    cx = torch.randint(0, w, (b,), generator=generator, device=x.device).view(-1, 1, 1, 1)
    ys = torch.arange(h, device=x.device).view(1, 1, -1, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, 1, -1)
    half = size // 2
    inside = (ys >= cy - half) & (ys < cy - half + size) & (xs >= cx - half) & (xs < cx - half + size)
    return x.masked_fill(inside, 0.0)

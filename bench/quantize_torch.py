#!/usr/bin/python3
"""quantize_torch.py: PyTorch's side of bench/quantize.sh. The same trained tutorial CNN (or MLP)
from a cgrad checkpoint, converted with PyTorch's own eager-mode static post-training quantisation
(torch.ao.quantization: per-channel int8 weights, HistogramObserver activations, Conv+ReLU and
Linear+ReLU fused, the onednn engine, else qnnpack) after calibrating on the same number of
training batches of 128; prints one JSON line per precision: test accuracy and inference
images/s at the given batch (best of --reps forwards after one warm-up), CPU only.
bench/torch_workloads.py has no quantisation workload, hence this script."""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.ao.quantization as tq


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = struct.unpack(">I", data[:4])[0] & 0xFF
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def read_safetensors(path):
    """The F32 tensors of a safetensors file (format: 8-byte header length, JSON header, data)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {e['dtype']}, expected F32")
        b, end = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw, np.float32, (end - b) // 4, 8 + n + b).reshape(e["shape"]).copy())
    return out, header.get("__metadata__", {})


class TutorialCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.c1, self.r1 = nn.Conv2d(1, 32, 3, padding=1), nn.ReLU()
        self.c2, self.r2 = nn.Conv2d(32, 64, 3, padding=1), nn.ReLU()
        self.f1, self.r3 = nn.Linear(64 * 7 * 7, 128), nn.ReLU()
        self.f2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(self.r1(self.c1(self.quant(x))), 2)
        x = F.max_pool2d(self.r2(self.c2(x)), 2)
        return self.dequant(self.f2(self.r3(self.f1(x.flatten(1)))))

    fuse = [["c1", "r1"], ["c2", "r2"], ["f1", "r3"]]


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.fc1, self.r1 = nn.Linear(784, 128), nn.ReLU()
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        return self.dequant(self.fc2(self.r1(self.fc1(self.quant(x).flatten(1)))))

    fuse = [["fc1", "r1"]]


def best_images_per_s(model, x, reps):
    best = 1e30
    with torch.no_grad():
        for r in range(reps + 1):
            t = time.perf_counter()
            model(x)
            s = time.perf_counter() - t
            if r > 0:
                best = min(best, s)
    return x.shape[0] / best


def accuracy(model, X, y):
    with torch.no_grad():
        return sum((model(X[i:i + 500]).argmax(1) == y[i:i + 500]).sum().item() for i in range(0, len(X), 500)) / len(X)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--load", required=True)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--calib-batches", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    weights, meta = read_safetensors(a.load)
    model = MLP() if meta.get("model") == "mlp" else TutorialCNN()
    model.load_state_dict(weights, strict=True)
    model.eval()
    norm = lambda X: torch.tensor((X.astype(np.float32) / 255.0 - 0.2860) / 0.3530).unsqueeze(1)
    Xtr = norm(read_idx(os.path.join(a.data, "train-images-idx3-ubyte.gz")))
    Xte = norm(read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte.gz")))
    yte = torch.tensor(read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    xb = Xte[:a.batch_size].contiguous()

    res = dict(framework="pytorch " + torch.__version__, model=meta.get("model", "tutorial"), threads=torch.get_num_threads(),
               batch=xb.shape[0])
    print(json.dumps(dict(res, precision="fp32", accuracy=accuracy(model, Xte, yte),
                          images_per_s=best_images_per_s(model, xb, a.reps))), flush=True)

    engines = torch.backends.quantized.supported_engines
    engine = "fbgemm" if "fbgemm" in engines else "onednn" if "onednn" in engines else "qnnpack"
    torch.backends.quantized.engine = engine
    q = tq.fuse_modules(model, model.fuse)
    q.qconfig = tq.get_default_qconfig(engine)
    tq.prepare(q, inplace=True)
    g = torch.Generator().manual_seed(1)
    perm = torch.randperm(Xtr.shape[0], generator=g)
    with torch.no_grad():
        for b in range(a.calib_batches):
            q(Xtr[perm[b * 128:(b + 1) * 128]])
    tq.convert(q, inplace=True)
    print(json.dumps(dict(res, precision="int8", engine=engine, accuracy=accuracy(q, Xte, yte),
                          images_per_s=best_images_per_s(q, xb, a.reps))), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""ddp_torch.py: the tutorial CNN trained with PyTorch's DistributedDataParallel, the reference that
bench/scaling.sh sets beside `mpirun -np K cnn --distributed`: the same model (conv3x3(1,32), ReLU,
max pool, conv3x3(32,64), ReLU, max pool, Linear(3136,128), ReLU, Linear(128,10)), Adam 1e-3, the
same per-rank batch, Fashion-MNIST normalised as cgrad does, the data set on the device once (as
cgrad's loader keeps it), each rank's share of every epoch from DistributedSampler. One JSON line
per epoch (rank 0): seconds, images/s over all ranks, train loss, test accuracy.

Run: torchrun --standalone --nproc_per_node K bench/ddp_torch.py [--device cuda|cpu] [--epochs E]
     [--batch B] [--limit N] [--data DIR]     (cpu uses the gloo backend, for a check without GPUs)
 or: mpirun -np K python3 bench/ddp_torch.py ...   (on one host, where torchrun does not work)
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class TutorialCNN(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.f1 = nn.Linear(64 * 7 * 7, 128)
        self.f2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.f2(F.relu(self.f1(x.flatten(1))))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=128, help="images per step on each rank")
    p.add_argument("--limit", type=int, default=0, help="train on the first N images only")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()

    cuda = a.device == "cuda"
    # Started by mpirun instead of torchrun (Debian's torchrun 1.13 fails under Python 3.11): the same
    # facts from Open MPI's variables, rank 0 on this host as the meeting point.
    if "RANK" not in os.environ and "OMPI_COMM_WORLD_RANK" in os.environ:
        os.environ.update(RANK=os.environ["OMPI_COMM_WORLD_RANK"], WORLD_SIZE=os.environ["OMPI_COMM_WORLD_SIZE"],
                          LOCAL_RANK=os.environ["OMPI_COMM_WORLD_LOCAL_RANK"])
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29511")
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", 0))
    dev = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts rank 0's)

    def load(split):
        x = read_idx(os.path.join(a.data, f"{split}-images-idx3-ubyte.gz")).astype(np.float32)
        y = read_idx(os.path.join(a.data, f"{split}-labels-idx1-ubyte.gz")).astype(np.int64)
        x = torch.tensor((x / 255.0 - 0.2860) / 0.3530).unsqueeze(1)
        return x.to(dev), torch.tensor(y).to(dev)

    xtr, ytr = load("train")
    xte, yte = load("t10k")
    if a.limit:
        xtr, ytr = xtr[:a.limit], ytr[:a.limit]
    n = xtr.shape[0]
    model = DistributedDataParallel(TutorialCNN().to(dev), device_ids=[local] if cuda else None)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=0)

    for epoch in range(a.epochs):
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), device=dev)
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.train()
        total = torch.zeros(2, device=dev)  # loss x images, images
        for i in range(0, order.numel(), a.batch):
            idx = order[i:i + a.batch]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += torch.stack([loss.detach() * idx.numel(), torch.tensor(float(idx.numel()), device=dev)])
        dist.all_reduce(total)  # waits for every rank's last step
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        model.eval()
        with torch.no_grad():  # every rank evaluates the whole test set (rank 0 prints)
            correct = sum((model.module(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
                          for i in range(0, xte.shape[0], 1000))
        if rank == 0:
            print(json.dumps({"workload": "cnn_ddp", "device": a.device, "ranks": world, "batch_per_rank": a.batch,
                              "epoch": epoch + 1, "seconds": seconds, "images_per_s": n / seconds,
                              "train_loss": (total[0] / total[1]).item(),
                              "test_accuracy": correct / xte.shape[0]}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

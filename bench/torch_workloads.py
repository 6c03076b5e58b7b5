#!/usr/bin/python3
"""torch_workloads.py: the PyTorch side of the benchmarks in bench/ (simple_nn.sh, cnn.sh,
gpu_benchmark.sh, precision.sh). Four workloads, each the PyTorch twin of a cgrad example:

  simple_nn  the course's SimpleNN (chapter 2): 1000 x 20 random samples, random labels,
             Linear(20, 50), ReLU, Linear(50, 1), Sigmoid, BCELoss, SGD 0.01, batch 32, shuffled,
             100 epochs, each batch moved to the device inside the loop as the course does;
             build/simple_nn is cgrad's
  matmul     an N x N matrix product (torch.mm) per format: fp32, tf32, fp16, bf16; the first
             test of build/gpu_benchmark
  conv       Conv2d(3, 64, 3, padding=1) on a batch of 3 x 224 x 224 images, forward and one
             training step (forward, loss = mean(y), backward to the weights and bias); the
             second test of build/gpu_benchmark
  cnn        the tutorial CNN (course chapter 3) on Fashion-MNIST or MNIST: conv 3x3 32, ReLU,
             max pool 2, conv 3x3 64, ReLU, max pool 2, Linear(.., 128), ReLU, Linear(128, 10);
             Adam 1e-3, batch 128, shuffled, normalised, no augmentation, the data set on the
             device; fp32, or fp16 / bf16 through torch.autocast (fp16 with a GradScaler); build/cnn
             is cgrad's

It prints one JSON object per line on stdout and nothing else there (the scripts read it), every
object with "workload", "device" and "torch" (the version). Timings are taken with the device
synchronised at both ends. It does not compare anything: the bench/*.sh scripts do.
Runs with Debian's /usr/bin/python3 (python3-torch 1.13, CPU) and with PyTorch 2.x on CUDA.

  /usr/bin/python3 bench/torch_workloads.py simple_nn --device cpu --threads 1
  /usr/bin/python3 bench/torch_workloads.py cnn --device cpu --epochs 1 --limit 6000
  python3 bench/torch_workloads.py matmul --device cuda --n 10000 --dtypes fp32,tf32,fp16,bf16
  python3 bench/torch_workloads.py conv --device cuda --iters 100 --dtypes fp32,fp16
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

PROGRAM = "torch_workloads"

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # said in one line, before argparse, so that the scripts can show it
    print(f"{PROGRAM}: cannot import {e.name} with {sys.executable} (Debian: apt install python3-torch)",
          file=sys.stderr)
    sys.exit(1)

FORMATS = ("fp32", "tf32", "fp16", "bf16")
DTYPE = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class UsageError(Exception):
    """A wrong option or input file: one line on stderr, exit status 2."""


def emit(**fields):
    """One measurement: a JSON line on stdout, with the torch version."""
    fields["torch"] = torch.__version__
    print(json.dumps(fields), flush=True)


def pick_device(text):
    """torch.device for --device, after checking that it can be used here."""
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise UsageError(f"--device: '{text}' is not cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {text}: this PyTorch ({torch.__version__}) sees no GPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"--device {text}: only {torch.cuda.device_count()} GPU(s)")
        if dev.index is not None:  # plain cuda: the current GPU (PyTorch 2.11 refuses set_device without an index)
            torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise UsageError(f"--device: '{text}' is not cpu, cuda or cuda:N")
    return dev


def sync(dev):
    """Waits until the device has done the work queued so far (a no-op on the CPU)."""
    if dev.type == "cuda":
        torch.cuda.synchronize()  # the current GPU (CUDA_VISIBLE_DEVICES picks it); PyTorch 2.11 wants an index with a device


def set_tf32(on):
    """TF32 on or off for both matrix products and cuDNN convolutions."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def parse_formats(text, allowed):
    names = [t.strip() for t in text.split(",") if t.strip()]
    for n in names:
        if n not in allowed:
            raise UsageError(f"--dtypes: '{n}' is not one of {', '.join(allowed)}")
    if not names:
        raise UsageError("--dtypes: give at least one format")
    return names


# ---- simple_nn ---------------------------------------------------------------------------------

class SimpleNN(nn.Module):
    """The course's model: Linear(20, 50), ReLU, Linear(50, 1), Sigmoid."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 50)
        self.fc2 = nn.Linear(50, 1)

    def forward(self, x):
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(x))))


def run_simple_nn(a, dev):
    np.random.seed(a.seed)  # the course draws its data with numpy
    torch.manual_seed(a.seed)  # weights and shuffle order
    x = torch.tensor(np.random.randn(a.samples, 20), dtype=torch.float32)
    y = torch.tensor((np.random.randn(a.samples) > 0).astype(np.int64))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=a.batch, shuffle=True)
    model = SimpleNN().to(dev)
    criterion = nn.BCELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=a.lr)

    sync(dev)
    start = time.perf_counter()
    steps = 0
    for epoch in range(a.epochs):
        total, count = 0.0, 0
        for xb, yb in loader:
            xb, yb = xb.to(dev), yb.to(dev)  # as the course: each batch moved inside the loop
            out = model(xb)
            loss = criterion(out.squeeze(1), yb.float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            if a.print_epochs:
                total += loss.item() * len(xb)
                count += len(xb)
        if a.print_epochs and (epoch + 1) % 10 == 0:
            # The course prints the last batch's loss; the mean over the epoch is cgrad's figure.
            print(f"Epoch [{epoch + 1}/{a.epochs}], Loss: {loss.item():.4f} (mean over the epoch {total / count:.4f})",
                  file=sys.stderr)
    sync(dev)
    seconds = time.perf_counter() - start

    model.eval()
    with torch.no_grad():
        predicted = (model(x.to(dev)).squeeze(1) > 0.5).long().cpu()
        accuracy = (predicted == y).float().mean().item()
    emit(workload="simple_nn", device=str(dev), epochs=a.epochs, steps=steps, seconds=seconds,
         us_per_step=1e6 * seconds / max(steps, 1), last_batch_loss=loss.item(), accuracy=accuracy,
         threads=torch.get_num_threads())


# ---- matmul ------------------------------------------------------------------------------------

def run_matmul(a, dev):
    n = a.n
    for name in parse_formats(a.dtypes, FORMATS):
        if dev.type == "cpu" and name == "tf32":
            emit(workload="matmul", device=str(dev), n=n, dtype=name, skipped="TF32 is a GPU format (Tensor Cores)")
            continue
        set_tf32(name == "tf32")
        try:
            g = torch.Generator(device=dev)
            g.manual_seed(a.seed)
            A = (torch.rand(n, n, device=dev, generator=g) * 2 - 1).to(DTYPE[name])
            B = (torch.rand(n, n, device=dev, generator=g) * 2 - 1).to(DTYPE[name])
            C = torch.mm(A, B)  # warm-up: cuBLAS picks and loads its kernel
            sync(dev)
            start = time.perf_counter()
            for _ in range(a.reps):
                torch.mm(A, B, out=C)
            sync(dev)
            seconds = (time.perf_counter() - start) / a.reps
        except RuntimeError as e:  # a format this build cannot multiply (fp16 on an old CPU build)
            emit(workload="matmul", device=str(dev), n=n, dtype=name, skipped=str(e).splitlines()[0])
            continue
        emit(workload="matmul", device=str(dev), n=n, dtype=name, reps=a.reps, seconds=seconds,
             tflops=2.0 * n ** 3 / seconds / 1e12)
        del A, B, C
    set_tf32(False)


# ---- conv --------------------------------------------------------------------------------------

def run_conv(a, dev):
    set_tf32(False)
    torch.backends.cudnn.benchmark = True  # cuDNN times its engines, as cgrad's tuned layer does
    for name in parse_formats(a.dtypes, ("fp32", "fp16", "bf16")):
        try:
            torch.manual_seed(a.seed)
            layer = nn.Conv2d(3, 64, 3, padding=1).to(dev, DTYPE[name])
            x = (torch.rand(a.batch, 3, 224, 224, device=dev) * 2 - 1).to(DTYPE[name])  # data: no gradient
            for mode in ("forward", "train"):
                def step():
                    if mode == "forward":
                        with torch.no_grad():
                            layer(x)
                    else:
                        layer.weight.grad = None
                        layer.bias.grad = None
                        layer(x).float().mean().backward()
                for _ in range(a.warmup):
                    step()
                sync(dev)
                start = time.perf_counter()
                for _ in range(a.iters):
                    step()
                sync(dev)
                seconds = time.perf_counter() - start
                emit(workload="conv", device=str(dev), dtype=name, mode=mode, iters=a.iters, batch=a.batch,
                     seconds=seconds / a.iters, it_per_s=a.iters / seconds)
        except RuntimeError as e:  # fp16 convolutions on a CPU build, for instance
            emit(workload="conv", device=str(dev), dtype=name, skipped=str(e).splitlines()[0])
        finally:
            layer = x = None


# ---- cnn ---------------------------------------------------------------------------------------

def read_idx(path):
    """The array of an IDX file (gzipped or not): the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise UsageError(f"{path}: not an IDX file of bytes (magic {raw[:4].hex()})")
    dims = struct.unpack(">" + "I" * raw[3], raw[4:4 + 4 * raw[3]])
    need = 4 + 4 * raw[3] + int(np.prod(dims))
    if len(raw) != need:
        raise UsageError(f"{path}: {len(raw)} bytes, its header says {need}")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)


def find(folder, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    raise UsageError(f"--data: no {stem}[.gz] in {folder} (Debian: apt install dataset-fashion-mnist)")


class TutorialCNN(nn.Module):
    """cgrad's tutorial model (examples/common/models.c), with its parameter names c1, c2, f1, f2."""

    def __init__(self, channels, side, classes):
        super().__init__()
        self.c1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.f1 = nn.Linear(64 * (side // 4) * (side // 4), 128)
        self.f2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.f2(F.relu(self.f1(x.flatten(1))))


def run_cnn(a, dev):
    if not os.path.isdir(a.data):
        raise UsageError(f"--data: no folder {a.data} (Debian: apt install dataset-fashion-mnist)")
    if a.precision == "fp16" and dev.type == "cpu" and not cpu_autocast_fp16():
        raise UsageError(f"--precision fp16 on the CPU: the CPU autocast of PyTorch {torch.__version__} "
                         "takes bf16 only")
    set_tf32(False)  # fp32 means fp32, as in cgrad
    torch.backends.cudnn.benchmark = True
    train_x = read_idx(find(a.data, "train-images-idx3-ubyte"))
    train_y = read_idx(find(a.data, "train-labels-idx1-ubyte"))
    test_x = read_idx(find(a.data, "t10k-images-idx3-ubyte"))
    test_y = read_idx(find(a.data, "t10k-labels-idx1-ubyte"))
    if a.limit:
        train_x, train_y = train_x[:a.limit], train_y[:a.limit]
    side, classes = train_x.shape[1], int(max(train_y.max(), test_y.max())) + 1

    def to_device(images, labels):  # pixel / 255, then (x - mean) / std, once, on the device
        x = torch.tensor(images, dtype=torch.float32, device=dev).unsqueeze(1).div_(255).sub_(a.mean).div_(a.std)
        if a.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, torch.tensor(labels.astype(np.int64), device=dev)

    xs, ys = to_device(train_x, train_y)
    xt, yt = to_device(test_x, test_y)
    torch.manual_seed(a.seed)
    model = TutorialCNN(1, side, classes).to(dev)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=a.lr)
    low = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[a.precision]
    scaler = grad_scaler(dev) if a.precision == "fp16" and dev.type == "cuda" else None
    order = torch.Generator(device="cpu")
    order.manual_seed(a.seed)
    n = len(xs)

    def autocast():
        return torch.autocast(device_type=dev.type, dtype=low, enabled=low is not None)

    total_seconds = 0.0
    for epoch in range(1, a.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=order).to(dev)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.int64)
        sync(dev)
        start = time.perf_counter()
        for i in range(0, n, a.batch):
            idx = perm[i:i + a.batch]
            xb, yb = xs[idx], ys[idx]
            with autocast():
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            loss_sum += loss.detach() * len(idx)  # summed on the device: no read-back per step
            correct += (logits.detach().argmax(1) == yb).sum()
        sync(dev)
        seconds = time.perf_counter() - start
        total_seconds += seconds
        test_loss, test_accuracy = evaluate(model, xt, yt, autocast)
        emit(workload="cnn", device=str(dev), epoch=epoch, precision=a.precision, batch=a.batch,
             channels_last=a.channels_last, train_images=n, train_seconds=seconds, images_per_s=n / seconds,
             train_loss=loss_sum.item() / n, train_accuracy=correct.item() / n, test_loss=test_loss,
             test_accuracy=test_accuracy, threads=torch.get_num_threads())
    emit(workload="cnn_total", device=str(dev), precision=a.precision, epochs=a.epochs, train_images=n,
         train_seconds=total_seconds, images_per_s=n * a.epochs / total_seconds if total_seconds else 0.0,
         parameters=sum(p.numel() for p in model.parameters()))


def evaluate(model, x, y, autocast, batch=1000):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad(), autocast():
        for i in range(0, len(x), batch):
            logits = model(x[i:i + batch]).float()
            loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum").item()
            correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
    return loss / len(x), correct / len(x)


def cpu_autocast_fp16():
    """Whether this PyTorch's CPU autocast takes fp16 (2.x does; 1.13 warns and turns itself off)."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autocast(device_type="cpu", dtype=torch.float16):
                pass
        except (RuntimeError, ValueError):
            return False
    return not any("autocast" in str(w.message).lower() for w in caught)


def grad_scaler(dev):
    """GradScaler for fp16 on a GPU: torch.amp's (2.3 and later), else torch.cuda.amp's."""
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        try:
            return amp.GradScaler(dev.type)
        except TypeError:
            pass
    return torch.cuda.amp.GradScaler()


# ---- command line ------------------------------------------------------------------------------

def positive(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def whole(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} must not be negative")
    return v


def parse_args(argv):
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", default=default_device,
                        help=f"cpu, cuda or cuda:N (default here: {default_device})")
    common.add_argument("--threads", type=whole, default=0,
                        help="CPU threads (torch.set_num_threads; default 0: PyTorch's own choice)")
    common.add_argument("--seed", type=whole, default=0, help="numpy and torch seed (default 0)")

    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="workload", metavar="WORKLOAD")
    sub.required = True

    s = sub.add_parser("simple_nn", parents=[common], help="the course's SimpleNN, 100 epochs")
    s.add_argument("--epochs", type=positive, default=100)
    s.add_argument("--batch", type=positive, default=32)
    s.add_argument("--lr", type=float, default=0.01)
    s.add_argument("--samples", type=positive, default=1000)
    s.add_argument("--print-epochs", action="store_true",
                   help="print the course's 'Epoch [10/100], Loss: ...' lines on stderr (reads the loss every step)")

    m = sub.add_parser("matmul", parents=[common], help="N x N products per format: TFLOPS")
    m.add_argument("--n", type=positive, default=10000)
    m.add_argument("--reps", type=positive, default=10, help="products timed after one warm-up (default 10)")
    m.add_argument("--dtypes", default="fp32", help="comma-separated among fp32,tf32,fp16,bf16 (default fp32)")

    c = sub.add_parser("conv", parents=[common], help="Conv2d 3 -> 64 on 224 x 224 images: iterations/s")
    c.add_argument("--iters", type=positive, default=100)
    c.add_argument("--warmup", type=whole, default=3, help="untimed iterations first (default 3)")
    c.add_argument("--batch", type=positive, default=128)
    c.add_argument("--dtypes", default="fp32", help="comma-separated among fp32,fp16,bf16 (default fp32)")

    n = sub.add_parser("cnn", parents=[common], help="the tutorial CNN on Fashion-MNIST: images/s, accuracy")
    n.add_argument("--epochs", type=positive, default=5)
    n.add_argument("--batch", type=positive, default=128)
    n.add_argument("--lr", type=float, default=0.001)
    n.add_argument("--limit", type=whole, default=0, help="train on the first N images only (default 0: all)")
    n.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="folder with the four IDX files of Fashion-MNIST or MNIST")
    n.add_argument("--mean", type=float, default=0.2860, help="normalisation mean (default: Fashion-MNIST's)")
    n.add_argument("--std", type=float, default=0.3530, help="normalisation std (default: Fashion-MNIST's)")
    n.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                   help="fp16 / bf16: torch.autocast, fp16 with a GradScaler on a GPU")
    n.add_argument("--channels-last", action="store_true", help="NHWC memory format for the model and the data")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        dev = pick_device(a.device)
        if a.threads:
            torch.set_num_threads(a.threads)
        {"simple_nn": run_simple_nn, "matmul": run_matmul, "conv": run_conv, "cnn": run_cnn}[a.workload](a, dev)
    except UsageError as e:
        print(f"{PROGRAM} {a.workload}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""check_model_checkpoint.py: loads a checkpoint written by `cnn --save` for --model tutorial-bn, resnet18
or fast into bench/torch_models.py's twin with load_state_dict(strict=True) (every name, shape and dtype of
the state_dict, BatchNorm's running_mean, running_var and num_batches_tracked included), evaluates
it on the test split of an IDX data set (MNIST's file names and format) and compares the test loss
and accuracy with the last row of cnn's --log. For the fast network it also compares the whitening
layer cgrad set from the training images with the twin's init_whitening on the same images. It
does not run cgrad: tests/test_model_checkpoint.c runs both.

    /usr/bin/python3 tests/reference/check_model_checkpoint.py --model resnet18 --checkpoint w.safetensors \
        --data DIR --log run.csv --mean 0.2860 --std 0.3530 [--write-back twin.safetensors]

The tensors are read with safetensors.torch.load_file when the safetensors package is installed,
otherwise with a small reader of its own (F32 and I64 tensors, the format's layout rules checked).
--write-back writes the twin's state_dict in safetensors (sorted names, I64 num_batches_tracked, as
safetensors.torch.save_file writes them) so that cnn --load can read a file PyTorch made.
Exit 0 when everything matches, 1 otherwise (one line per difference), 2 for bad arguments.
"""
import argparse
import csv
import json
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import torch_models  # noqa: E402  (the twins)

LOSS_TOLERANCE = 2e-5  # cnn's log has 6 decimals; the forward differs by float rounding only
WHITENING_TOLERANCE = 1e-3  # relative, on (W^T W): float32 covariance (twin) against double (cgrad)
DTYPES = {"F32": (np.float32, torch.float32), "I64": (np.int64, torch.int64)}


def read_safetensors(path):
    """{name: tensor} of a safetensors file of F32 and I64 tensors, the layout rules checked."""
    data = Path(path).read_bytes()
    if len(data) < 8:
        raise ValueError("%s: %d bytes, fewer than the 8 of the header length" % (path, len(data)))
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("%s: header length %d past the end of the file" % (path, n))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    body, expected, out = data[8 + n:], 0, {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        if info["dtype"] not in DTYPES:
            raise ValueError("%s: tensor %r is %s; this reader knows F32 and I64" % (path, name, info["dtype"]))
        np_type, _ = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        count = int(np.prod(info["shape"], dtype=np.int64))
        if begin != expected or end - begin != count * np.dtype(np_type).itemsize:
            raise ValueError("%s: tensor %r at [%d, %d] breaks the layout" % (path, name, begin, end))
        expected = end
        out[name] = torch.from_numpy(np.frombuffer(body[begin:end], dtype=np_type).copy().reshape(info["shape"]))
    if expected != len(body):
        raise ValueError("%s: %d bytes belong to no tensor" % (path, len(body) - expected))
    return out


def write_safetensors(path, state):
    header, offset, blobs = {}, 0, []
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        kind = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        raw = t.numpy().tobytes()
        header[name] = {"dtype": kind, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_idx(path):
    data = Path(path).read_bytes()
    ndim = data[3]
    dims = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(folder, prefix, mean, std):
    images = read_idx(Path(folder) / ("%s-images-idx3-ubyte" % prefix))
    labels = read_idx(Path(folder) / ("%s-labels-idx1-ubyte" % prefix)).astype(np.int64)
    x = (torch.from_numpy(images.copy()).float().unsqueeze(1) / 255.0 - mean) / std
    return x, torch.from_numpy(labels)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, choices=("tutorial-bn", "resnet18", "fast"))
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--mean", type=float, required=True)
    p.add_argument("--std", type=float, required=True)
    p.add_argument("--write-back")
    args = p.parse_args()
    torch.set_num_threads(1)
    problems = []

    try:
        from safetensors.torch import load_file
        state, reader = load_file(args.checkpoint), "safetensors.torch.load_file"
    except ImportError:
        state, reader = read_safetensors(args.checkpoint), "the pure-Python reader"
    test_x, test_y = load_split(args.data, "t10k", args.mean, args.std)
    classes = 10
    if args.model == "fast":  # make_model wants 32 x 32; the network itself takes 25 to 48 pixels a side
        model = torch_models.FastNet(1, classes)
    else:
        model = torch_models.make_model(args.model, 1, test_x.shape[-1], test_x.shape[-1], classes)
    own = model.state_dict()
    for name, value in own.items():
        if name in state and state[name].dtype != value.dtype:
            problems.append("%s is %s in the file, %s in PyTorch's state_dict" % (name, state[name].dtype, value.dtype))
    model.load_state_dict(state, strict=True)  # raises on a missing or unexpected name, or another shape
    print("%s: %d tensors read with %s, loaded into the twin's %s with strict names" %
          (args.checkpoint, len(state), reader, type(model).__name__))

    model.eval()
    with torch.no_grad():
        logits = model(test_x)
        loss = F.cross_entropy(logits, test_y).item()
        accuracy = (logits.argmax(1) == test_y).float().mean().item()
    with open(args.log) as f:
        last = list(csv.DictReader(f))[-1]
    cg_loss, cg_accuracy = float(last["test_loss"]), float(last["test_accuracy"])
    print("test loss %.6f (cgrad %.6f), accuracy %.4f (cgrad %.4f) on %d images" %
          (loss, cg_loss, accuracy, cg_accuracy, len(test_y)))
    if abs(loss - cg_loss) > LOSS_TOLERANCE * max(1.0, abs(loss)):
        problems.append("test loss %.6f in PyTorch, %.6f in cgrad's log" % (loss, cg_loss))
    if abs(accuracy - cg_accuracy) > 0.5e-4 + 1e-9:
        problems.append("test accuracy %.4f in PyTorch, %.4f in cgrad's log" % (accuracy, cg_accuracy))

    if args.model == "fast":  # the whitening layer against the twin's, on the same training images
        train_x, _ = load_split(args.data, "train", args.mean, args.std)
        twin = torch_models.FastNet(1, classes)
        torch_models.init_whitening(twin.whiten, train_x[:5000])
        ours, theirs = state["whiten.weight"].flatten(1).double(), twin.whiten.weight.detach().flatten(1).double()
        # Eigenvectors are defined up to sign (and rotation within equal eigenvalues): compare
        # W^T W = (covariance + eps I)^-1 twice over, and the filters' norms (1 / sqrt(eigenvalue + eps)).
        a, b = ours.T @ ours, theirs.T @ theirs
        err = ((a - b).abs().max() / b.abs().max()).item()
        norms = (ours.norm(dim=1) - theirs.norm(dim=1)).abs().max().item() / theirs.norm(dim=1).max().item()
        print("whitening: W^T W differs by %.2e, filter norms by %.2e (relative)" % (err, norms))
        if err > WHITENING_TOLERANCE or norms > WHITENING_TOLERANCE:
            problems.append("whitening weights differ from init_whitening's by %.2e / %.2e" % (err, norms))

    if args.write_back:
        write_safetensors(args.write_back, model.state_dict())
        print("wrote %s (the twin's state_dict)" % args.write_back)
    for line in problems:
        print("MISMATCH " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

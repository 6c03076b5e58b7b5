#!/usr/bin/env python3
"""make_simple_nn_fixture.py: writes tests/reference/simple_nn.bin, the PyTorch reference that
tests/test_reference.c checks cgrad's SimpleNN against (forward, BCE loss, gradients, and five steps
of SGD, SGD with Nesterov momentum and weight decay, and Adam). It does not run cgrad.

Run it with Debian's interpreter, the one that has torch (python3-torch 1.13):

    /usr/bin/python3 tests/reference/make_simple_nn_fixture.py [OUTPUT]

The model is the course's SimpleNN: Linear(20, 50) -> ReLU -> Linear(50, 1) -> Sigmoid, float32,
parameters from torch's default nn.Linear init after torch.manual_seed(0); then one batch
X = randn(32, 20) and targets y = (rand(32) > 0.5) as 0/1 floats, drawn from the same generator.
The loss is nn.BCELoss() (mean) of the outputs (32, 1) against y viewed as (32, 1).

File format (all integers and floats little-endian):

    offset 0   8 bytes   magic "CGREF001"
    offset 8   uint32    version (1)
    offset 12  uint32    count: the number of named arrays that follow
    then count times:
               uint32    name length L (1 to 255)
               L bytes   name, ASCII, no terminating zero
               uint32    ndim (0 to 4; 0 is a scalar holding one value)
               ndim x int64   dims, each >= 1
               prod(dims) x float32   the values, row-major (C order)

Arrays written, in this order (names follow PyTorch's state_dict keys):

    X (32, 20), y (32,)                                       the batch
    fc1.weight (50, 20), fc1.bias (50,), fc2.weight (1, 50), fc2.bias (1,)   initial parameters
    outputs (32, 1), loss ()                                  forward of the initial model
    grad.fc1.weight, grad.fc1.bias, grad.fc2.weight, grad.fc2.bias   after loss.backward()
    for each optimizer OPT in sgd, sgd_nesterov, adam:
      OPT.losses (5,)                                         the loss computed at each step
      OPT.fc1.weight, OPT.fc1.bias, OPT.fc2.weight, OPT.fc2.bias   parameters after the 5 steps

The optimizers, each from the initial parameters, 5 steps on the same batch, each step being
zero_grad, forward, loss, backward, step:
    sgd           torch.optim.SGD(lr=0.01)
    sgd_nesterov  torch.optim.SGD(lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-3)
    adam          torch.optim.Adam(lr=1e-3)
"""
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

MAGIC = b"CGREF001"
VERSION = 1
STEPS = 5
PARAM_NAMES = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


class SimpleNN(nn.Module):
    """The course's MLP: 20 inputs, 50 hidden units with ReLU, one sigmoid output."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 50)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(50, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return self.sigmoid(self.fc2(self.relu(self.fc1(x))))


def train(model, optimizer, X, y):
    """STEPS steps on the one batch; returns the loss of each step (before its update)."""
    criterion = nn.BCELoss()
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = criterion(model(X), y.view(-1, 1))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return torch.tensor(losses, dtype=torch.float32)


def output_path(doc, default):
    """The fixture's path: the one argument, else `default`. --help prints `doc`; an option or a
    second argument is refused with one line on stderr (exit 2), not taken for a file name."""
    args = sys.argv[1:]
    if args in (["-h"], ["--help"]):
        print(doc)
        sys.exit(0)
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("%s: expected at most one argument, OUTPUT (not %s); see --help"
              % (Path(sys.argv[0]).name, " ".join(args)), file=sys.stderr)
        sys.exit(2)
    return Path(args[0]) if args else default


def write_fixture(path, arrays):
    """arrays: list of (name, float32 tensor) written in the format of the module docstring."""
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<II", VERSION, len(arrays)))
        for name, tensor in arrays:
            data = tensor.detach().to(torch.float32).contiguous().numpy()
            encoded = name.encode("ascii")
            assert 1 <= len(encoded) <= 255 and data.ndim <= 4
            f.write(struct.pack("<I", len(encoded)))
            f.write(encoded)
            f.write(struct.pack("<I", data.ndim))
            f.write(struct.pack("<%dq" % data.ndim, *data.shape))
            f.write(data.astype("<f4").tobytes(order="C"))


def main():
    out = output_path(__doc__, Path(__file__).with_name("simple_nn.bin"))
    torch.set_num_threads(1)  # one summation order, so a rerun writes the same bytes
    torch.manual_seed(0)
    model = SimpleNN()
    X = torch.randn(32, 20)
    y = (torch.rand(32) > 0.5).float()
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert list(initial) == PARAM_NAMES

    arrays = [("X", X), ("y", y)]
    arrays += [(name, initial[name]) for name in PARAM_NAMES]

    # Forward, loss and gradients of the initial model.
    model.zero_grad()
    outputs = model(X)
    loss = nn.BCELoss()(outputs, y.view(-1, 1))
    loss.backward()
    arrays += [("outputs", outputs), ("loss", loss)]
    grads = dict(model.named_parameters())
    arrays += [("grad." + name, grads[name].grad) for name in PARAM_NAMES]

    optimizers = [
        ("sgd", lambda params: torch.optim.SGD(params, lr=0.01)),
        ("sgd_nesterov",
         lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-3)),
        ("adam", lambda params: torch.optim.Adam(params, lr=1e-3)),
    ]
    for label, make in optimizers:
        fresh = SimpleNN()
        fresh.load_state_dict(initial)
        losses = train(fresh, make(fresh.parameters()), X, y)
        arrays.append((label + ".losses", losses))
        print("%-12s losses %s" % (label, " ".join("%.6f" % v for v in losses.tolist())))
        final = dict(fresh.named_parameters())
        arrays += [(label + "." + name, final[name]) for name in PARAM_NAMES]

    print("initial loss %.6f" % loss.item())
    write_fixture(out, arrays)
    print("wrote %s: %d arrays, %d bytes (torch %s, numpy %s)"
          % (out, len(arrays), out.stat().st_size, torch.__version__, np.__version__))


if __name__ == "__main__":
    main()

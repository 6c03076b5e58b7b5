#!/usr/bin/env python3
"""make_cnn_fixture.py: writes tests/reference/cnn.bin, the PyTorch reference that
tests/test_reference_cnn.c checks cgrad's tutorial CNN against (forward, cross-entropy loss,
gradients, then three steps of Adam and of SGD with momentum). It does not run cgrad.

Run it with Debian's interpreter, the one that has torch (python3-torch 1.13):

    /usr/bin/python3 tests/reference/make_cnn_fixture.py [OUTPUT]

The model is the tutorial CNN, as TutorialCNN in bench/torch_workloads.py:
    c1 = Conv2d(C, 32, 3, padding=1), c2 = Conv2d(32, 64, 3, padding=1),
    f1 = Linear(64 * (H/4) * (W/4), 128), f2 = Linear(128, K)
    forward: max_pool2d(relu(c1(x)), 2), max_pool2d(relu(c2(x)), 2), flatten(1), relu(f1(x)), f2(x)
with small images so the file stays small: C = 1, H = W = 8, K = 10 (f1 is Linear(256, 128)).
float32, parameters from torch's default init after torch.manual_seed(0), then from the same
generator one batch x = randn(6, 1, 8, 8) and labels = randint(0, 10, (6,)). The loss is
F.cross_entropy(logits, labels) (mean over the batch).

File format: the one of make_simple_nn_fixture.py (magic "CGREF001", version 1, named float32
arrays of 0 to 4 dims; see its docstring), written by its write_fixture. The format has no integer
arrays, so the labels are stored as float32 values that hold small integers exactly.

Arrays written, in this order (names follow PyTorch's state_dict keys):

    x (6, 1, 8, 8), labels (6,)                                the batch
    c1.weight (32, 1, 3, 3), c1.bias (32,), c2.weight (64, 32, 3, 3), c2.bias (64,),
    f1.weight (128, 256), f1.bias (128,), f2.weight (10, 128), f2.bias (10,)   initial parameters
    logits (6, 10), loss ()                                    forward of the initial model
    grad.c1.weight ... grad.f2.bias                            after loss.backward()
    for each optimizer OPT in adam, sgd_momentum:
      OPT.losses (3,)                                          the loss computed at each step
      OPT.c1.weight ... OPT.f2.bias                            parameters after the 3 steps

The optimizers, each from the initial parameters, 3 steps on the same batch, each step being
zero_grad, forward, loss, backward, step:
    adam          torch.optim.Adam(lr=1e-3)
    sgd_momentum  torch.optim.SGD(lr=0.01, momentum=0.9)

Size: one set of parameters is 53,002 floats (212 KB), and the file holds four (initial,
gradients, after Adam, after SGD), about 850 KB. A second case with C = 3 (CIFAR's channels)
would add two more sets, so it is left out: c2 (32 input channels) already exercises the
multi-channel path of conv2d.
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the fixtures when importing the format writer
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_simple_nn_fixture import output_path, write_fixture  # noqa: E402  (the shared format)

C, H, W, K = 1, 8, 8, 10
BATCH = 6
STEPS = 3
PARAM_NAMES = ["c1.weight", "c1.bias", "c2.weight", "c2.bias", "f1.weight", "f1.bias", "f2.weight", "f2.bias"]


class TutorialCNN(nn.Module):
    """conv3x3(C,32)-ReLU-pool2-conv3x3(32,64)-ReLU-pool2-fc(64*H/4*W/4,128)-ReLU-fc(128,K)."""

    def __init__(self, c, h, w, k):
        super().__init__()
        self.c1 = nn.Conv2d(c, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.f1 = nn.Linear(64 * (h // 4) * (w // 4), 128)
        self.f2 = nn.Linear(128, k)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.f2(F.relu(self.f1(x.flatten(1))))


def train(model, optimizer, x, labels):
    """STEPS steps on the one batch; returns the loss of each step (before its update)."""
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return torch.tensor(losses, dtype=torch.float32)


def main():
    out = output_path(__doc__, Path(__file__).with_name("cnn.bin"))
    torch.set_num_threads(1)  # one summation order, so a rerun writes the same bytes
    torch.manual_seed(0)
    model = TutorialCNN(C, H, W, K)
    x = torch.randn(BATCH, C, H, W)
    labels = torch.randint(0, K, (BATCH,))
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert list(initial) == PARAM_NAMES

    arrays = [("x", x), ("labels", labels.to(torch.float32))]
    arrays += [(name, initial[name]) for name in PARAM_NAMES]

    # Forward, loss and gradients of the initial model.
    model.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    arrays += [("logits", logits), ("loss", loss)]
    params = dict(model.named_parameters())
    arrays += [("grad." + name, params[name].grad) for name in PARAM_NAMES]

    optimizers = [
        ("adam", lambda p: torch.optim.Adam(p, lr=1e-3)),
        ("sgd_momentum", lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
    ]
    for label, make in optimizers:
        fresh = TutorialCNN(C, H, W, K)
        fresh.load_state_dict(initial)
        losses = train(fresh, make(fresh.parameters()), x, labels)
        arrays.append((label + ".losses", losses))
        print("%-12s losses %s" % (label, " ".join("%.6f" % v for v in losses.tolist())))
        final = dict(fresh.named_parameters())
        arrays += [(label + "." + name, final[name]) for name in PARAM_NAMES]

    print("labels %s, initial loss %.6f" % (labels.tolist(), loss.item()))
    write_fixture(out, arrays)
    print("wrote %s: %d arrays, %d bytes (torch %s, numpy %s)"
          % (out, len(arrays), out.stat().st_size, torch.__version__, np.__version__))


if __name__ == "__main__":
    main()

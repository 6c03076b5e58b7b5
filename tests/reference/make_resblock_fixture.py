#!/usr/bin/env python3
"""make_resblock_fixture.py: writes tests/reference/resblock.bin, the PyTorch reference for one
training step of two residual blocks with BatchNorm in training mode (forward, loss with label
smoothing, every gradient, the SGD update, the running statistics), then two more steps, and the
evaluation-mode output after them. It does not run cgrad; a C test reads the file.

Run it with Debian's interpreter, the one that has torch (python3-torch 1.13):

    /usr/bin/python3 tests/reference/make_resblock_fixture.py [OUTPUT]

The model (names follow PyTorch's state_dict keys, as torchvision's ResNet names a BasicBlock):

    b1 = BasicBlock(4 -> 8, stride 2)   conv1 3x3 stride 2 pad 1 no bias, bn1, ReLU,
                                        conv2 3x3 stride 1 pad 1 no bias, bn2,
                                        + downsample(x) = downsample.1(downsample.0(x)):
                                          Conv2d 1x1 stride 2 no bias, then BatchNorm2d,
                                        ReLU of the sum
    b2 = BasicBlock(8 -> 8, stride 1)   the same with the identity shortcut (no downsample)
    global average pooling (mean over H and W), fc = Linear(8, 5)

    forward(x) = fc(b2(b1(x)).mean((2, 3)))

BatchNorm2d everywhere with PyTorch's defaults: eps 1e-5, momentum 0.1, affine, running stats.
In training mode a BatchNorm normalises with the batch's mean and biased variance over (N, H, W)
and updates running_mean = 0.9 running_mean + 0.1 mean, running_var = 0.9 running_var + 0.1
unbiased variance (n / (n - 1) times the biased one, n = N H W), num_batches_tracked += 1.

float32. After torch.manual_seed(0): the convolutions and fc from PyTorch's default init; then,
from the same generator, so that no BatchNorm starts at the identity, every BatchNorm's weight
1 + 0.1 randn, bias 0.1 randn, running_mean 0.1 randn, running_var 1 + 0.1 rand (in module
order, each parameter drawn whole); then x = randn(6, 4, 8, 8) and labels = randint(0, 5, (6,)).
The loss is F.cross_entropy(logits, labels, label_smoothing=0.1) (mean over the batch; PyTorch's
definition: (1 - 0.1) times the usual loss plus 0.1 times the mean over the 5 classes of -log p).

The optimizer is torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True) with two parameter groups:
weight_decay=5e-4 for the weights of the convolutions and of fc, weight_decay=0 for every
BatchNorm weight and bias and for fc.bias (the usual exemption of norms and biases).
A step is zero_grad, forward (training mode), loss, backward, step.

File format: the one of make_simple_nn_fixture.py (magic "CGREF001", version 1, named float32
arrays of 0 to 4 dims), written by its write_fixture. Integers (labels, num_batches_tracked) are
stored as float32 values that hold them exactly.

Arrays written, in this order (STATE below is the 32 state_dict entries of the model in
state_dict order: for each BatchNorm its weight, bias, running_mean, running_var and
num_batches_tracked; the conv and fc weights; fc.bias):

    x (6, 4, 8, 8), labels (6,)                   the batch
    STATE                                         the initial state
    logits (6, 5), loss (), loss_plain ()         training-mode forward of the initial model;
                                                  loss_plain: the same logits without smoothing
    grad.x (6, 4, 8, 8)                           d loss / d x
    grad.NAME for every parameter (17)            after loss.backward()
    step1.STATE                                   the state after that first step: parameters
                                                  updated, running stats of its forward,
                                                  num_batches_tracked 1
    steps.losses (3,)                             the loss of steps 1, 2 and 3 (same batch)
    step3.STATE                                   the state after 3 steps
    eval_logits (6, 5)                            model.eval() forward of x after the 3 steps
                                                  (BatchNorm from its running statistics)
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from torch_models import BasicBlock  # noqa: E402  (the ResNet twin's block: He et al. 2016)

BATCH, C_IN, SIDE, WIDTH, K = 6, 4, 8, 8, 5
STEPS = 3
LABEL_SMOOTHING = 0.1
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4


class TwoBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.b1 = BasicBlock(C_IN, WIDTH, 2)
        self.b2 = BasicBlock(WIDTH, WIDTH, 1)
        self.fc = nn.Linear(WIDTH, K)

    def forward(self, x):
        return self.fc(self.b2(self.b1(x)).mean((2, 3)))


def make_optimizer(model):
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]  # conv and fc weights
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]  # BatchNorm weights and biases, fc.bias
    return torch.optim.SGD([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
                           lr=LR, momentum=MOMENTUM, nesterov=True)


def state_arrays(model, prefix):
    return [(prefix + name, value.detach().to(torch.float32).clone()) for name, value in model.state_dict().items()]


def main():
    out = output_path(__doc__, Path(__file__).with_name("resblock.bin"))
    torch.set_num_threads(1)  # one summation order, so a rerun writes the same bytes
    torch.manual_seed(0)
    model = TwoBlocks()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.1 * torch.randn(m.num_features))
                m.bias.copy_(0.1 * torch.randn(m.num_features))
                m.running_mean.copy_(0.1 * torch.randn(m.num_features))
                m.running_var.copy_(1 + 0.1 * torch.rand(m.num_features))
    x = torch.randn(BATCH, C_IN, SIDE, SIDE)
    labels = torch.randint(0, K, (BATCH,))
    state = list(model.state_dict().keys())
    assert len(state) == 32, state
    params = [name for name, _ in model.named_parameters()]

    arrays = [("x", x), ("labels", labels.to(torch.float32))]
    arrays += state_arrays(model, "")

    # Step 1 by hand, keeping the forward, the loss and every gradient.
    model.train()
    optimizer = make_optimizer(model)
    optimizer.zero_grad()
    x_leaf = x.clone().requires_grad_(True)
    logits = model(x_leaf)
    loss = F.cross_entropy(logits, labels, label_smoothing=LABEL_SMOOTHING)
    loss_plain = F.cross_entropy(logits.detach(), labels)
    loss.backward()
    optimizer.step()
    arrays += [("logits", logits), ("loss", loss), ("loss_plain", loss_plain), ("grad.x", x_leaf.grad)]
    named = dict(model.named_parameters())
    # Copies: zero_grad() and backward() of the later steps write into these same .grad tensors,
    # and the arrays are only written at the end.
    arrays += [("grad." + name, named[name].grad.clone()) for name in params]
    arrays += state_arrays(model, "step1.")
    losses = [loss.item()]

    # Steps 2 and 3 on the same batch.
    for _ in range(STEPS - 1):
        optimizer.zero_grad()
        step_loss = F.cross_entropy(model(x), labels, label_smoothing=LABEL_SMOOTHING)
        step_loss.backward()
        optimizer.step()
        losses.append(step_loss.item())
    arrays.append(("steps.losses", torch.tensor(losses, dtype=torch.float32)))
    arrays += state_arrays(model, "step3.")
    model.eval()
    with torch.no_grad():
        arrays.append(("eval_logits", model(x)))

    print("labels %s, loss %.6f (without smoothing %.6f), losses of 3 steps %s" %
          (labels.tolist(), loss.item(), loss_plain.item(), " ".join("%.6f" % v for v in losses)))
    write_fixture(out, arrays)
    print("wrote %s: %d arrays, %d bytes (torch %s, numpy %s)"
          % (out, len(arrays), out.stat().st_size, torch.__version__, np.__version__))


if __name__ == "__main__":
    main()

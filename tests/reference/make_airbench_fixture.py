#!/usr/bin/env python3
"""make_airbench_fixture.py: writes tests/reference/airbench.bin, the PyTorch reference that
tests/test_reference_airbench.c checks cgrad's --recipe airbench94 against: nine training steps
of the fast network with airbench 0.1.8's optimizer, schedule, Lookahead and frozen whitening
bias, then its test-time augmentation. It does not run cgrad. The pieces are the twin's
(bench/torch_train.py: airbench_optimizer, triangle, Lookahead, lookahead_decays, airbench_tta;
bench/torch_models.py: FastNet), so the fixture checks the twin and cgrad against each other.

    /usr/bin/python3 tests/reference/make_airbench_fixture.py [OUTPUT]

The run, with augmentation off and no shuffle (the test and this script feed the same batches):
  - FastNet(3, 10), every float tensor of its state_dict set by value(i, k) below (the whitening
    layer included: no eigen-solver, whose eigenvector signs could differ); BatchNorm as made
    (weights 1, biases 0, running_mean 0, running_var 1);
  - 32 training images and 10 test images of 3 x 32 x 32, pixels from an integer hash, normalised
    with CIFAR-10's mean and std; labels i mod 10;
  - batch 16 (2 steps per epoch), 4.5 epochs: T = 9 steps, the whitening bias trained in epochs
    0-2 (steps 1-6) only; the loss is airbench's, the SUM of the per-image cross-entropies with
    label smoothing 0.2; Lookahead at step 5, then decay 1 at step 9 (the weights become the
    average of step 5).
value(i, k) of element i of a tensor whose name's ASCII codes add up to k (BatchNorm's left as made):
  bound x (((i * 7919 + k * 104729) mod 2001) / 1000 - 1), bound = 1 / sqrt(fan_in) (fan_in: the
  product of the dims after the first; 0.5 for the whitening bias), exact in float64 on both sides.

Arrays (format of make_simple_nn_fixture.py, float32): train_x (32, 3, 32, 32), train_y (32,),
test_x (10, 3, 32, 32), test_y (10,), losses (9,) (each step's SUM loss / batch: the mean that
cgrad logs), whiten_bias_after_6 (24,), then every float tensor of the final state_dict by its
name (those over 4096 values as NAME.head, the first 4096, and NAME.moments, their sum and sum of
squares), and tta_logits (10, 10). About 640 KB.
"""
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.dont_write_bytecode = True
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent / "bench"))
from make_simple_nn_fixture import output_path, write_fixture  # noqa: E402
import torch_models  # noqa: E402
import torch_train  # noqa: E402

N_TRAIN, N_TEST, BATCH, EPOCHS = 32, 10, 16, 4.5
HEAD = 4096
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def images(n, offset):
    i = np.arange(n, dtype=np.int64)[:, None, None, None] + offset
    c = np.arange(3, dtype=np.int64)[None, :, None, None]
    y = np.arange(32, dtype=np.int64)[None, None, :, None]
    x = np.arange(32, dtype=np.int64)[None, None, None, :]
    h = (i * 2654435761 + c * 40503 + y * 977 + x * 131 + (y * x) % 17 * 7919) & 0xFFFFFFFF
    pixels = ((h >> 7) % 256).astype(np.float64)
    mean = np.array(MEAN).reshape(1, 3, 1, 1)
    std = np.array(STD).reshape(1, 3, 1, 1)
    return torch.from_numpy(((pixels / 255.0 - mean) / std).astype(np.float32))


def set_weights(model):
    for name, t in model.state_dict().items():
        if "norm" in name:
            continue
        k = sum(name.encode("ascii"))
        fan_in = int(np.prod(t.shape[1:])) if t.dim() > 1 else 4
        bound = 1.0 / np.sqrt(fan_in)
        i = np.arange(t.numel(), dtype=np.int64)
        v = bound * (((i * 7919 + k * 104729) % 2001) / 1000.0 - 1.0)
        t.copy_(torch.from_numpy(v.astype(np.float32)).view_as(t))


def main():
    out = output_path(__doc__, HERE / "airbench.bin")
    torch.set_num_threads(1)
    hp = dict(torch_train.AIRBENCH)
    train_x, test_x = images(N_TRAIN, 0), images(N_TEST, 1000)
    train_y, test_y = torch.arange(N_TRAIN) % 10, torch.arange(N_TEST) % 10
    model = torch_models.FastNet(3, 10)
    with torch.no_grad():
        set_weights(model)
    steps_per_epoch = N_TRAIN // BATCH
    total = int(np.ceil(steps_per_epoch * EPOCHS))
    opt = torch_train.airbench_optimizer(model, BATCH, hp)
    schedule = torch_train.triangle(total, 0.2, 0.07, 0.23)
    lookahead = torch_train.Lookahead(model)
    decays = torch_train.lookahead_decays(total, hp)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=hp["label_smoothing"], reduction="none")
    losses, step, epoch, bias_6 = [], 0, 0, None
    while step < total:
        model.whiten.bias.requires_grad_(epoch < hp["whiten_bias_epochs"])
        model.train()
        for i in range(steps_per_epoch):
            x, y = train_x[i * BATCH:(i + 1) * BATCH], train_y[i * BATCH:(i + 1) * BATCH]
            loss = loss_fn(model(x), y).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * schedule[step]
            opt.step()
            losses.append(loss.item() / BATCH)
            step += 1
            if step == 6:
                bias_6 = model.whiten.bias.detach().clone()
            if step % hp["ema_every"] == 0:
                lookahead.update(model, decays[step].item())
            if step >= total:
                lookahead.update(model, 1.0)
                break
        epoch += 1
    model.eval()
    with torch.no_grad():
        tta = torch_train.airbench_tta(model, test_x)
    arrays = [("train_x", train_x), ("train_y", train_y.float()), ("test_x", test_x), ("test_y", test_y.float()),
              ("losses", torch.tensor(losses)), ("whiten_bias_after_6", bias_6)]
    for name, t in model.state_dict().items():
        if t.dtype != torch.float32:
            continue
        if t.numel() <= HEAD:
            arrays.append((name, t))
        else:  # the first HEAD values and the sum and sum of squares (float64), to keep the file small
            flat = t.flatten()
            arrays.append((name + ".head", flat[:HEAD]))
            arrays.append((name + ".moments", torch.tensor([flat.double().sum().item(), (flat.double() ** 2).sum().item()])))
    arrays.append(("tta_logits", tta))
    print("losses " + " ".join("%.5f" % v for v in losses))
    write_fixture(out, arrays)
    print("wrote %s: %d arrays, %d bytes (torch %s)" % (out, len(arrays), out.stat().st_size, torch.__version__))


if __name__ == "__main__":
    main()

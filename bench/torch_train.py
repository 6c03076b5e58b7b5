#!/usr/bin/env python3
"""torch_train.py: trains the PyTorch twins of cgrad's cnn models (bench/torch_models.py) with the
same data, flags and training recipe as cgrad's cnn, for same-run comparisons. It is a benchmark
twin, not part of cgrad: it reads the same files, logs the same CSV columns and prints one JSON
line per epoch and one at the end.

    /usr/bin/python3 bench/torch_train.py --dataset cifar10 --data /work/data/cifar10 --epochs 1
    python3 bench/torch_train.py --model resnet18 --dataset cifar10 --data DIR --device cuda \\
        --optimizer sgd --lr 0.1 --momentum 0.9 --nesterov --weight-decay 5e-4 --no-decay-bn-bias \\
        --lr-schedule onecycle --label-smoothing 0.1 --epochs 30 --batch-size 512 --precision bf16
    python3 bench/torch_train.py --recipe airbench94 --data DIR --device cuda --runs 5

Data (--dataset, --data as cnn's): fashion-mnist and mnist (IDX, gzipped or not), cifar10 and
cifar100 (binary versions; cifar100 with its 100 fine labels), tinyimagenet (tiny-imagenet-200/,
train/ and val/) and folder (DIR/train/CLASS/..., DIR/val/... or, without val/, DIR/test/...).
The image data sets are listed in the order cgrad lists them, and when cgrad has written its
decoded cache (.cgrad-cache*.bin) and the files still match it (the same fingerprint: count,
bytes, newest modification time, FNV-1a hash of names, labels, sizes and times), the pixels are
read from that cache, so both programs train on the same bytes; otherwise the images are decoded
with Pillow (whose JPEG decoder differs from cgrad's stb_image by a few levels on some pixels),
and a line says so. --limit N keeps the same class-balanced subset as cnn's: the classes take
turns, each giving its next image in data-set order.

The recipe, with PyTorch's names and defaults (torch.optim, torch.optim.lr_scheduler, F.cross_entropy):
  --optimizer adam|adamw|sgd     Adam(lr 1e-3 default), AdamW, SGD(lr 1e-2 default); --momentum
                                 (SGD, default 0), --nesterov, --weight-decay (default 0, 0.01 for
                                 adamw as torch.optim.AdamW; L2 as torch.optim.SGD/Adam add it to
                                 the gradient), --decoupled-weight-decay
                                 (decay the weights by lr x weight_decay apart from the gradient, as
                                 AdamW; adamw always does), --no-decay-bn-bias (no weight decay for
                                 BatchNorm weights and biases and for every bias: parameters of one dim)
  --lr-schedule NAME             per step, t = step, T = total steps:
                                   constant  lr
                                   step      lr gamma^floor(epoch / step_size) (StepLR by epochs;
                                             --step-size E default 30, --gamma default 0.1)
                                   cosine    min_lr + (lr - min_lr) (1 + cos(pi t / T)) / 2
                                             (CosineAnnealingLR, T_max = T; --min-lr default 0)
                                   linear    lr (1 - t / T) (LinearLR from 1 to 0)
                                   onecycle  OneCycleLR(max_lr=lr, total_steps=T) with its defaults
                                             (pct_start 0.3, cos annealing, div_factor 25,
                                             final_div_factor 1e4; momentum not cycled)
                                   triangle  airbench's: lr x 0.2 at t = 0, linearly up to lr at
                                             P = int(0.23 T), down to lr x 0.07 at T
  --warmup E                     E epochs (a fraction allowed) of linear warm-up: step t < W = E x steps
                                 per epoch runs at lr x (t + 1) / W, and the schedule then runs over
                                 the T - W steps left (not with onecycle, which warms up itself)
  --label-smoothing X            F.cross_entropy(label_smoothing=X)
  --clip-grad-norm X             torch.nn.utils.clip_grad_norm_(parameters, X) before each step
  --augment on|off               the training augmentation (default on for cifar, tinyimagenet, folder):
                                 random crop of the image padded by --crop-padding P pixels (default 4;
                                 --padding-mode zeros|reflect; zeros: black pixels, as cnn's), --flip random|alternate|off (random:
                                 each image with probability 1/2; alternate: airbench's, a random half
                                 flipped once, then every image flipped in the 2nd, 4th, ... epochs),
                                 --cutout S
                                 (a S x S square of zeros after normalisation, centred anywhere in the
                                 image, clipped at the borders: DeVries and Taylor 2017; default 0)
  --tta                          test-time augmentation: the mean of the logits of each test image and
                                 of its mirror image
  --precision fp32|fp16|bf16     torch.autocast (fp16 with GradScaler); --channels-last; --compile
--recipe airbench94 trains --model fast with airbench94's whole recipe instead (batch 1024, 9.9
epochs, SGD Nesterov momentum 0.85, lr 11.5 and weight decay 0.0153 per 1024 images, BatchNorm
biases at 64 times the lr, label smoothing 0.2, a triangular lr schedule (0.2 -> 1 at 23 % -> 0.07),
Lookahead every 5 steps with the weights set to the average at the end,
whitening bias trained 3 epochs, flips alternating by epoch, translation by 2 with reflection, TTA
of flips and 1-pixel translations, fp16 weights with fp32 BatchNorm on a GPU) and reports its
time as GPU time of the training steps and of the whitening initialisation (train_seconds), and
apart that of the TTA evaluation (tta_seconds): airbench's printed total_time_seconds is their
sum; --runs N repeats with seeds seed .. seed+N-1 and prints the means and the standard deviation.

Outputs: --log PATH (epoch,train_loss,train_accuracy,test_loss,test_accuracy,test_top5,seconds,
images_per_s,device,lr: seconds since the start, images/s of the epoch's training steps alone, lr at
the epoch's end), --confusion PATH (the final confusion matrix: a header row of the class names,
then one row per true class with the count predicted as each class), --save PATH (the final
state_dict as safetensors, BatchNorm buffers included), --load PATH (a safetensors file, cgrad's
or this script's, loaded strictly), --eval (evaluate the loaded model only). It prints a model
summary (layers, output shapes, parameters, FLOPs per image) unless --quiet.

Runs with Debian's /usr/bin/python3 (torch 1.13, CPU) and with PyTorch 2.x on a GPU; Pillow only
for image folders without cgrad's cache; safetensors is written and read by a small codec here.
"""
import argparse
import contextlib
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402
from torch_data import (DATASETS, Batches, InputError, cutout, keep_balanced, load_split,  # noqa: E402
                        random_crop, random_flip, say)

PROGRAM = "torch_train"

def emit(**fields):
    print(json.dumps(fields), flush=True)


# ---- the recipe -----------------------------------------------------------------------------------

def lr_factor(args, step, total, steps_per_epoch):
    """The factor of the base lr at `step` (0-based) of `total` (module docstring)."""
    warm = int(round(args.warmup * steps_per_epoch)) if args.lr_schedule != "onecycle" else 0
    if step < warm:
        return (step + 1) / warm
    t, T = step - warm, max(1, total - warm)
    s = args.lr_schedule
    if s == "constant":
        return 1.0
    if s == "step":
        return args.gamma ** math.floor((t // steps_per_epoch) / args.step_size)
    if s == "cosine":
        lo = args.min_lr / args.lr
        return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t / T))
    if s == "linear":
        return 1.0 - t / T
    if s == "triangle":  # the formula of triangle() below, for one step
        peak = int(0.23 * T)
        return 0.2 + 0.8 * t / peak if t < peak else 1 + (0.07 - 1) * (t - peak) / max(1, T - peak)
    # onecycle: torch.optim.lr_scheduler.OneCycleLR's two phases, cos annealing
    initial, final = 1 / 25.0, 1 / 25.0 / 1e4
    end1 = 0.3 * T - 1
    def cos(start, end, pct):
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    if t <= end1:
        return cos(initial, 1.0, t / end1)
    return cos(1.0, final, (t - end1) / (T - 1 - end1))


def param_groups(model, args):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if args.no_decay_bn_bias and p.dim() <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": args.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(model, args):
    groups = param_groups(model, args)
    decoupled = args.decoupled_weight_decay or args.optimizer == "adamw"
    if decoupled:  # applied by hand in step(); the optimizer adds nothing to the gradient
        for g in groups:
            g["decoupled"] = g["weight_decay"]
            g["weight_decay"] = 0.0
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov)
    else:
        opt = torch.optim.Adam(groups, lr=args.lr)
    for g in opt.param_groups:
        g["base_lr"] = args.lr
    return opt


def apply_decoupled_decay(opt):
    with torch.no_grad():
        for g in opt.param_groups:
            if g.get("decoupled", 0.0) > 0:
                for p in g["params"]:
                    p.mul_(1.0 - g["lr"] * g["decoupled"])


@torch.no_grad()
def evaluate(model, batches, classes, tta, autocast):
    """Loss, top-1, top-5 and the confusion matrix (rows true, columns predicted)."""
    model.eval()
    k = len(classes)
    loss_sum, top1, top5, n = 0.0, 0, 0, 0
    confusion = torch.zeros(k, k, dtype=torch.int64)
    for x, y in batches:
        with autocast():
            logits = model(x)
            if tta:
                logits = 0.5 * logits + 0.5 * model(x.flip(3))
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        best = logits.topk(min(5, k), dim=1).indices
        top1 += (best[:, 0] == y).sum().item()
        top5 += (best == y[:, None]).any(1).sum().item()
        confusion += torch.bincount((y * k + best[:, 0]).cpu(), minlength=k * k).view(k, k)
        n += len(y)
    model.train()
    return loss_sum / n, top1 / n, top5 / n, confusion


def write_confusion(path, classes, confusion):
    import csv
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(classes)
        for row in confusion.tolist():
            w.writerow(row)


# ---- safetensors (https://github.com/huggingface/safetensors: u64 header length, JSON header, data) ----

ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32"}


def save_safetensors(path, tensors, metadata):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise InputError("%s: %d bytes: not a safetensors file" % (path, len(data)))
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 100 << 20:
        raise InputError("%s: header of %d bytes in a file of %d: not a safetensors file (a PyTorch .pt is a zip "
                         "or pickle)" % (path, n, len(data)))
    try:
        header = json.loads(data[8:8 + n])
    except ValueError as e:
        raise InputError("%s: header is not JSON (%s): not a safetensors file" % (path, e))
    np_types = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "BF16": np.int16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data, dtype=np_types[info["dtype"]], count=(end - begin) // np.dtype(np_types[info["dtype"]]).itemsize,
                            offset=8 + n + begin).reshape(info["shape"])
        t = torch.from_numpy(arr.copy())
        out[name] = t.view(torch.bfloat16) if info["dtype"] == "BF16" else t
    return out, header.get("__metadata__", {})


# ---- training: the general recipe -----------------------------------------------------------------

def build(args, train, test, device):
    c, h, w = train.images.shape[1:]
    model = torch_models.make_model(args.model, c, h, w, len(train.classes), stem_stride=args.stem_stride).to(device)
    if args.load:
        state, _ = load_safetensors(args.load)
        own = model.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        shapes = ["%s %s (model %s)" % (k, tuple(state[k].shape), tuple(own[k].shape))
                  for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        for what, names in (("missing", missing), ("not in the model", unexpected), ("of another shape", shapes)):
            if names:
                raise InputError("%s: does not fit --model %s: %d tensor(s) %s: %s%s" % (
                    args.load, args.model, len(names), what, ", ".join(names[:3]), ", ..." if len(names) > 3 else ""))
        model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def train_general(args, train, test, device):
    torch.manual_seed(args.seed)
    gen = torch.Generator(device=device)  # the shuffle and the augmentation, drawn where the batches are
    gen.manual_seed(args.seed)
    mean, std = DATASETS[args.dataset][1], DATASETS[args.dataset][2]
    if train.images.shape[1] == 1:
        mean, std = mean[:1], std[:1]
    model = build(args, train, test, device)
    c, h, w = train.images.shape[1:]
    rows = torch_models.summary(model, (c, h, w), device)
    say(args, torch_models.format_summary(rows))
    train_batches = Batches(train, device, mean, std, args.batch_size, True, False, gen)
    if args.model == "fast" and not args.load:  # its first layer is set from the data, as airbench94 does
        torch_models.init_whitening(model.whiten, train_batches.normalize(train_batches.images[:5000]))
    test_batches = Batches(test, device, mean, std, 500, False, False, None)
    augment = args.augment if args.augment is not None else DATASETS[args.dataset][3]
    if augment:
        if args.flip == "alternate":  # airbench's: a random half of the images flipped once, for good
            half = (torch.rand(len(train_batches.labels), generator=gen, device=device) < 0.5).view(-1, 1, 1, 1)
            train_batches.images = torch.where(half, train_batches.images.flip(3), train_batches.images)
        state = {"epoch": 0}
        black = train_batches.normalize(torch.zeros(1, c, 1, 1, dtype=torch.uint8, device=device))
        def aug(x):
            x = random_crop(x, args.crop_padding, args.padding_mode, gen, black)
            if args.flip == "random":
                x = random_flip(x, gen)
            elif args.flip == "alternate" and state["epoch"] % 2 == 1:
                x = x.flip(3)
            return cutout(x, args.cutout, gen)
        train_batches.augment = aug
    if args.channels_last:
        wrap = lambda it: ((x.contiguous(memory_format=torch.channels_last), y) for x, y in it)  # noqa: E731
    else:
        wrap = lambda it: it  # noqa: E731
    amp_dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[args.precision]
    autocast = (lambda: torch.autocast(device_type=device, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    say(args, "%s: %d training and %d test images of %dx%dx%d, %d classes; %s; %s" % (
        args.dataset, len(train.labels), len(test.labels), c, h, w, len(train.classes), args.model, device))
    if args.eval:
        loss, top1, top5, confusion = evaluate(model, wrap(test_batches), test.classes, args.tta, autocast)
        emit(workload="eval", model=args.model, dataset=args.dataset, test_loss=loss, test_accuracy=top1, test_top5=top5)
        if args.confusion:
            write_confusion(args.confusion, test.classes, confusion)
        return top1
    opt = make_optimizer(model, args)
    scaler = torch.cuda.amp.GradScaler() if args.precision == "fp16" else None
    # dynamic=False: an epoch's last batch is smaller (the training batches keep it, as cgrad does),
    # and by default a second shape makes torch.compile recompile for a symbolic batch size, whose
    # graph then serves every later step; static graphs for both sizes give compile its best speed.
    step_model = torch.compile(model, dynamic=False) if args.compile else model
    steps_per_epoch = len(train_batches)
    total = math.ceil(steps_per_epoch * args.epochs)
    log = None
    if args.log:
        log = open(args.log, "w")
        log.write("epoch,train_loss,train_accuracy,test_loss,test_accuracy,test_top5,seconds,images_per_s,device,lr\n")
    start, step, epoch = time.perf_counter(), 0, 0
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    top1 = 0.0
    while step < total:
        epoch += 1
        if augment:
            state["epoch"] = epoch - 1
        sync()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        seen = 0
        for x, y in wrap(train_batches):
            if step >= total:
                break
            factor = lr_factor(args, step, total, steps_per_epoch)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * factor
            with autocast():
                logits = step_model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            if scaler:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if args.clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad_norm)
            apply_decoupled_decay(opt)
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            step += 1
        sync()
        seconds = time.perf_counter() - t0
        train_loss, train_acc = loss_sum.item() / seen, correct.item() / seen
        test_loss, top1, top5, confusion = evaluate(step_model, wrap(test_batches), test.classes, args.tta, autocast)
        lr_now = opt.param_groups[0]["lr"]
        row = dict(epoch=epoch, train_loss=train_loss, train_accuracy=train_acc, test_loss=test_loss,
                   test_accuracy=top1, test_top5=top5, seconds=time.perf_counter() - start, images_per_s=seen / seconds,
                   device=device, lr=lr_now)
        if log:
            log.write("%d,%.6f,%.4f,%.6f,%.4f,%.4f,%.3f,%.1f,%s,%.6g\n" % tuple(row.values()))
            log.flush()
        say(args, "epoch %d  train loss %.4f  accuracy %.4f  |  test loss %.4f  accuracy %.4f  top-5 %.4f  |  %.2f s, "
            "%.0f images/s" % (epoch, train_loss, train_acc, test_loss, top1, top5, seconds, seen / seconds))
        emit(workload="train", model=args.model, dataset=args.dataset, precision=args.precision, epoch=epoch,
             train_seconds=seconds, images_per_s=seen / seconds, train_loss=train_loss, test_accuracy=top1,
             test_top5=top5)
    if log:
        log.close()
    if args.confusion:
        write_confusion(args.confusion, test.classes, confusion)
    if args.save:
        save_safetensors(args.save, model.state_dict(), {"format": "pt", "model": args.model, "dataset": args.dataset})
    print("Test accuracy on %s: %.4f" % (device, top1))
    return top1


# ---- training: airbench94's recipe for the fast network -------------------------------------------

AIRBENCH = dict(batch_size=1024, epochs=9.9, lr=11.5, momentum=0.85, weight_decay=0.0153, bias_scaler=64.0,
                label_smoothing=0.2, whiten_bias_epochs=3, translate=2, ema_every=5, ema_decay_base=0.95,
                ema_decay_pow=3.0)


def triangle(total, start, end, peak):
    """Per-step factors: linear from `start` at step 0 to 1 at int(peak total), then to `end` at `total`."""
    turn = int(peak * total)
    out = []
    for i in range(total + 1):
        if i < turn:
            out.append(start + (1 - start) * i / turn)
        else:
            out.append(1 + (end - 1) * (i - turn) / max(1, total - turn))
    return out


def airbench_optimizer(model, batch, hp=AIRBENCH):
    """airbench 0.1.8's SGD for the SUM of the per-image losses: its lr and weight decay per 1024
    images in decoupled form made into torch's (kilostep_scale = 1024 (1 + 1 / (1 - momentum))), the
    BatchNorm biases in a group at bias_scaler x the lr with weight_decay wd / lr_biases."""
    kilostep_scale = 1024 * (1 + 1 / (1 - hp["momentum"]))
    lr = hp["lr"] / kilostep_scale
    wd = hp["weight_decay"] * batch / kilostep_scale
    lr_bias = lr * hp["bias_scaler"]
    norm_biases = [p for n, p in model.named_parameters() if "norm" in n and p.requires_grad]
    others = [p for n, p in model.named_parameters() if "norm" not in n and p.requires_grad]
    opt = torch.optim.SGD([dict(params=norm_biases, lr=lr_bias, weight_decay=wd / lr_bias),
                           dict(params=others, lr=lr, weight_decay=wd / lr)], momentum=hp["momentum"], nesterov=True)
    for g in opt.param_groups:
        g["base_lr"] = g["lr"]
    return opt


class Lookahead:
    """airbench 0.1.8's LookaheadState: a copy of the state_dict when made; update(decay) moves every
    float tensor of it (weights, BatchNorm statistics) to decay ema + (1 - decay) w and sets the
    model to it."""

    def __init__(self, model):
        self.ema = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model, decay):
        for k, v in model.state_dict().items():
            if v.dtype in (torch.float16, torch.float32):
                self.ema[k].lerp_(v, 1 - decay)
                v.copy_(self.ema[k])


def lookahead_decays(total, hp=AIRBENCH):
    """airbench's alpha_schedule: 0.95^5 (t / total)^3 for t = 0 .. total, in float32."""
    return hp["ema_decay_base"] ** hp["ema_every"] * (torch.arange(total + 1) / total) ** hp["ema_decay_pow"]


def airbench_tta(model, x):
    """airbench's infer_mirror_translate (TTA level 2): the mirror mean of x, and of x moved by one
    pixel each way through a reflection pad."""
    def mirror(v):
        return 0.5 * model(v) + 0.5 * model(v.flip(3))
    logits = mirror(x)
    p = F.pad(x, (1,) * 4, mode="reflect")
    h, w = x.shape[2], x.shape[3]
    shifted = torch.stack([mirror(p[:, :, 0:h, 0:w]), mirror(p[:, :, 2:h + 2, 2:w + 2])]).mean(0)
    return 0.5 * logits + 0.5 * shifted


def airbench_run(args, train, test, device, seed, warmup_only=False):
    hp = dict(AIRBENCH)
    if args.epochs_given:
        hp["epochs"] = args.epochs
    if warmup_only:
        hp["epochs"] = min(hp["epochs"], 1.0)
    torch.manual_seed(seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    cuda = device.startswith("cuda")
    dtype = torch.float16 if cuda else torch.float32
    mean = torch.tensor(DATASETS["cifar10"][1], device=device).view(1, 3, 1, 1)
    std = torch.tensor(DATASETS["cifar10"][2], device=device).view(1, 3, 1, 1)
    images = ((torch.from_numpy(train.images).to(device).float() / 255 - mean) / std).to(dtype)
    labels = torch.from_numpy(train.labels).to(device)
    if warmup_only:  # airbench's warm-up: the same work on random labels
        labels = torch.randint(0, 10, labels.shape, device=device, generator=gen)
    test_x = ((torch.from_numpy(test.images).to(device).float() / 255 - mean) / std).to(dtype)
    test_y = torch.from_numpy(test.labels).to(device)

    model = torch_models.FastNet(3, 10).to(device)
    if cuda:
        model = model.half()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.float()
        model = model.to(memory_format=torch.channels_last)
    batch = hp["batch_size"]
    steps_per_epoch = len(labels) // batch  # drop_last
    total = math.ceil(steps_per_epoch * hp["epochs"])
    opt = airbench_optimizer(model, batch, hp)
    schedule = triangle(total, 0.2, 0.07, 0.23)
    # Lookahead: every 5 steps the weights (and BatchNorm statistics) move to a running average of
    # themselves whose decay grows as the cube of the progress; at the last step they become the
    # average. As airbench, its copy is made from the model before the whitening init.
    lookahead = Lookahead(model)
    decays = lookahead_decays(total, hp)

    timer = []
    def tick():
        if cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            timer.append(e)
        else:
            timer.append(time.perf_counter())
    def elapsed():
        if cuda:
            torch.cuda.synchronize()
            return sum(timer[i].elapsed_time(timer[i + 1]) for i in range(0, len(timer), 2)) / 1000
        return sum(timer[i + 1] - timer[i] for i in range(0, len(timer), 2))

    tick()
    torch_models.init_whitening(model.whiten, images[:5000])
    tick()
    # Augmentation as airbench's loader: a random half pre-flipped, padded by reflection once.
    flip = (torch.rand(len(images), device=device, generator=gen) < 0.5).view(-1, 1, 1, 1)
    images = torch.where(flip, images.flip(3), images)
    padded = F.pad(images, (hp["translate"],) * 4, mode="reflect")
    step, epoch = 0, 0
    loss_fn = nn.CrossEntropyLoss(label_smoothing=hp["label_smoothing"], reduction="none")
    while step < total:
        model.whiten.bias.requires_grad_(epoch < hp["whiten_bias_epochs"])
        model.train()
        tick()
        r = hp["translate"]
        dy = torch.randint(0, 2 * r + 1, (len(images),), device=device, generator=gen)
        dx = torch.randint(0, 2 * r + 1, (len(images),), device=device, generator=gen)
        rows = (dy[:, None] + torch.arange(32, device=device))[:, :, None]
        cols = (dx[:, None] + torch.arange(32, device=device))[:, None, :]
        epoch_images = padded.permute(0, 2, 3, 1)[torch.arange(len(images), device=device)[:, None, None], rows, cols]
        epoch_images = epoch_images.permute(0, 3, 1, 2)
        if epoch % 2 == 1:
            epoch_images = epoch_images.flip(3)
        order = torch.randperm(len(images), device=device, generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * batch:(i + 1) * batch]
            x = epoch_images[idx].contiguous(memory_format=torch.channels_last) if cuda else epoch_images[idx]
            loss = loss_fn(model(x), labels[idx]).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * schedule[step]
            opt.step()
            step += 1
            if step % hp["ema_every"] == 0:
                lookahead.update(model, decays[step].item())
            if step >= total:
                lookahead.update(model, 1.0)  # the weights become the running average
                break
        tick()
        epoch += 1
    seconds = elapsed()
    timer.clear()
    tick()

    # Evaluation with airbench's TTA: flips and 1-pixel translations.
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test_y), 2000):
            x = test_x[i:i + 2000]
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = airbench_tta(model, x)
            correct += (logits.argmax(1) == test_y[i:i + 2000]).sum().item()
    tick()
    return correct / len(test_y), seconds, elapsed(), total


def train_airbench(args, train, test, device):
    if args.dataset != "cifar10":
        raise InputError("--recipe airbench94: --dataset cifar10 only (the network is made for 32 x 32, 10 classes)")
    say(args, torch_models.format_summary(torch_models.summary(torch_models.FastNet(3, 10), (3, 32, 32))))
    warmups = args.warmup_runs if args.warmup_runs is not None else (1 if device.startswith("cuda") else 0)
    for _ in range(warmups):
        airbench_run(args, train, test, device, args.seed, warmup_only=True)
    accs, times, tta_times = [], [], []
    for r in range(args.runs):
        acc, seconds, tta_seconds, steps = airbench_run(args, train, test, device, args.seed + r)
        accs.append(acc)
        times.append(seconds)
        tta_times.append(tta_seconds)
        emit(workload="airbench94_twin", device=device, seed=args.seed + r, steps=steps, train_seconds=seconds,
             tta_seconds=tta_seconds, test_accuracy=acc)
    mean_a, mean_t, mean_e = float(np.mean(accs)), float(np.mean(times)), float(np.mean(tta_times))
    std_a = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
    emit(workload="airbench94_twin_total", device=device, runs=len(accs), mean_accuracy=mean_a, std_accuracy=std_a,
         mean_train_seconds=mean_t, mean_tta_seconds=mean_e)
    print("Test accuracy on %s: %.4f (mean of %d runs, std %.4f); training %.3f s per run, TTA evaluation %.3f s "
          "(airbench's total_time_seconds is their sum)" % (device, mean_a, len(accs), std_a, mean_t, mean_e))
    return mean_a


# ---- main ---------------------------------------------------------------------------------------

def parse(argv):
    p = argparse.ArgumentParser(prog=PROGRAM, description="Train the PyTorch twin of a cgrad cnn model "
                                "(bench/torch_models.py) with cnn's flags; see the top of the file.")
    a = p.add_argument
    a("--model", default="tutorial", choices=torch_models.MODELS)
    a("--dataset", default="fashion-mnist", choices=sorted(DATASETS))
    a("--data", help="where the data set is (cnn's --data)")
    a("--device", default="cpu")
    a("--epochs", type=float, default=None, help="passes over the training set (default 5; a fraction allowed)")
    a("--batch-size", type=int, default=128)
    a("--optimizer", default="adam", choices=["adam", "adamw", "sgd"])
    a("--lr", type=float, default=None, help="default 1e-3 for adam and adamw, 1e-2 for sgd")
    a("--momentum", type=float, default=0.0)
    a("--nesterov", action="store_true")
    a("--weight-decay", type=float, default=None, help="default 0 (0.01 for adamw, torch.optim.AdamW's)")
    a("--decoupled-weight-decay", action="store_true")
    a("--no-decay-bn-bias", action="store_true")
    a("--lr-schedule", default="constant", choices=["constant", "step", "cosine", "onecycle", "linear", "triangle"])
    a("--warmup", type=float, default=0.0, help="epochs of linear warm-up")
    a("--step-size", type=float, default=30.0)
    a("--gamma", type=float, default=0.1)
    a("--min-lr", type=float, default=0.0)
    a("--label-smoothing", type=float, default=0.0)
    a("--clip-grad-norm", type=float, default=0.0)
    a("--augment", choices=["on", "off"], default=None)
    a("--crop-padding", type=int, default=4)
    a("--padding-mode", choices=["zeros", "reflect"], default="zeros")
    a("--flip", choices=["random", "alternate", "off"], default="random")
    a("--cutout", type=int, default=0)
    a("--tta", action="store_true")
    a("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    a("--channels-last", action="store_true")
    a("--compile", action="store_true")
    a("--stem-stride", type=int, default=1, choices=[1, 2], help="resnet18's stem stride (default 1)")
    a("--seed", type=int, default=0)
    a("--threads", type=int, default=0)
    a("--limit", type=int, default=0, help="a class-balanced subset of N training images (cnn's)")
    a("--limit-test", type=int, default=0, help="a class-balanced subset of N test images (smoke tests on a CPU)")
    a("--log")
    a("--confusion")
    a("--save")
    a("--load")
    a("--eval", action="store_true")
    a("--recipe", choices=["airbench94"])
    a("--runs", type=int, default=1)
    a("--warmup-runs", type=int, default=None, help="airbench94: untimed runs on random labels first "
      "(default 1 on a GPU, 0 on the CPU)")
    a("--quiet", action="store_true")
    args = p.parse_args(argv)
    args.epochs_given = args.epochs is not None
    if args.epochs is None:
        args.epochs = 5.0
    if args.lr is None:
        args.lr = 1e-2 if args.optimizer == "sgd" else 1e-3
    if args.weight_decay is None:
        args.weight_decay = 1e-2 if args.optimizer == "adamw" else 0.0
    if args.augment is not None:
        args.augment = args.augment == "on"
    for name in ("epochs", "lr", "batch_size"):
        if getattr(args, name) <= 0:
            p.error("--%s must be positive" % name.replace("_", "-"))
    if not 0 <= args.label_smoothing < 1:
        p.error("--label-smoothing must be in [0, 1)")
    if args.lr_schedule == "onecycle" and args.warmup > 0:
        p.error("--warmup does not combine with --lr-schedule onecycle (it warms up itself)")
    if args.recipe:
        args.model = "fast"
        if args.dataset == "fashion-mnist":
            args.dataset = "cifar10"
    return args


def main(argv):
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            print("%s: --device %s: this torch (%s) sees no GPU" % (PROGRAM, device, torch.__version__), file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = True
        # fp32 means fp32, as in cgrad: PyTorch's default lets cuDNN's convolutions round their
        # inputs to TF32 on Tensor Cores; autocast's bf16 / fp16 products are unaffected.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    try:
        t = time.perf_counter()
        train, test = load_split(args, True), load_split(args, False)
        if args.limit:
            train = keep_balanced(train, args.limit)
        if args.limit_test:
            test = keep_balanced(test, args.limit_test)
        say(args, "data loaded in %.2f s" % (time.perf_counter() - t))
        if args.recipe == "airbench94":
            train_airbench(args, train, test, device)
        else:
            train_general(args, train, test, device)
    except (InputError, ValueError) as e:
        print("%s: %s" % (PROGRAM, e), file=sys.stderr)
        return 2
    except OSError as e:
        print("%s: %s" % (PROGRAM, e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""torch_models.py: the PyTorch twins of the models of cgrad's cnn example, for same-run comparisons.

Each model is written as PyTorch code usually writes it, with the parameter names cgrad's models
use (its checkpoints load here with load_state_dict(strict=True)):

    tutorial   the course's CNN: c1 = Conv2d(C, 32, 3, padding 1), ReLU, max_pool2d 2, c2 =
               Conv2d(32, 64, 3, padding 1), ReLU, max_pool2d 2, flatten, f1 = Linear(64 H/4 W/4,
               128), ReLU, f2 = Linear(128, K). PyTorch's default initialisation.
    tutorial-bn  the same with BatchNorm after each convolution, as a PyTorch user adds it: c1 =
               Conv2d(C, 32, 3, padding 1, bias False) (BatchNorm's mean subtraction would cancel a
               bias), bn1 = BatchNorm2d(32), ReLU, max_pool2d 2, c2 = Conv2d(32, 64, 3, padding 1,
               bias False), bn2 = BatchNorm2d(64), ReLU, max_pool2d 2, then f1 and f2 as above.
               BatchNorm with PyTorch's defaults (eps 1e-5, momentum 0.1).
    mlp        flatten, fc1 = Linear(C H W, 128), ReLU, fc2 = Linear(128, K).
    resnet18   He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), ResNet-18:
               basic blocks [2, 2, 2, 2] of widths 64, 128, 256, 512, in the CIFAR variant: the stem
               is one 3x3 convolution (stride 1, padding 1, no bias), BatchNorm, ReLU, and no max
               pooling (the ImageNet stem, a 7x7 stride-2 convolution then a stride-2 max pool,
               would shrink 32 x 32 inputs to 8 x 8 before the first block). At 64 x 64
               (TinyImageNet) the stem stays the same by default, so the first stage runs at
               64 x 64 and the last at 8 x 8: 4 times the work of a 32 x 32 image (4.44 GFLOPs
               forward for a 64 x 64 image, against 1.11); stem_stride=2 makes the stem's
               convolution stride 2, which brings the stages back to CIFAR's sizes and cost
               (FLOPs = 2 x multiply-adds of the convolutions and fc, as summary() counts). Names as
               torchvision's resnet18 (conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0 / .1,
               fc), so only the stem's weight shape differs from torchvision's. Initialisation as
               torchvision's: convolutions kaiming_normal_(mode='fan_out', nonlinearity='relu'),
               BatchNorm weight 1 and bias 0, fc PyTorch's default.
    fast       a small fast CIFAR-10 network after the published design of airbench94 (Keller
               Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU", 2024; PyPI airbench
               0.1.8): a 2x2 convolution of 3 -> 24 channels, no padding, with bias, whose weights
               are set from the training data's patch covariance (whitening) and never trained,
               GELU; three groups of [3x3 conv (no bias, 'same'), 2x2 max pool, BatchNorm, GELU,
               3x3 conv, BatchNorm, GELU] of widths 64, 256, 256; 3x3 max pool; flatten;
               Linear(256, 10, no bias); times 1/9. BatchNorm with eps 1e-12, momentum 0.4 in
               PyTorch's convention (airbench's 0.6 the other way round), weight fixed at 1 (only
               the bias learns). Convolutions: PyTorch's default init, then the first C_in output
               filters set to the identity (dirac_). The code is this project's; the facts and
               hyperparameters are airbench94's. Names: whiten, block1.conv1, block1.norm1, ...,
               head.

make_model(name, channels, height, width, classes, **options) builds one; summary(model, shape)
lists each layer, its output shape, parameters and FLOPs per image. No training here
(bench/torch_train.py does that). Works with PyTorch 1.13 (Debian) and 2.x.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = ("tutorial", "tutorial-bn", "mlp", "resnet18", "fast")


# ---- the course's models ---------------------------------------------------------------------------

class TutorialCNN(nn.Module):
    """conv3x3(C,32)-ReLU-pool2-conv3x3(32,64)-ReLU-pool2-fc(64*H/4*W/4,128)-ReLU-fc(128,K)."""

    def __init__(self, channels, height, width, classes):
        super().__init__()
        self.c1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.f1 = nn.Linear(64 * (height // 4) * (width // 4), 128)
        self.f2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.f2(F.relu(self.f1(x.flatten(1))))


class TutorialBN(nn.Module):
    """The tutorial CNN with BatchNorm: conv3x3(C,32)-BN-ReLU-pool2-conv3x3(32,64)-BN-ReLU-pool2-fc-ReLU-fc."""

    def __init__(self, channels, height, width, classes):
        super().__init__()
        self.c1 = nn.Conv2d(channels, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.f1 = nn.Linear(64 * (height // 4) * (width // 4), 128)
        self.f2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.c1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.c2(x))), 2)
        return self.f2(F.relu(self.f1(x.flatten(1))))


class MLP(nn.Module):
    """flatten, Linear(C*H*W, 128), ReLU, Linear(128, K)."""

    def __init__(self, channels, height, width, classes):
        super().__init__()
        self.fc1 = nn.Linear(channels * height * width, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


# ---- ResNet-18 ------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + s(x)),
    s the identity, or a 1x1 convolution and BatchNorm (downsample) when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class ResNet18(nn.Module):
    def __init__(self, channels=3, classes=10, stem_stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 3, stride=stem_stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths, cin = (64, 128, 256, 512), 64
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, "layer%d" % (i + 1), nn.Sequential(BasicBlock(cin, width, stride), BasicBlock(width, width, 1)))
            cin = width
        self.fc = nn.Linear(512, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---- the fast CIFAR network (after airbench94) ----------------------------------------------------

FAST_WIDTHS = (64, 256, 256)
FAST_WHITEN_WIDTH = 24  # 2 * 3 * 2 * 2: each whitening filter and its negative
FAST_BN_MOMENTUM = 0.4  # PyTorch's convention (weight of the new batch); airbench writes 0.6 = 1 - 0.4
FAST_SCALE = 1.0 / 9.0


def fast_conv(cin, cout):
    """3x3 'same' convolution without bias, default init, then the first cin filters the identity."""
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:cin])
    return conv


def fast_norm(channels):
    norm = nn.BatchNorm2d(channels, eps=1e-12, momentum=FAST_BN_MOMENTUM)
    norm.weight.requires_grad_(False)  # stays 1: only the bias learns
    return norm


class FastGroup(nn.Module):
    """conv1, 2x2 max pool, norm1, GELU, conv2, norm2, GELU (airbench94's ConvGroup)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = fast_conv(cin, cout)
        self.norm1 = fast_norm(cout)
        self.conv2 = fast_conv(cout, cout)
        self.norm2 = fast_norm(cout)

    def forward(self, x):
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class FastNet(nn.Module):
    def __init__(self, channels=3, classes=10):
        super().__init__()
        self.whiten = nn.Conv2d(channels, 2 * channels * 4, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)  # set from the data by init_whitening, never trained
        self.block1 = FastGroup(self.whiten.out_channels, FAST_WIDTHS[0])
        self.block2 = FastGroup(FAST_WIDTHS[0], FAST_WIDTHS[1])
        self.block3 = FastGroup(FAST_WIDTHS[1], FAST_WIDTHS[2])
        self.head = nn.Linear(FAST_WIDTHS[2], classes, bias=False)

    def forward(self, x):
        x = F.gelu(self.whiten(x))
        x = self.block3(self.block2(self.block1(x)))
        x = F.max_pool2d(x, 3)  # 3 x 3 -> 1 x 1 for 32 x 32 inputs
        return self.head(x.flatten(1)) * FAST_SCALE


@torch.no_grad()
def init_whitening(conv, images, eps=5e-4):
    """Sets conv's weight (2D, D, k, k with D = C k k) from the covariance of every k x k patch of
    images (N, C, H, W), normalised: the eigenvectors of the patch covariance divided by
    sqrt(eigenvalue + eps), largest eigenvalue first, then the same filters negated. The patches
    are taken in float32 and the covariance is the uncentred one, (P^T P) / number of patches."""
    c, k = images.shape[1], conv.weight.shape[-1]
    patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)
    covariance = patches.T @ patches / patches.shape[0]
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.flip(0)
    filters = (eigenvectors / torch.sqrt(eigenvalues + eps)[:, None]).reshape(-1, c, k, k)
    conv.weight.copy_(torch.cat((filters, -filters)).to(conv.weight.dtype))


# ---- building and describing ----------------------------------------------------------------------

def make_model(name, channels, height, width, classes, stem_stride=1):
    if name == "tutorial":
        if height < 4 or width < 4:
            raise ValueError("images of %dx%d are too small for the tutorial CNN (two 2x2 poolings)" % (height, width))
        return TutorialCNN(channels, height, width, classes)
    if name == "tutorial-bn":
        if height < 4 or width < 4:
            raise ValueError("images of %dx%d are too small for the tutorial-bn CNN (two 2x2 poolings)" % (height, width))
        return TutorialBN(channels, height, width, classes)
    if name == "mlp":
        return MLP(channels, height, width, classes)
    if name == "resnet18":
        return ResNet18(channels, classes, stem_stride)
    if name == "fast":
        if (height, width) != (32, 32):
            raise ValueError("the fast network is made for 32 x 32 images (its last pooling is 3 x 3), not %dx%d"
                             % (height, width))
        return FastNet(channels, classes)
    raise ValueError("'%s' is not a model (%s)" % (name, ", ".join(MODELS)))


def summary(model, shape, device="cpu"):
    """Rows (name, kind, output shape, parameters, FLOPs per image) for the layers that hold weights
    or change the shape, and the totals. FLOPs: 2 x the multiply-adds of convolutions and linear
    layers (the usual count; BatchNorm, activations, pooling and adds are left out)."""
    rows, hooks = [], []

    def hook(name):
        def record(module, inputs, output):
            params = sum(p.numel() for p in module.parameters(recurse=False))
            flops = 0
            if isinstance(module, nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
                flops = 2 * k * output[0].numel()
            elif isinstance(module, nn.Linear):
                flops = 2 * module.in_features * module.out_features
            rows.append((name, type(module).__name__, tuple(output.shape[1:]), params, flops))
        return record

    for name, module in model.named_modules():
        if len(list(module.children())) == 0:
            hooks.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros((1,) + tuple(shape), device=device, dtype=next(model.parameters()).dtype))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return rows


def format_summary(rows):
    lines = ["%-28s %-12s %-18s %12s %16s" % ("layer", "kind", "output", "parameters", "FLOPs/image")]
    for name, kind, shape, params, flops in rows:
        lines.append("%-28s %-12s %-18s %12s %16s" % (name, kind, "x".join(str(s) for s in shape),
                                                      "{:,}".format(params), "{:,}".format(flops)))
    total_p, total_f = sum(r[3] for r in rows), sum(r[4] for r in rows)
    lines.append("%-28s %-12s %-18s %12s %16s" % ("total", "", "", "{:,}".format(total_p), "{:,}".format(total_f)))
    return "\n".join(lines)


if __name__ == "__main__":
    # python3 bench/torch_models.py: the summaries of the models at their usual sizes.
    for name, shape, classes in (("tutorial", (3, 32, 32), 10), ("tutorial-bn", (1, 28, 28), 10),
                                 ("resnet18", (3, 32, 32), 10), ("resnet18", (3, 64, 64), 200),
                                 ("fast", (3, 32, 32), 10)):
        print("%s on %s, %d classes" % (name, "x".join(map(str, shape)), classes))
        print(format_summary(summary(make_model(name, *shape, classes), shape)))
        print()

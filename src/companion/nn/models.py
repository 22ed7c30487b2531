"""The paper's architectures (Section 2.1, Figure 1, Tables 3 and 4, Appendix A.1).

=============  =====================================================================
name           network
=============  =====================================================================
``d-conv``     8 conv3x3 layers (widths α, 2α, 2α, 4α, 4α, 8α, 8α, 16α; stride 2 on the
               even layers), then FC(64α), FC(c) — Table 3
``d-local``    D-CONV with every convolution replaced by a locally connected layer
``d-fc``       D-CONV with every convolution replaced by a fully-connected layer
``s-conv``     conv9x9(α, stride 2), FC(24α), FC(c) — Table 4
``s-local``    S-CONV with the convolution replaced by a locally connected layer
``s-fc``       S-CONV with the convolution replaced by a fully-connected layer
``3-fc``       two hidden layers of equal width; **α is the hidden width** (Appendix A.1)
``resnet18``   ResNet18, CIFAR variant (3x3 stem, no max-pool; Appendix A.1); α is the
               width of the first stage (64 in He et al. 2016), ``kernel_size`` the kernel of
               the residual blocks (Section 4.2, Figure 5)
=============  =====================================================================

Every layer but the last is followed by batch-norm and ReLU (Figure 1). Layers followed by
batch-norm carry no bias (the batch-norm shift plays its role); the last layer has one.
Batch-norm is per channel (``BatchNorm2d``) after convolutional and locally connected layers and
per unit (``BatchNorm1d``) after fully-connected ones, where there are no channels to share
statistics across. ``dropout > 0`` adds dropout before each of the last two FC layers (A.2).

Each model carries two attributes used by the optimiser and the analysis:

- ``paper_layers``: names of the weight layers in table order (``conv1`` … ``fc2``);
- ``conv_positions``: names of the layers that sit where the CONV network has convolutions
  (β-LASSO gives them their own λ, Section 4.1).
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from companion.checks import check_int
from companion.nn.layers import LocallyConnected2d, conv_output_size

MODEL_NAMES = ("d-conv", "d-local", "d-fc", "s-conv", "s-local", "s-fc", "3-fc", "resnet18")
VARIANTS = ("conv", "local", "fc")


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of D-CONV / S-CONV: ``conv{k}x{k}(width·α, stride)``."""

    name: str
    width: int  # output channels in units of α
    kernel_size: int
    stride: int
    padding: int


#: Table 3: D-CONV's convolutions, then FC(64α) and FC(c)
D_CONV = (
    ConvSpec("conv1", 1, 3, 1, 1),
    ConvSpec("conv2", 2, 3, 2, 1),
    ConvSpec("conv3", 2, 3, 1, 1),
    ConvSpec("conv4", 4, 3, 2, 1),
    ConvSpec("conv5", 4, 3, 1, 1),
    ConvSpec("conv6", 8, 3, 2, 1),
    ConvSpec("conv7", 8, 3, 1, 1),
    ConvSpec("conv8", 16, 3, 2, 1),
)
D_FC_WIDTH = 64  # fc1 = FC(64α)

#: Table 4: S-CONV's single convolution (stride 2, padding 4 keeps s/2 × s/2), then FC(24α), FC(c)
S_CONV = (ConvSpec("conv1", 1, 9, 2, 4),)
S_FC_WIDTH = 24  # fc1 = FC(24α)


def family(name: str) -> tuple[str, str]:
    """Split ``"s-local"`` into ``("s", "local")``; ``3-fc`` and ``resnet18`` are their own family."""
    depth, _, variant = name.partition("-")
    return depth, variant


def check_model_args(
    name: str,
    alpha,
    *,
    image_size=32,
    in_channels=3,
    num_classes=10,
    dropout=0.0,
    kernel_size=None,
) -> dict:
    """Validate :func:`build_model`'s arguments; return them normalised. Raises ``ValueError``."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; accepted: {', '.join(MODEL_NAMES)}")
    alpha = check_int(f"{name}: alpha (base channels)", alpha, minimum=1)
    image_size = check_int(f"{name}: image_size", image_size, minimum=1)
    in_channels = check_int(f"{name}: in_channels", in_channels, minimum=1)
    num_classes = check_int(f"{name}: num_classes", num_classes, minimum=2)
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout!r}")
    depth = family(name)[0]
    if depth == "d" and image_size % 16:
        raise ValueError(
            f"{name}: image_size must be a multiple of 16 (four stride-2 layers, Table 3), got {image_size}"
        )
    if depth == "s" and (image_size % 2 or image_size < 2):
        raise ValueError(
            f"{name}: image_size must be even (the stride-2 conv9x9 gives s/2 x s/2, Table 4), got {image_size}"
        )
    if name == "resnet18":
        if image_size < 8:
            raise ValueError(f"resnet18: image_size must be >= 8 (three stride-2 stages), got {image_size}")
        kernel_size = 3 if kernel_size is None else kernel_size
        kernel_size = check_int("resnet18: kernel_size", kernel_size, minimum=3)
        if kernel_size % 2 == 0:
            raise ValueError(f"resnet18: kernel_size must be an odd integer >= 3, got {kernel_size}")
    elif kernel_size is not None:
        raise ValueError(
            f"{name}: kernel_size is an option of resnet18 only (Figure 5); the kernels of {name} are fixed by Tables 3/4"
        )
    return dict(
        name=name,
        alpha=alpha,
        image_size=image_size,
        in_channels=in_channels,
        num_classes=num_classes,
        dropout=float(dropout),
        kernel_size=kernel_size,
    )


def build_model(
    name: str,
    alpha: int,
    *,
    image_size: int = 32,
    in_channels: int = 3,
    num_classes: int = 10,
    dropout: float = 0.0,
    kernel_size: int | None = None,
    device=None,
) -> nn.Module:
    """Build one of :data:`MODEL_NAMES` with ``alpha`` base channels.

    Arguments are checked before anything is built (one ``ValueError`` naming the accepted
    values). ``device="meta"`` builds without memory, e.g. to count S-FC α=150's 256 M parameters.
    """
    args = check_model_args(
        name,
        alpha,
        image_size=image_size,
        in_channels=in_channels,
        num_classes=num_classes,
        dropout=dropout,
        kernel_size=kernel_size,
    )
    with torch.device(device) if device is not None else nullcontext():
        if name == "3-fc":
            model = _three_fc(**args)
        elif name == "resnet18":
            model = ResNet18(**args)
        else:
            model = _paper_net(**args)
    model.config = args
    return model


def _block(*modules: tuple[str, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(modules))


def _paper_net(name, alpha, image_size, in_channels, num_classes, dropout, kernel_size) -> nn.Sequential:
    """D-/S- CONV, LOCAL or FC (Tables 3 and 4): same shapes, different connectivity."""
    depth, variant = family(name)
    specs, fc_width = (D_CONV, D_FC_WIDTH) if depth == "d" else (S_CONV, S_FC_WIDTH)
    blocks: list[tuple[str, nn.Module]] = []
    channels, size = in_channels, image_size
    for spec in specs:
        out_channels = spec.width * alpha
        out_size = conv_output_size(size, spec.kernel_size, spec.stride, spec.padding)
        if variant == "conv":
            layer = nn.Conv2d(channels, out_channels, spec.kernel_size, spec.stride, spec.padding, bias=False)
            norm = nn.BatchNorm2d(out_channels)
        elif variant == "local":
            layer = LocallyConnected2d(
                channels, out_channels, size, spec.kernel_size, spec.stride, spec.padding, bias=False
            )
            norm = nn.BatchNorm2d(out_channels)
        else:
            layer = nn.Linear(channels * size * size, out_channels * out_size * out_size, bias=False)
            norm = nn.BatchNorm1d(out_channels * out_size * out_size)
        modules = [("layer", layer), ("bn", norm), ("act", nn.ReLU(inplace=True))]
        if variant == "fc" and spec is specs[0]:
            modules.insert(0, ("flatten", nn.Flatten()))
        blocks.append((spec.name, _block(*modules)))
        channels, size = out_channels, out_size
    features = channels * size * size
    head_in = [("flatten", nn.Flatten())] if variant != "fc" else []
    blocks += _head(head_in, features, fc_width * alpha, num_classes, dropout)
    model = nn.Sequential(OrderedDict(blocks))
    model.paper_layers = tuple(f"{n}.layer" for n, _ in blocks)
    model.conv_positions = tuple(f"{spec.name}.layer" for spec in specs)
    return model


def _head(prefix, features, hidden, num_classes, dropout, names=("fc1", "fc2")):
    """FC(hidden) + BN + ReLU, then FC(c); dropout before both when asked (Appendix A.2)."""
    drop = [("dropout", nn.Dropout(dropout))] if dropout > 0 else []
    fc1 = prefix + drop + [
        ("layer", nn.Linear(features, hidden, bias=False)),
        ("bn", nn.BatchNorm1d(hidden)),
        ("act", nn.ReLU(inplace=True)),
    ]
    fc2 = [("dropout", nn.Dropout(dropout))] if dropout > 0 else []
    fc2 += [("layer", nn.Linear(hidden, num_classes))]
    return [(names[0], _block(*fc1)), (names[1], _block(*fc2))]


def _three_fc(name, alpha, image_size, in_channels, num_classes, dropout, kernel_size) -> nn.Sequential:
    """3-FC: two hidden layers of width α with batch-norm and ReLU (Appendix A.1)."""
    first = [
        ("flatten", nn.Flatten()),
        ("layer", nn.Linear(in_channels * image_size * image_size, alpha, bias=False)),
        ("bn", nn.BatchNorm1d(alpha)),
        ("act", nn.ReLU(inplace=True)),
    ]
    blocks = [("fc1", _block(*first))] + _head([], alpha, alpha, num_classes, dropout, names=("fc2", "fc3"))
    model = nn.Sequential(OrderedDict(blocks))
    model.paper_layers = ("fc1.layer", "fc2.layer", "fc3.layer")
    model.conv_positions = ()
    return model


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016) with a configurable kernel size."""

    def __init__(self, in_channels: int, channels: int, stride: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet18, CIFAR variant: 3x3 stem, no max-pool (Appendix A.1); blocks use ``kernel_size``."""

    def __init__(self, name, alpha, image_size, in_channels, num_classes, dropout, kernel_size):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, alpha, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(alpha)
        stages, channels = [], alpha
        for i, stride in enumerate((1, 2, 2, 2)):
            width = alpha * 2**i
            stages.append(
                nn.Sequential(
                    BasicBlock(channels, width, stride, kernel_size),
                    BasicBlock(width, width, 1, kernel_size),
                )
            )
            channels = width
        self.layers = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)
        convs = tuple(n for n, m in self.named_modules() if isinstance(m, nn.Conv2d))
        self.conv_positions = convs
        self.paper_layers = convs + ("fc",)

    def forward(self, x):
        out = torch.relu(self.bn(self.stem(x)))
        out = self.layers(out)
        out = torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1)
        return self.fc(self.dropout(out))

"""Training-time data augmentation, computed on whole batches on the training device (Appendix A.2).

The paper trains every model "with ... data augmentation proposed in Lim et al. (2019)", i.e. Fast
AutoAugment. Its pipeline, per image (the authors' order):

1. the searched policy on the uint8 image (``fa_reduced_cifar10`` for CIFAR-10/100,
   ``fa_reduced_svhn`` for SVHN): one sub-policy drawn uniformly, each of its two operations fires
   independently with its probability, in order;
2. random crop with 4-pixel zero padding, random horizontal flip;
3. conversion to float and per-channel normalisation;
4. Cutout (DeVries & Taylor, 2017): one square of side 16 (CIFAR) or 20 (SVHN) set to 0, its
   centre uniform over the image (the square is clipped at the borders).

Everything here is computed with torch ops on whole batches (no per-image Python loop), all
randomness from the ``torch.Generator`` passed in. Per-image magnitudes are *batched
parameters*, not a loop over distinct values: the geometric ops (shear / translate / rotate) are one
gather with a per-image affine index grid, the enhance ops one per-image blend, posterize one
per-image bit mask, solarize one per-image threshold. Each op reproduces Pillow's arithmetic
(the library the authors apply the policy with): nearest-neighbour affine in Pillow's 16.16 fixed
point, Pillow's integer grey level, SMOOTH filter and truncating blend, so the results agree with
the per-image PIL path (tests/test_augment.py measures by how much).

``make_augment(kind, dataset)`` with ``kind`` in :data:`AUGMENTATIONS`:
``"none"`` = normalise only; ``"flip-crop"`` = steps 2-3; ``"fast-autoaugment"`` = steps 1-4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as nnf

from companion.data.fast_autoaugment import FastAutoAugment, check_images, cutout, rand, randint

AUGMENTATIONS = ("none", "flip-crop", "fast-autoaugment")

#: Per-channel (R, G, B) mean and standard deviation of the pixel values in [0, 1] over the full
#: official training sets: the widely published values (e.g. in the CIFAR / SVHN training code
#: of Cutout, DeVries & Taylor 2017, and torchvision's reference scripts). The CIFAR-10 values are
#: checked against the bit-exact CIFAR-10 images in tests/test_augment.py. "synthetic" is uniform
#: uint8 noise: mean 127.5/255, std sqrt((256^2 - 1)/12)/255, from its generating distribution.
MEAN = {
    "cifar10": (0.4914, 0.4822, 0.4465),
    "cifar100": (0.5071, 0.4865, 0.4409),
    "svhn": (0.4377, 0.4438, 0.4728),
    "synthetic": (0.5, 0.5, 0.5),
}
STD = {
    "cifar10": (0.2470, 0.2435, 0.2616),
    "cifar100": (0.2673, 0.2564, 0.2762),
    "svhn": (0.1980, 0.2010, 0.1970),
    "synthetic": (math.sqrt((256**2 - 1) / 12) / 255,) * 3,
}
#: Cutout side after normalisation (Lim et al. 2019 / DeVries & Taylor 2017).
CUTOUT_SIDE = {"cifar10": 16, "cifar100": 16, "svhn": 20, "synthetic": 16}
#: Which published policy each dataset uses (synthetic: the CIFAR-10 one).
POLICY_FOR = {
    "cifar10": "fa_reduced_cifar10",
    "cifar100": "fa_reduced_cifar10",
    "svhn": "fa_reduced_svhn",
    "synthetic": "fa_reduced_cifar10",
}
CROP_PADDING = 4

# --------------------------------------------------------------------------- public API


def normalize(x: torch.Tensor, dataset: str) -> torch.Tensor:
    """uint8 N×C×H×W -> float32 (x/255 - mean) / std with the dataset's channel statistics."""
    if dataset not in MEAN:
        raise ValueError(f"unknown dataset {dataset!r}; accepted: {', '.join(MEAN)}")
    check_images(x)
    mean = torch.tensor(MEAN[dataset], dtype=torch.float64)
    std = torch.tensor(STD[dataset], dtype=torch.float64)
    # x * 1/(255 std) - mean/std, in place on the one new float tensor
    scale = (1.0 / (255.0 * std)).float().to(x.device).view(1, -1, 1, 1)
    shift = (-mean / std).float().to(x.device).view(1, -1, 1, 1)
    return x.float().mul_(scale).add_(shift)


def make_augment(kind: str, dataset: str) -> Augment:
    """The training augmentation ``kind`` (one of :data:`AUGMENTATIONS`) for ``dataset``.

    Returns a callable ``(x_uint8 N×C×H×W, generator) -> float32 normalised N×C×H×W``.
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; accepted: {', '.join(AUGMENTATIONS)}")
    if dataset not in MEAN:
        raise ValueError(f"unknown dataset {dataset!r}; accepted: {', '.join(MEAN)}")
    return Augment(kind, dataset)


@dataclass(frozen=True)
class Augment:
    """``make_augment``'s callable; see the module docstring for the pipelines."""

    kind: str
    dataset: str

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_images(x)
        if not isinstance(generator, torch.Generator):
            raise ValueError(
                f"augmentation needs a torch.Generator, got {type(generator).__name__}"
            )
        if self.kind == "none":
            return normalize(x, self.dataset)
        if self.kind == "fast-autoaugment":
            x = _fast_autoaugment(POLICY_FOR[self.dataset])(x, generator)
        x = normalize(random_crop_flip(x, generator), self.dataset)
        if self.kind == "fast-autoaugment":
            x = random_cutout(x, CUTOUT_SIDE[self.dataset], generator)
        return x


# --------------------------------------------------------------------------- crop, flip, cutout


def crop_flip(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    flip: torch.Tensor,
    padding: int = CROP_PADDING,
) -> torch.Tensor:
    """Crop each image of ``x`` zero-padded by ``padding`` at (top[i], left[i]) of the padded image,
    then mirror it horizontally where flip[i]: one gather with per-image index grids."""
    n, c, h, w = x.shape
    padded = nnf.pad(x, (padding,) * 4)
    rows = top.view(n, 1) + torch.arange(h, device=x.device)
    cols = left.view(n, 1) + torch.arange(w, device=x.device)
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols)
    index = rows.view(n, h, 1) * (w + 2 * padding) + cols.view(n, 1, w)
    index = index.view(n, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, -1).gather(2, index).view(n, c, h, w)


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = CROP_PADDING):
    """RandomCrop(size, padding) then RandomHorizontalFlip(0.5), per image, batched."""
    n = x.shape[0]
    offsets = randint(2 * padding + 1, (2, n), generator, x.device)
    flip = rand((n,), generator, x.device) < 0.5
    return crop_flip(x, offsets[0], offsets[1], flip, padding)


def random_cutout(x: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """Cutout after normalisation: a side×side square set to 0, centre uniform over the pixels."""
    n, _, h, w = x.shape
    centre = torch.stack(
        [randint(h, (n,), generator, x.device), randint(w, (n,), generator, x.device)], 1
    )
    return cutout(x, side, centre, 0.0)


@lru_cache(maxsize=None)
def _fast_autoaugment(name: str) -> FastAutoAugment:
    return FastAutoAugment(name)



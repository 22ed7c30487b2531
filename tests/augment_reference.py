"""Per-image Pillow reference of the Fast AutoAugment ops (Lim et al. 2019).

The slow, independent reference that the batched ops of :mod:`companion.data.augment` are tested
against (tests/test_augment.py) and timed against (benchmarks/bench_augment.py): one PIL image
and one magnitude at a time, the way the authors' code applies the AutoAugment ops (Cubuk et
al. 2019). Values ``v`` are magnitudes after the level mapping and sign flip (see
:data:`companion.data.fast_autoaugment.OP_RANGES`). Pillow is imported here only, not by ``companion``.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from companion.data.fast_autoaugment import CUTOUT_FILL

ENHANCE = {
    "Contrast": ImageEnhance.Contrast,
    "Color": ImageEnhance.Color,
    "Brightness": ImageEnhance.Brightness,
    "Sharpness": ImageEnhance.Sharpness,
}


def pil_cutout(img: Image.Image, v: float, cy: int, cx: int) -> Image.Image:
    """Cutout op: a square of side round(v * width) centred at (cy, cx), filled with CUTOUT_FILL
    (clipped at the border; a copy of img)."""
    side = round(v * img.size[0])
    img = img.copy()
    if side > 0:
        y0, x0 = cy - side // 2, cx - side // 2
        ImageDraw.Draw(img).rectangle((x0, y0, x0 + side - 1, y0 + side - 1), fill=CUTOUT_FILL)
    return img


def pil_op(img: Image.Image, name: str, v: float, rng: random.Random | None = None) -> Image.Image:
    """One Fast AutoAugment op on one PIL image with value v. Cutout draws its centre from rng
    (uniform over the pixels, only when the square is non-empty); for a given centre use
    :func:`pil_cutout`."""
    w, h = img.size
    if name == "ShearX":
        return img.transform(img.size, Image.AFFINE, (1, v, 0, 0, 1, 0))
    if name == "ShearY":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, v, 1, 0))
    if name == "TranslateX":
        return img.transform(img.size, Image.AFFINE, (1, 0, v * w, 0, 1, 0))
    if name == "TranslateY":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, v * h))
    if name == "Rotate":
        return img.rotate(v)
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Invert":
        return ImageOps.invert(img)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name == "Solarize":
        return ImageOps.solarize(img, v)
    if name == "Posterize":
        return ImageOps.posterize(img, int(v))
    if name in ENHANCE:
        return ENHANCE[name](img).enhance(v)
    if name == "Cutout":
        if rng is None:
            raise ValueError("the Cutout op draws its centre from rng; pass rng or use pil_cutout")
        if round(v * w) <= 0:
            return img
        return pil_cutout(img, v, rng.randrange(h), rng.randrange(w))
    raise ValueError(f"unknown operation {name!r}")

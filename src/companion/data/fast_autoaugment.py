"""The Fast AutoAugment operation table and policies (Lim et al., 2019), batched on the device.

The published policies (``resources/fast_autoaugment.json``), each operation's magnitude range
(:data:`OP_RANGES`), the ops themselves on whole uint8 batches, reproducing Pillow's arithmetic
(nearest-neighbour affine in 16.16 fixed point, integer grey level, SMOOTH filter, truncating
blend; ``tests/test_augment.py`` compares them with the per-image PIL path), Cutout, and the
random-number and image checks the pipelines of :mod:`companion.data.augment` share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import torch
import torchvision.transforms.v2.functional as TF

POLICIES = ("fa_reduced_cifar10", "fa_reduced_svhn")
#: Fast AutoAugment operations and their magnitude range: value = level * (high - low) + low.
#: Translate values are fractions of the image size; Cutout's is the square side as a fraction
#: of the image size; Solarize's the threshold; Posterize's the bits kept (truncated to int);
#: Contrast / Color / Brightness / Sharpness a PIL ImageEnhance factor (1 = identity).
OP_RANGES = {
    "ShearX": (-0.3, 0.3),
    "ShearY": (-0.3, 0.3),
    "TranslateX": (-0.45, 0.45),
    "TranslateY": (-0.45, 0.45),
    "Rotate": (-30.0, 30.0),
    "AutoContrast": (0.0, 1.0),
    "Invert": (0.0, 1.0),
    "Equalize": (0.0, 1.0),
    "Solarize": (0.0, 256.0),
    "Posterize": (4.0, 8.0),
    "Contrast": (0.1, 1.9),
    "Color": (0.1, 1.9),
    "Brightness": (0.1, 1.9),
    "Sharpness": (0.1, 1.9),
    "Cutout": (0.0, 0.2),
}
OPS = tuple(OP_RANGES)
GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
#: value sign flipped with probability 0.5 (the geometric ops)
SIGNED_OPS = GEOMETRIC_OPS
CUTOUT_FILL = (125, 123, 114)  # Fast AutoAugment's Cutout op fill (RGB)


# --------------------------------------------------------------------------- Fast AutoAugment


def load_policy(name: str) -> list:
    """A published Fast AutoAugment policy (resources/fast_autoaugment.json, Lim et al. 2019)."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; accepted: {', '.join(POLICIES)}")
    return _policies()[name]


@lru_cache(maxsize=1)
def _policies() -> dict:
    text = resources.files("companion.data").joinpath("resources/fast_autoaugment.json").read_text()
    return json.loads(text)


@dataclass
class PolicyDraw:
    """The random choices for one batch, per image i and op slot j: ``op[i, j]`` (index into
    :data:`OPS`), ``fire[i, j]``, ``value[i, j]`` (sign flips applied) and ``centre[i, j]``
    (row, col; used by Cutout)."""

    subpolicy: torch.Tensor
    op: torch.Tensor
    fire: torch.Tensor
    value: torch.Tensor
    centre: torch.Tensor


class FastAutoAugment:
    """Apply a Fast AutoAugment policy (a name in :data:`POLICIES` or a list of sub-policies
    ``[[name, probability, level], ...]``) to uint8 N×C×H×W batches."""

    def __init__(self, policy: str | list):
        subpolicies = load_policy(policy) if isinstance(policy, str) else policy
        self.name = policy if isinstance(policy, str) else "custom"
        if not subpolicies or len({len(sp) for sp in subpolicies}) != 1 or not subpolicies[0]:
            raise ValueError(
                "a policy is a non-empty list of sub-policies of equal, non-zero length"
            )
        for sp in subpolicies:
            for op in sp:
                valid = len(op) == 3 and op[0] in OP_RANGES
                if not valid or not (0 <= op[1] <= 1 and 0 <= op[2] <= 1):
                    raise ValueError(
                        f"bad policy operation {op!r}: expected [name, probability, level] with "
                        f"name in {', '.join(OPS)} and probability, level in [0, 1]"
                    )
        self.op = torch.tensor([[OPS.index(o[0]) for o in sp] for sp in subpolicies])
        self.prob = torch.tensor([[o[1] for o in sp] for sp in subpolicies], dtype=torch.float64)
        self.level = torch.tensor([[o[2] for o in sp] for sp in subpolicies], dtype=torch.float64)
        self._low = torch.tensor([OP_RANGES[o][0] for o in OPS], dtype=torch.float64)
        self._high = torch.tensor([OP_RANGES[o][1] for o in OPS], dtype=torch.float64)
        self._signed = torch.tensor([o in SIGNED_OPS for o in OPS])
        self._on_device: dict = {}

    def __len__(self) -> int:
        return self.op.shape[0]

    def __repr__(self) -> str:
        return f"FastAutoAugment({self.name!r}, {len(self)} sub-policies)"

    def sample(self, n: int, h: int, w: int, generator: torch.Generator, device) -> PolicyDraw:
        """Draw sub-policies, firing, sign flips and Cutout centres for ``n`` images."""
        k = self.op.shape[1]
        sub = randint(len(self), (n,), generator, device)
        fire_u = rand((n, k), generator, device)
        flip = rand((n, k), generator, device) < 0.5
        centre = torch.stack(
            [randint(h, (n, k), generator, device), randint(w, (n, k), generator, device)], -1
        )
        op_table, prob, level, low, high, signed = self._tables(torch.device(device))
        op = op_table[sub]
        value = level[sub] * (high - low)[op] + low[op]
        value = torch.where(signed[op] & flip, -value, value)
        return PolicyDraw(sub, op, fire_u < prob[sub], value, centre)

    def _tables(self, device: torch.device) -> tuple:
        if device not in self._on_device:
            tables = (self.op, self.prob, self.level, self._low, self._high, self._signed)
            self._on_device[device] = tuple(t.to(device) for t in tables)
        return self._on_device[device]

    def apply(self, x: torch.Tensor, draw: PolicyDraw) -> torch.Tensor:
        """Run the drawn ops, slot by slot; each op once on the sub-batch of images it fires on."""
        x = x.clone()
        geometric = torch.tensor([o in GEOMETRIC_OPS for o in OPS], device=x.device)
        groups = OPS + ("<geometric>", "<none>")
        for j in range(draw.op.shape[1]):
            op, value, centre = draw.op[:, j], draw.value[:, j], draw.centre[:, j]
            group = torch.where(geometric[op], len(OPS), op)
            group = torch.where(draw.fire[:, j], group, len(OPS) + 1)
            order = torch.argsort(group, stable=True)
            counts = torch.bincount(group, minlength=len(groups)).tolist()  # one sync per slot
            for name, idx in zip(groups[:-1], order.split(counts)):
                if idx.numel() == 0:
                    continue
                if name == "<geometric>":
                    matrix = _affine_matrix(op[idx], value[idx], *x.shape[-2:])
                    x[idx] = affine_nearest(x[idx], matrix)
                else:
                    x[idx] = apply_op(x[idx], name, value[idx], centre=centre[idx])
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_images(x)
        n, _, h, w = x.shape
        return self.apply(x, self.sample(n, h, w, generator, x.device))


def apply_op(
    x: torch.Tensor, name: str, value: torch.Tensor, *, centre: torch.Tensor | None = None
) -> torch.Tensor:
    """Fast AutoAugment operation ``name`` on uint8 N×C×H×W ``x`` with per-image ``value`` (N,)
    (the magnitude after the level mapping and sign flip; see :data:`OP_RANGES`). Cutout also
    needs ``centre`` (N, 2) = (row, col)."""
    if name not in OP_RANGES:
        raise ValueError(f"unknown operation {name!r}; accepted: {', '.join(OPS)}")
    n, c, h, w = x.shape
    value = torch.as_tensor(value, dtype=torch.float64, device=x.device).expand(n)
    if name in GEOMETRIC_OPS:
        op = torch.full((n,), OPS.index(name), device=x.device)
        return affine_nearest(x, _affine_matrix(op, value, h, w))
    if name == "AutoContrast":
        return _autocontrast(x)
    if name == "Invert":
        return TF.invert(x)
    if name == "Equalize":
        return TF.equalize(x)
    if name == "Solarize":  # pixels >= threshold are inverted
        return torch.where(x >= value.view(n, 1, 1, 1), 255 - x, x)
    if name == "Posterize":  # keep the int(value) high bits
        bits = value.long().clamp(0, 8)
        mask = torch.bitwise_left_shift(torch.full_like(bits, 255), 8 - bits) & 255
        mask = mask.to(torch.uint8)
        return x & mask.view(n, 1, 1, 1)
    if name == "Brightness":
        return _blend(torch.zeros_like(x), x, value)
    if name == "Color":
        return _blend(_grey(x).expand(n, c, h, w), x, value)
    if name == "Contrast":
        mean = torch.floor(_grey(x).double().mean(dim=(1, 2, 3)) + 0.5)
        return _blend(mean.view(n, 1, 1, 1).expand(n, c, h, w), x, value)
    if name == "Sharpness":
        return _blend(_smooth(x), x, value)
    # Cutout: side = round(value * image size) pixels, integer centre, filled with CUTOUT_FILL.
    # (The published description fixes the side fraction, a uniform centre and the fill; this
    # pixel rounding is our choice.)
    if centre is None:
        raise ValueError("the Cutout operation needs centre=(row, col) per image")
    side = torch.round(value * min(h, w)).long()
    return cutout(x, side, centre, CUTOUT_FILL[:c])


def _affine_matrix(op: torch.Tensor, value: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per-image Pillow AFFINE data (a, b, c, d, e, f): output (x, y) samples the input at
    (a x + b y + c, d x + e y + f). ShearX (1, v, 0, 0, 1, 0), ShearY (1, 0, 0, v, 1, 0),
    TranslateX by v·W pixels, TranslateY by v·H, Rotate by v degrees about the centre."""
    value = value.double()
    one, zero = torch.ones_like(value), torch.zeros_like(value)
    a, b, c, d, e, f = one, zero, zero, zero, one, zero
    b = torch.where(op == OPS.index("ShearX"), value, b)
    d = torch.where(op == OPS.index("ShearY"), value, d)
    c = torch.where(op == OPS.index("TranslateX"), value * w, c)
    f = torch.where(op == OPS.index("TranslateY"), value * h, f)
    # Image.rotate(v): inverse map by -v degrees about (W/2, H/2)
    rot = op == OPS.index("Rotate")
    theta = -torch.deg2rad(value)
    cos, sin = torch.cos(theta), torch.sin(theta)
    cx, cy = w / 2.0, h / 2.0
    a = torch.where(rot, cos, a)
    b = torch.where(rot, sin, b)
    c = torch.where(rot, -cos * cx - sin * cy + cx, c)
    d = torch.where(rot, -sin, d)
    e = torch.where(rot, cos, e)
    f = torch.where(rot, sin * cx - cos * cy + cy, f)
    return torch.stack([a, b, c, d, e, f], 1)


def affine_nearest(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Pillow's nearest-neighbour ``Image.transform(AFFINE, data)`` for a batch, one 6-vector of
    data per image, uncovered pixels black. Pillow samples pixel centres: input coordinate
    u = a (x + ½) + b (y + ½) + c, pixel floor(u); it uses 16.16 fixed point unless b = d = 0
    (pure scale / translation, double precision). Both are reproduced, so results match bit for bit
    except where cos/sin differ in the last bit from C's."""
    n, ch, h, w = x.shape
    m = matrix.double().to(x.device)
    a, b, c, d, e, f = (m[:, i].view(n, 1, 1) for i in range(6))
    ys = torch.arange(h, device=x.device, dtype=torch.int32).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=torch.int32).view(1, 1, w)

    def fix(v):  # 16.16 fixed point, rounded as Pillow's FIX macro; |coordinates| < 2^15
        return torch.floor(v * 65536.0 + 0.5).int()

    col_fixed = (fix(c + a * 0.5 + b * 0.5) + xs * fix(a) + ys * fix(b)) >> 16
    row_fixed = (fix(f + d * 0.5 + e * 0.5) + xs * fix(d) + ys * fix(e)) >> 16
    col_float = torch.floor(c + a * (xs + 0.5)).int()  # n×1×W
    row_float = torch.floor(f + e * (ys + 0.5)).int()  # n×H×1
    scale_only = ((b == 0) & (d == 0)).view(n, 1, 1)
    col = torch.where(scale_only, col_float, col_fixed)
    row = torch.where(scale_only, row_float, row_fixed)
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    index = torch.where(inside, row * w + col, 0).long().view(n, 1, h * w).expand(n, ch, h * w)
    out = x.reshape(n, ch, h * w).gather(2, index).view(n, ch, h, w)
    return out.mul_(inside.view(n, 1, h, w))


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    """PIL.ImageOps.autocontrast: per channel, map [lo, hi] to [0, 255] with int(v·s - lo·s)."""
    lo = x.amin(dim=(2, 3), keepdim=True).double()
    hi = x.amax(dim=(2, 3), keepdim=True).double()
    # tensor / tensor: torch evaluates scalar / tensor as scalar * (1 / tensor), one ulp off
    scale = torch.full_like(hi, 255.0) / (hi - lo).clamp(min=1)
    out = x.double().mul_(scale).add_(-lo * scale).trunc_().clamp_(0, 255).to(torch.uint8)
    return torch.where(hi > lo, out, x)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """Pillow's RGB -> L conversion (ITU-R 601-2 luma in 16-bit fixed point), N×1×H×W int32."""
    r, g, b = x.int().unbind(1)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).unsqueeze(1)


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """Pillow's ImageFilter.SMOOTH: 3×3 kernel [[1,1,1],[1,5,1],[1,1,1]]/13, rounded, border
    pixels copied. Integer sums of shifted views (exact on every device, unlike a TF32 conv)."""
    xi = x.int()
    rows = xi[..., :-2, :] + xi[..., 1:-1, :] + xi[..., 2:, :]  # 3×3 box sum, separably
    total = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:] + 4 * xi[..., 1:-1, 1:-1]
    out = xi.clone()
    out[..., 1:-1, 1:-1] = (2 * total + 13) // 26  # round(total / 13); no ties (13 is odd)
    return out


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL Image.blend(degenerate, x, factor) = degenerate + factor (x - degenerate), clipped to
    [0, 255] and truncated; per-image ``factor``."""
    d = degenerate.float()
    f = factor.float().view(-1, 1, 1, 1)
    return x.float().sub_(d).mul_(f).add_(d).clamp_(0, 255).to(torch.uint8)


def cutout(x: torch.Tensor, side: torch.Tensor | int, centre: torch.Tensor, fill) -> torch.Tensor:
    """Set to ``fill`` (scalar or per channel) the square of ``side`` pixels around centre[i] =
    (row, col) of each image: rows centre-side//2 ... centre-side//2+side-1, clipped at borders."""
    mask = _square_mask(x, side, centre)
    if isinstance(fill, (int, float)):
        return x.masked_fill(mask, fill)
    fill = torch.as_tensor(fill, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return torch.where(mask, fill, x)


def _square_mask(x: torch.Tensor, side, centre: torch.Tensor) -> torch.Tensor:
    """N×1×H×W boolean mask of the (clipped) squares."""
    n, _, h, w = x.shape
    side = torch.as_tensor(side, device=x.device).expand(n).long()
    start = centre.long() - (side // 2).view(n, 1)
    stop = start + side.view(n, 1)
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= start[:, :1]) & (rows < stop[:, :1])
    in_cols = (cols >= start[:, 1:]) & (cols < stop[:, 1:])
    return (in_rows.view(n, h, 1) & in_cols.view(n, 1, w)).view(n, 1, h, w)


# --------------------------------------------------------------------------- helpers


def rand(shape, generator: torch.Generator, device) -> torch.Tensor:
    """Uniform [0, 1) drawn on the generator's device, then moved to ``device``."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def randint(high: int, shape, generator: torch.Generator, device) -> torch.Tensor:
    return torch.randint(high, shape, generator=generator, device=generator.device).to(device)


def check_images(x) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4:
        if isinstance(x, torch.Tensor):
            what = f"{x.dtype} tensor of shape {tuple(x.shape)}"
        else:
            what = type(x).__name__
        raise ValueError(f"expected a uint8 N x C x H x W image tensor, got a {what}")

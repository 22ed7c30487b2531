"""What one network shows: its non-zero weights per layer (Section 4.1, Figure 3), its first-layer
filters and their locality, Theorem 2's description-length bound, and the small statistics the
chapters apply to them (rank correlation, random placement, when a curve settles)."""

from __future__ import annotations

import torch
from torch import nn

from companion.nn.embedding import dense_from_local, local_weight_from_conv
from companion.nn.layers import LocallyConnected2d


def paper_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights of ``model``'s paper layers (``model.paper_layers``, in table order), name → tensor."""
    names = getattr(model, "paper_layers", None)
    if not names:
        raise ValueError(f"{type(model).__name__} has no `paper_layers` (the weight layers in table order)")
    return {name: model.get_submodule(name).weight for name in names}


@torch.no_grad()
def nonzeros(model: nn.Module) -> dict[str, int]:
    """Number of non-zero weights of each layer in ``model.paper_layers`` (Figure 3); biases excluded.

    One host synchronisation for all layers.
    """
    weights = paper_weights(model)
    counts = torch.stack([w.detach().count_nonzero() for w in weights.values()]).tolist()
    return dict(zip(weights, counts))


def layer_sizes(model: nn.Module) -> dict[str, int]:
    """Number of weights (parameters of the weight tensor, biases excluded) of each paper layer."""
    return {name: w.numel() for name, w in paper_weights(model).items()}


# ------------------------------------------------------------ first-layer filters (Figure 4)
@torch.no_grad()
def first_layer_filters(model: nn.Module) -> torch.Tensor:
    """The first layer's filters drawn on the input grid: ``(units, C, H, W)`` (Figures 4, 7–9).

    A unit is one output of the layer that sits where the CONV network's first convolution is
    (``model.conv_positions[0]``; the first layer of 3-FC). FC: one row of the weight matrix.
    LOCAL: each (channel, position) unit's filter placed on the grid through the LOCAL ⊂ FC
    embedding (zeros outside its receptive field). CONV: each channel's filter placed at the
    central output position.
    """

    config = getattr(model, "config", None)
    if config is None:
        raise ValueError("first_layer_filters needs a model made by companion.build_model")
    grid = (config["in_channels"], config["image_size"], config["image_size"])
    names = getattr(model, "conv_positions", ()) or model.paper_layers
    layer = model.get_submodule(names[0])
    if isinstance(layer, nn.Linear):
        return layer.weight.detach().reshape(-1, *grid)
    if isinstance(layer, LocallyConnected2d):
        return dense_from_local(layer).reshape(-1, *grid)
    if isinstance(layer, nn.Conv2d):
        twin = LocallyConnected2d(layer.in_channels, layer.out_channels, config["image_size"],
                                  layer.kernel_size[0], layer.stride[0], layer.padding[0], bias=False,
                                  device="meta")
        weight = local_weight_from_conv(layer, twin.weight.shape[0])
        dense = dense_from_local(twin, weight).reshape(layer.out_channels, -1, *grid)
        ho, wo = twin.output_size
        return dense[:, (ho // 2) * wo + wo // 2]
    raise ValueError(f"first layer {names[0]} is a {type(layer).__name__}; expected Linear, LocallyConnected2d or Conv2d")


def _inside(kernel: int, stride: int, padding: int, size: int) -> torch.Tensor:
    """Along one axis: ``inside[o, k]`` is True where kernel offset ``k`` at output position
    ``o`` reads a pixel inside the image (not the zero padding)."""
    out = (size + 2 * padding - kernel) // stride + 1
    reads = stride * torch.arange(out).view(-1, 1) - padding + torch.arange(kernel).view(1, -1)
    return (reads >= 0) & (reads < size)


@torch.no_grad()
def embedded_nonzeros(model: nn.Module) -> int:
    """‖w‖₀ of the first layer (the one :func:`first_layer_filters` draws) written as a
    fully-connected layer: Theorem 2's ‖w‖₀ of the network embedded in S-FC (Section 3).

    FC: its non-zeros. LOCAL: the non-zeros that read a pixel inside the image. CONV: each
    non-zero weight is copied to every output position at which it reads an inside pixel (the
    CONV ⊂ LOCAL ⊂ FC embedding), so it counts that many times. Both are counted per kernel
    offset (and position) without building the embedding.
    """

    names = getattr(model, "conv_positions", ()) or getattr(model, "paper_layers", ())
    config = getattr(model, "config", None)
    if not names or config is None:
        raise ValueError("embedded_nonzeros needs a model made by companion.build_model")
    layer = model.get_submodule(names[0])
    if isinstance(layer, nn.Linear):
        return int(layer.weight.count_nonzero())
    if isinstance(layer, LocallyConnected2d):
        k, s, p = layer.kernel_size, layer.stride, layer.padding
        (h_in, w_in), (h_out, w_out) = layer.input_size, layer.output_size
        rows, cols = _inside(k, s, p, h_in), _inside(k, s, p, w_in)  # (h_out, k), (w_out, k)
        inside = rows.view(h_out, 1, k, 1) & cols.view(1, w_out, 1, k)
        # weight laid out as (position y, position x, channel, offset i, offset j, out channel)
        used = (layer.weight.reshape(h_out, w_out, layer.in_channels, k, k, -1) != 0).sum((2, 5)).cpu()
        return int((used * inside).sum())
    if isinstance(layer, nn.Conv2d):
        size = config["image_size"]
        rows = _inside(layer.kernel_size[0], layer.stride[0], layer.padding[0], size).sum(0)
        cols = _inside(layer.kernel_size[1], layer.stride[1], layer.padding[1], size).sum(0)
        used = (layer.weight != 0).sum((0, 1)).cpu()  # non-zeros at each kernel offset
        return int((used * rows.view(-1, 1) * cols.view(1, -1)).sum())
    raise ValueError(f"first layer {names[0]} is a {type(layer).__name__}; expected Linear, LocallyConnected2d or Conv2d")


#: side of S-LOCAL's receptive field (conv9x9, Table 4): the window of :func:`locality`
LOCAL_WINDOW = 9
#: Figures 7–9 draw first-layer filters "chosen randomly among all filters with at least 20 non-zero
#: values": the trainer stores filters drawn among units with at least this many non-zeros
FILTER_MIN_NONZEROS = 20


@torch.no_grad()
def locality(filters: torch.Tensor, window: int = LOCAL_WINDOW) -> dict[str, torch.Tensor]:
    """How local each filter ``(units, C, H, W)`` is, from its weight mass ``m = Σ_c |w|``.

    - ``radius``: root-mean-square distance (pixels) of the mass from its centroid — small for a
      local filter, about 13 for uniform random weights on a 32×32 grid;
    - ``window_mass``: fraction of the mass inside the ``window × window`` square (S-LOCAL's 9×9
      field) centred on the pixel nearest the centroid — 1 for an S-LOCAL filter.

    Filters with no mass (all zero) get NaN. One value per unit.
    """
    mass = filters.abs().sum(1).double()  # units, H, W
    units, h, w = mass.shape
    total = mass.sum((1, 2))
    ys = torch.arange(h, dtype=mass.dtype, device=mass.device).view(1, -1, 1)
    xs = torch.arange(w, dtype=mass.dtype, device=mass.device).view(1, 1, -1)
    safe = total.clamp_min(torch.finfo(mass.dtype).tiny)
    cy = (mass * ys).sum((1, 2)) / safe
    cx = (mass * xs).sum((1, 2)) / safe
    var = (mass * ((ys - cy.view(-1, 1, 1)) ** 2 + (xs - cx.view(-1, 1, 1)) ** 2)).sum((1, 2)) / safe
    half = window // 2
    inside = ((ys - cy.round().view(-1, 1, 1)).abs() <= half) & ((xs - cx.round().view(-1, 1, 1)).abs() <= half)
    window_mass = (mass * inside).sum((1, 2)) / safe
    empty = total == 0
    nan = torch.tensor(float("nan"), dtype=mass.dtype, device=mass.device)
    return {
        "radius": torch.where(empty, nan, var.sqrt()).float(),
        "window_mass": torch.where(empty, nan, window_mass).float(),
    }


def reference_locality(image_size: int = 32, in_channels: int = 3, window: int = LOCAL_WINDOW,
                       units: int = 512, seed: int = 0) -> dict[str, dict[str, float]]:
    """Median :func:`locality` of two references, computed (not assumed):

    - ``uniform``: dense filters with i.i.d. uniform weights over the whole grid (an FC filter
      with no locality);
    - ``s-local``: random weights filling one ``window × window`` field at a random position fully
      inside the grid (an S-LOCAL filter away from the border).
    """
    g = torch.Generator().manual_seed(seed)
    dense = torch.rand(units, in_channels, image_size, image_size, generator=g) - 0.5
    local = torch.zeros_like(dense)
    corners = torch.randint(0, image_size - window + 1, (units, 2), generator=g)
    for u, (y, x) in enumerate(corners.tolist()):
        local[u, :, y : y + window, x : x + window] = torch.rand(in_channels, window, window, generator=g) - 0.5
    out = {}
    for name, f in (("uniform", dense), ("s-local", local)):
        scores = locality(f, window)
        out[name] = {k: float(v.nanmedian()) for k, v in scores.items()}
    return out


QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def locality_quantiles(model: nn.Module, quantiles=QUANTILES) -> dict[str, list[float]]:
    """Quantiles of :func:`locality` over the first layer's non-empty filters (tracked per epoch)."""
    scores = locality(first_layer_filters(model))
    out = {}
    for key, values in scores.items():
        values = values[~values.isnan()]
        q = torch.tensor(quantiles, dtype=values.dtype, device=values.device)
        out[key] = values.quantile(q).tolist() if values.numel() else [float("nan")] * len(quantiles)
    return out


# ------------------------------------------------------------------ Theorem 2 (MDL bound)
def theorem2(*, n: int, k: int, nonzeros: int, m: int, train_error: float = 0.0, b: int = 32,
             delta: float = 0.05) -> dict[str, float]:
    """The terms of Theorem 2's bound (Section 3, Equation 2; logs in bits).

    ``n``: parameters of the searched class (the FC-embedded size), ``k``: distinct parameters
    of the found architecture, ``nonzeros``: ``‖w‖₀`` of its n-dimensional weight vector,
    ``m``: training set size, ``b``: bits per parameter.
    ``|d(g)| ≤ ‖w‖₀·log(kn) + 2·log n``;  gap ``= √((k·b + |d(g)| + log(2n/δ)) / (2m))``.
    """
    import math

    if not (1 <= k <= n and 0 <= nonzeros <= n and m >= 1 and 0 < delta < 1):
        raise ValueError(f"theorem2 needs 1 <= k <= n, 0 <= nonzeros <= n, m >= 1, 0 < delta < 1; "
                         f"got n={n}, k={k}, nonzeros={nonzeros}, m={m}, delta={delta}")
    d_g = nonzeros * math.log2(k * n) + 2 * math.log2(n)
    numerator = k * b + d_g + math.log2(2 * n / delta)
    gap = math.sqrt(numerator / (2 * m))
    return {"n": n, "k": k, "nonzeros": nonzeros, "kb": k * b, "d_g": d_g,
            "log_term": math.log2(2 * n / delta), "description_bits": k * b + d_g + 2 * math.log2(n),
            "gap": gap, "bound": train_error + gap}


# ------------------------------------------------------------------------------ rank correlation
# The rank correlation of chapter 8 (description length vs test accuracy).
def rank_correlation(x, y, *, exact_up_to: int = 8) -> dict[str, float]:
    """Spearman's rank correlation ``rho`` of paired values (ties get average ranks) and its
    two-sided p-value under independence: exact (all pairings enumerated) for ``n ≤
    exact_up_to``, else scipy's t-approximation. ``rho`` and ``p_value`` are NaN when
    ``n < 3`` or either variable is constant."""
    import itertools

    import numpy as np
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-d and of equal length, got shapes {x.shape} and {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"rho": float("nan"), "p_value": float("nan"), "n": n}
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rho = float(np.corrcoef(rx, ry)[0, 1])
    if n <= exact_up_to:
        centred = ry - ry.mean()
        scale = np.sqrt(((rx - rx.mean()) ** 2).sum() * (centred ** 2).sum())
        rhos = np.array([((rx - rx.mean()) * centred[list(p)]).sum() / scale
                         for p in itertools.permutations(range(n))])
        p_value = float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))
    else:
        p_value = float(stats.spearmanr(x, y).pvalue)
    return {"rho": rho, "p_value": p_value, "n": n}


# ------------------------------------------------------------ locality nulls and settling (issue 9)
def random_placement_locality(unit_nonzeros, image_size: int = 32, in_channels: int = 3,
                              window: int = LOCAL_WINDOW, seed: int = 0) -> dict[str, torch.Tensor]:
    """:func:`locality` of a null: for every unit, as many non-zeros as it has (``unit_nonzeros``)
    placed at uniformly random positions of the ``C × H × W`` grid, with i.i.d. uniform magnitudes.

    A very sparse filter can look local only because it has few weights; the locality claim of
    Section 4.1 (Figure 4) is compared against this null with the same count per unit.
    Units with no non-zero get NaN, as in :func:`locality`.
    """
    counts = torch.as_tensor(unit_nonzeros, dtype=torch.long).flatten()
    size = in_channels * image_size * image_size
    if counts.numel() and (counts.min() < 0 or counts.max() > size):
        raise ValueError(f"unit_nonzeros must lie in [0, {size}] (C·H·W), got {int(counts.min())}..{int(counts.max())}")
    g = torch.Generator().manual_seed(seed)
    out = {"radius": [], "window_mass": []}
    for start in range(0, counts.numel(), 256):  # 256 units at a time keeps memory small
        part = counts[start:start + 256]
        keys = torch.rand(part.numel(), size, generator=g)  # a random order of the grid per unit
        rank = keys.argsort(1).argsort(1)
        mask = rank < part.view(-1, 1)  # the first `count` positions of each unit's order
        filters = (mask * torch.rand(part.numel(), size, generator=g)).view(-1, in_channels, image_size, image_size)
        for key, values in locality(filters, window).items():
            out[key].append(values)
    empty = torch.empty(0)
    return {k: torch.cat(v) if v else empty for k, v in out.items()}


def settled_epoch(values, *, tolerance: float) -> int:
    """The first index from which a per-epoch series stays within ``tolerance`` (absolute) of
    its last value: when a tracked quantity (first-layer density, locality radius) stops moving.
    NaN entries never count as settled."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1-d series, got shape {v.shape}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    off = ~(np.abs(v - v[-1]) <= tolerance)  # NaN compares False, so it counts as off
    return int(np.flatnonzero(off)[-1] + 1) if off.any() else 0

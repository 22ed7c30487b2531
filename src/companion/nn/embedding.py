"""The hypothesis-class containment CONV ⊂ LOCAL ⊂ FC (Section 2).

:func:`embed` returns the LOCAL or FC counterpart of a network whose weights express exactly
the same function: a convolution's filter is copied to every output position (CONV → LOCAL),
and a locally connected layer is written as a dense matrix that is zero outside each receptive
field (LOCAL → FC). Batch-norm per channel becomes batch-norm per unit with each channel's
statistics repeated over its positions, which is the same function in eval mode.
"""

from __future__ import annotations

import torch
from torch import nn

from companion.nn.layers import LocallyConnected2d, conv_output_size
from companion.nn.models import D_CONV, S_CONV, VARIANTS, build_model, family

ORDER = {v: i for i, v in enumerate(VARIANTS)}


@torch.no_grad()
def local_weight_from_conv(conv: nn.Conv2d, positions: int) -> torch.Tensor:
    """A conv weight ``(O, C, k, k)`` as a :class:`LocallyConnected2d` weight ``(positions, C·k·k, O)``."""
    w = conv.weight.reshape(conv.out_channels, -1).t()
    return w.unsqueeze(0).expand(positions, -1, -1).clone()


@torch.no_grad()
def dense_from_local(layer: LocallyConnected2d, weight: torch.Tensor | None = None) -> torch.Tensor:
    """A locally connected layer as the ``(O·H_out·W_out, C·H·W)`` matrix of the same linear map.

    Rows are ordered (out channel, y, x) and columns (in channel, h, w), the order in which
    ``nn.Flatten`` lays out an ``N × C × H × W`` tensor. Entries outside a unit's receptive field
    (and those that fall on padding) are zero. ``weight`` overrides ``layer.weight`` (same shape).
    """
    weight = layer.weight if weight is None else weight
    k, s, p = layer.kernel_size, layer.stride, layer.padding
    (h_in, w_in), (h_out, w_out) = layer.input_size, layer.output_size
    c, o = layer.in_channels, layer.out_channels
    dev = weight.device
    y = torch.arange(h_out, device=dev).view(-1, 1, 1, 1, 1)
    x = torch.arange(w_out, device=dev).view(1, -1, 1, 1, 1)
    ch = torch.arange(c, device=dev).view(1, 1, -1, 1, 1)
    i = torch.arange(k, device=dev).view(1, 1, 1, -1, 1)
    j = torch.arange(k, device=dev).view(1, 1, 1, 1, -1)
    h, w = s * y + i - p, s * x + j - p  # input pixel each weight reads
    shape = (h_out, w_out, c, k, k)
    valid = ((h >= 0) & (h < h_in) & (w >= 0) & (w < w_in)).expand(shape)
    column = (ch * h_in * w_in + h * w_in + w).expand(shape)
    position = (y * w_out + x).expand(shape)
    dense = torch.zeros(o, h_out * w_out, c * h_in * w_in, dtype=weight.dtype, device=dev)
    values = weight.reshape(*shape, o)[valid]  # (n_valid, O)
    dense[:, position[valid], column[valid]] = values.t()
    return dense.reshape(o * h_out * w_out, c * h_in * w_in)


def _bn_per_unit(bn2d: nn.BatchNorm2d, positions: int, prefix: str) -> dict:
    """Per-channel batch-norm state repeated over ``positions`` units per channel (C-major)."""
    out = {}
    for key, value in bn2d.state_dict().items():
        out[f"{prefix}.{key}"] = value if value.ndim == 0 else value.repeat_interleave(positions)
    return out


@torch.no_grad()
def embed(model: nn.Module, into: str) -> nn.Module:
    """The ``into`` ∈ {"local", "fc"} counterpart of a D-/S- CONV or LOCAL ``model``, same function.

    The result is a new model (same device and dtype, in ``model``'s train/eval mode) built by
    :func:`companion.nn.models.build_model`; its outputs equal ``model``'s in eval mode up to
    floating-point summation order.
    """
    config = getattr(model, "config", None)
    if into not in ("local", "fc"):
        raise ValueError(f"into must be 'local' or 'fc', got {into!r}")
    if config is None or config["name"] in ("3-fc", "resnet18"):
        name = None if config is None else config["name"]
        raise ValueError(
            f"embed works on D-/S- CONV and LOCAL models made by build_model, got {name or type(model).__name__!r}"
        )
    depth, variant = family(config["name"])
    if ORDER[into] <= ORDER[variant]:
        raise ValueError(f"{config['name']} embeds only into a larger class: local (from conv) or fc; got {into!r}")
    kwargs = {k: v for k, v in config.items() if k not in ("name", "alpha")}
    param = next(model.parameters())
    target = build_model(f"{depth}-{into}", config["alpha"], device=param.device, **kwargs).to(param.dtype)
    state = dict(model.state_dict())
    modules = dict(model.named_modules())
    target_modules = dict(target.named_modules())
    for name in model.conv_positions:
        block = name.rsplit(".", 1)[0]
        source = modules[name]
        local = target_modules[name] if into == "local" else _local_twin(source, modules, name)
        weight = source.weight if variant == "local" else local_weight_from_conv(source, local.weight.shape[0])
        if into == "local":
            state[f"{name}.weight"] = weight
        else:
            state[f"{name}.weight"] = dense_from_local(local, weight)
            for key in list(state):
                if key.startswith(f"{block}.bn."):
                    del state[key]
            state.update(_bn_per_unit(modules[f"{block}.bn"], local.weight.shape[0], f"{block}.bn"))
    target.load_state_dict(state)
    target.train(model.training)
    return target


def _local_twin(source: nn.Module, modules: dict, name: str) -> LocallyConnected2d:
    """The geometry of a conv/local layer as a (meta) LocallyConnected2d, for :func:`dense_from_local`."""
    if isinstance(source, LocallyConnected2d):
        return source
    size = _input_size(modules, name)
    return LocallyConnected2d(source.in_channels, source.out_channels, size, source.kernel_size[0],
                              source.stride[0], source.padding[0], bias=False, device="meta")


def _input_size(modules: dict, name: str) -> int:
    """Spatial input size of conv layer ``name`` in a D-/S-CONV model, from the model's config."""

    model = modules[""]
    specs = D_CONV if family(model.config["name"])[0] == "d" else S_CONV
    size = model.config["image_size"]
    for spec in specs:
        if f"{spec.name}.layer" == name:
            return size
        size = conv_output_size(size, spec.kernel_size, spec.stride, spec.padding)
    raise KeyError(name)

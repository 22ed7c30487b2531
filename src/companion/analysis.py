"""Analysis of trained models: non-zero weights per layer (Section 4.1, Figure 3)."""

from __future__ import annotations

import torch
from torch import nn


def _paper_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    names = getattr(model, "paper_layers", None)
    if not names:
        raise ValueError(f"{type(model).__name__} has no `paper_layers` (the weight layers in table order)")
    return {name: model.get_submodule(name).weight for name in names}


@torch.no_grad()
def nonzeros(model: nn.Module) -> dict[str, int]:
    """Number of non-zero weights of each layer in ``model.paper_layers`` (Figure 3); biases excluded.

    One host synchronisation for all layers.
    """
    weights = _paper_weights(model)
    counts = torch.stack([w.detach().count_nonzero() for w in weights.values()]).tolist()
    return dict(zip(weights, counts))


def layer_sizes(model: nn.Module) -> dict[str, int]:
    """Number of weights (parameters of the weight tensor, biases excluded) of each paper layer."""
    return {name: w.numel() for name, w in _paper_weights(model).items()}

"""Compact trained weights committed with the results store, so that chapters which need a
trained network (sparse execution) build from the repository alone, without retraining.

``root/<run_id>/weights.npz`` holds the model's ``state_dict`` exactly (fp32 values, no
rounding): a floating tensor with at most :data:`SPARSE_BELOW` of its entries non-zero is stored
as its non-zero values and their flat positions (int32) — β-LASSO's first layer keeps a few
percent of its weights (Figure 3) — every other tensor as it is. Loading rebuilds the same
``state_dict`` bit for bit, so a network loaded from it predicts exactly what the trained one did.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch

from companion.data.files import IMAGE_SHAPE, NUM_CLASSES
from companion.nn.models import build_model
from companion.store import results

WEIGHTS = "weights.npz"
#: store a tensor as (positions, values) when at most this fraction of it is non-zero:
#: 8 bytes per non-zero against 4 per entry dense
SPARSE_BELOW = 0.5


def pack_state(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """``state_dict`` → arrays: ``dense/<name>``, or ``index/<name>``, ``value/<name>`` and
    ``shape/<name>`` for a tensor at most :data:`SPARSE_BELOW` non-zero."""
    out = {}
    for name, tensor in state.items():
        t = tensor.detach().cpu()
        if t.is_floating_point() and t.numel() and t.count_nonzero().item() <= SPARSE_BELOW * t.numel():
            flat = t.reshape(-1)
            index = flat.nonzero().reshape(-1)
            if t.numel() > np.iinfo(np.int32).max:
                raise ValueError(f"{name} has {t.numel()} entries; positions are stored as int32")
            out[f"index/{name}"] = index.numpy().astype(np.int32)
            out[f"value/{name}"] = flat[index].numpy()
            out[f"shape/{name}"] = np.asarray(t.shape, dtype=np.int64)
        else:
            out[f"dense/{name}"] = t.numpy()
    return out


def unpack_state(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`pack_state`."""
    state = {}
    for key, array in arrays.items():
        kind, name = key.split("/", 1)
        if kind == "dense":
            state[name] = torch.from_numpy(np.array(array))
        elif kind == "index":
            values = torch.from_numpy(np.array(arrays[f"value/{name}"]))
            shape = tuple(int(s) for s in arrays[f"shape/{name}"])
            flat = torch.zeros(int(np.prod(shape)), dtype=values.dtype)
            flat[torch.from_numpy(array.astype(np.int64))] = values
            state[name] = flat.reshape(shape)
        elif kind not in ("value", "shape"):
            raise ValueError(f"unknown entry {key!r} in a weights file (expected dense/, index/, value/, shape/)")
    return state


def save_weights(run: results.Run, model: torch.nn.Module) -> Path:
    """Write ``model``'s weights into ``run``'s directory as :data:`WEIGHTS` (atomically)."""
    if not run.finished:
        raise ValueError(f"run {run.run_id} is not finished; only finished runs get stored weights")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **pack_state(model.state_dict()))
    path = run.path / WEIGHTS
    results.write_atomic(path, lambda f: f.write(buffer.getvalue()))
    return path


def _build(run: results.Run) -> torch.nn.Module:
    """A freshly initialised network of ``run``'s architecture (what its weights load into)."""

    c = run.config
    h, _, channels = IMAGE_SHAPE
    return build_model(c.model, c.alpha, image_size=h, in_channels=channels, num_classes=NUM_CLASSES[c.dataset],
                       dropout=c.dropout, kernel_size=c.kernel_size)


def load_model(run: results.Run, checkpoint: str | os.PathLike | None = None) -> torch.nn.Module:
    """``run``'s network (eval mode, CPU) with the weights of its last checkpoint."""
    path = Path(checkpoint) if checkpoint is not None else run.path / results.CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"run {run.run_id}: no checkpoint at {path}")
    model = _build(run)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
    return model.eval()


def load_weights(run: results.Run) -> torch.nn.Module:
    """``run``'s network (eval mode, CPU) from its stored :data:`WEIGHTS`."""
    path = run.path / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"run {run.run_id}: no stored weights at {path}")
    with results.reading(path), np.load(path) as npz:
        state = unpack_state({k: npz[k] for k in npz.files})
    model = _build(run)
    model.load_state_dict(state)
    return model.eval()


def weights_source(run: results.Run) -> str | None:
    """Where :func:`trained_network` would read ``run``'s weights: ``"checkpoint"``,
    :data:`WEIGHTS`, or None when neither is stored."""
    if (run.path / results.CHECKPOINT).is_file():
        return "checkpoint"
    if (run.path / WEIGHTS).is_file():
        return WEIGHTS
    return None


def untrained_network(run: results.Run, *, seed: int = 0) -> torch.nn.Module:
    """A network of ``run``'s architecture at its initialisation from ``seed`` (eval mode, CPU):
    a stand-in where only the shape matters (a dense matrix product costs the same whatever the
    values); never a substitute for the trained weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build(run).eval()


def trained_network(run: results.Run) -> torch.nn.Module:
    """``run``'s trained network: from its checkpoint when one is present (just trained here),
    else from its committed :data:`WEIGHTS`; neither is one clear error naming the commands that
    train the run (``companion experiments``) and then store its weights (``companion weights``)."""
    if not run.finished:
        raise ValueError(f"run {run.run_id} is not finished; train it first")
    if (run.path / results.CHECKPOINT).is_file():
        return load_model(run)
    if (run.path / WEIGHTS).is_file():
        return load_weights(run)
    raise FileNotFoundError(
        f"run {run.run_id} ({run.config.model}, {run.config.optimizer}) has neither a checkpoint nor "
        f"stored weights ({WEIGHTS}); train it with `companion experiments --profile P`, then store "
        f"the weights the book needs with `companion weights --profile P`")


def store_weights(runs, *, max_bytes: int = 25 * 2**20) -> dict[str, int]:
    """Write :data:`WEIGHTS` for each finished run (from its checkpoint) that lacks it; return
    the size in bytes of every run's weights file. More than ``max_bytes`` in all is an error
    (the committed artifacts stay small), raised before anything is written."""
    todo = [r for r in runs if not (r.path / WEIGHTS).is_file()]
    for r in todo:
        if not (r.path / results.CHECKPOINT).is_file():
            raise FileNotFoundError(f"run {r.run_id} has no checkpoint to store weights from; train it first")

    packed = {}
    for r in todo:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **pack_state(load_model(r).state_dict()))
        packed[r.run_id] = buffer.getvalue()
    sizes = {r.run_id: (len(packed[r.run_id]) if r.run_id in packed else os.path.getsize(r.path / WEIGHTS))
             for r in runs}
    if sum(sizes.values()) > max_bytes:
        raise ValueError(f"stored weights would take {sum(sizes.values()) / 2**20:.1f} MiB, over the "
                         f"{max_bytes / 2**20:.0f} MiB limit: {sizes}")
    for r in todo:
        results.write_atomic(r.path / WEIGHTS, lambda f, data=packed[r.run_id]: f.write(data))
    return sizes

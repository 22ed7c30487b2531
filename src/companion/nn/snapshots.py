"""Watching the first layer learn (Section 4.1, Figure 4 over time): the weights of a few
first-layer units recorded at a few epochs of a run, compactly, into the run's ``arrays.npz``.

- **Which units**: :data:`UNITS` units of the layer at the first convolution's position,
  drawn at random with the run's seed before training (so SGD and β-LASSO runs of the same seed
  and network show the same units). An S-FC unit has no position of its own: which part of the
  image it reads is what training decides, and what the recording shows.
- **When**: :func:`snapshot_epochs` — the initialisation (epoch 0) and :data:`FRAMES` − 1 epochs
  evenly spaced to the last, i.e. evenly spaced in steps and so in the cosine schedule's progress.
- **How compactly**: each frame of each unit as int8 codes with one float32 scale (largest |w|
  / 127): 16 units × 3,072 inputs × 17 frames ≈ 0.84 MB before compression (float16 would be
  twice that). Zeros stay exactly zero; a weight smaller than half a code step reads as zero, so
  the non-zero counts a chapter reports come from the metrics, not from these frames.
"""

from __future__ import annotations

import numpy as np
import torch

#: first-layer units recorded per run
UNITS = 16
#: frames per run: the initialisation and FRAMES - 1 evenly spaced epochs up to the last
FRAMES = 17
#: the int8 code of the largest |w| of a unit's frame
CODE_MAX = 127


def snapshot_epochs(epochs: int) -> list[int]:
    """The epochs whose end is recorded (0 = the initialisation), evenly spaced, last included."""
    return sorted({round(i * epochs / (FRAMES - 1)) for i in range(FRAMES)})


def choose_units(n_units: int, seed: int) -> torch.Tensor:
    """``min(UNITS, n_units)`` unit indices drawn with ``seed``, sorted."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n_units, generator=g)[:UNITS].sort().values


def encode(filters: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(units, ...)`` float weights → int8 codes of the same shape and one float32 scale per unit."""
    w = filters.detach().float().cpu()
    scale = w.flatten(1).abs().amax(1) / CODE_MAX
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    codes = torch.round(w / safe.view(-1, *([1] * (w.dim() - 1)))).clamp(-CODE_MAX, CODE_MAX)
    return codes.to(torch.int8).numpy(), scale.numpy().astype(np.float32)


def decode(codes: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The weights a frame (or a stack of frames) encodes: ``codes × scale`` per unit, float32."""
    codes = np.asarray(codes, dtype=np.float32)
    scale = np.asarray(scale, dtype=np.float32)
    return codes * scale.reshape(*scale.shape, *([1] * (codes.ndim - scale.ndim)))


class Recorder:
    """Records the chosen units' first-layer weights at :func:`snapshot_epochs`; its state goes
    into the run's checkpoint, so a resumed run keeps the frames recorded before."""

    def __init__(self, epochs: int, n_units: int, seed: int, state: dict | None = None):
        self.epochs = snapshot_epochs(epochs)
        self.units = choose_units(n_units, seed)
        self.frames: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if state:
            if [int(u) for u in state["units"]] != self.units.tolist():
                raise ValueError("the checkpoint's snapshot units differ from this run's; not resuming")
            self.frames = {int(e): (np.asarray(c), np.asarray(s))
                           for e, c, s in zip(state["epochs"], state["codes"], state["scale"])}

    def record(self, epoch: int, filters: torch.Tensor) -> None:
        """Keep the frame of ``epoch`` (if it is a snapshot epoch) from all first-layer ``filters``."""
        if epoch in self.epochs:
            self.frames[epoch] = encode(filters[self.units.to(filters.device)])

    def state(self) -> dict:
        """What the checkpoint keeps (tensors and lists only: loadable with ``weights_only``)."""
        done = sorted(self.frames)
        return {"units": self.units.tolist(), "epochs": done,
                "codes": [torch.from_numpy(self.frames[e][0]) for e in done],
                "scale": [torch.from_numpy(self.frames[e][1]) for e in done]}

    def arrays(self) -> dict[str, np.ndarray]:
        """The ``snapshot_*`` arrays of ``arrays.npz`` (frames in epoch order)."""
        done = sorted(self.frames)
        return {"snapshot_units": self.units.numpy().astype(np.int32),
                "snapshot_epochs": np.array(done, dtype=np.int32),
                "snapshot_codes": np.stack([self.frames[e][0] for e in done]),
                "snapshot_scale": np.stack([self.frames[e][1] for e in done])}

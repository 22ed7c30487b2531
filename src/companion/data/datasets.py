"""Datasets of the paper's experiments as uint8 tensors on the training device (Appendix A.2).

``load_data(name)`` returns a :class:`DataBundle` with train / validation / test :class:`Split`\\ s
(uint8 N×C×H×W images, int64 labels). The paper picks hyper-parameters by validation accuracy
(Appendix A.2), so the validation split is held out of the *training* set, never the test set.

Where the data comes from, in order of preference (``root`` = ``data_root`` argument, else the
``COMPANION_DATA_ROOT`` environment variable, else ``~/.cache/companion/data``):

1. an npz folder ``<root>/<dataset>/`` or ``<root>/`` itself holding ``train.npz`` and ``test.npz``,
   each with ``x`` (uint8 N×32×32×3, HWC) and ``y`` (integer labels N);
2. the official files, in ``<root>/`` or ``<root>/<dataset>/``: ``cifar-10-batches-py/``
   (``data_batch_1..5``, ``test_batch``), ``cifar-100-python/`` (``train``, ``test``) or
   ``train_32x32.mat`` / ``test_32x32.mat`` (SVHN; reading them needs scipy);
3. with ``download=True``, the official archives fetched into ``<root>/`` by torchvision's own
   download functions (official URLs and md5 checksums taken from ``torchvision.datasets``).

The files are read by :mod:`companion.data.files` (which says why not through torchvision's
dataset classes); whether they are the bit-exact official ones is recorded in
``fingerprint["official_md5"]``.

The fingerprint (saved in every run's summary) names the data without any path of the machine
that read it: ``source`` is the kind of origin (``npz``, ``official:CIFAR10``, ``synthetic(...)``),
``content_blake2b`` hashes the arrays read (train and test, before the seeded split), and the
split is fixed by ``val_size``, ``subset`` and ``seed``, recorded beside the split sizes.

``"synthetic"`` is a task with a known answer for locality checks: see :func:`make_synthetic`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from companion.checks import check_int
from companion.data.files import DATASETS, DATA_ROOT_ENV, IMAGE_SHAPE, NUM_CLASSES, load_arrays

#: ``make_synthetic`` defaults: fixed data (independent of ``load_data``'s split ``seed``).
SYNTHETIC_SEED = 0
SYNTHETIC_SIZE = (2048, 512)  # (n_train, n_test)
#: (top, left, side) of the only informative square of the synthetic images (centred).
SYNTHETIC_PATCH = (14, 14, 4)


@dataclass
class Split:
    """One split: ``x`` uint8 N×C×H×W and ``y`` int64 N, both on the training device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class DataBundle:
    """A dataset ready for training: splits plus the facts a model needs and a fingerprint."""

    name: str
    train: Split
    val: Split | None
    test: Split
    num_classes: int
    in_channels: int
    image_size: int
    fingerprint: dict = field(default_factory=dict)


def default_data_root() -> Path:
    """``$COMPANION_DATA_ROOT`` if set, else ``~/.cache/companion/data``."""
    return Path(os.environ.get(DATA_ROOT_ENV) or "~/.cache/companion/data").expanduser()


# --------------------------------------------------------------------------- public entry point


def _source_arrays(dataset: str, data_root, download: bool, synthetic_size: tuple[int, int]):
    """``(train, test, source, official md5)`` of ``dataset``: generated (synthetic) or read from
    ``data_root`` (:func:`companion.data.files.load_arrays`)."""
    if dataset == "synthetic":
        if len(synthetic_size) != 2:
            raise ValueError(f"synthetic_size must be (n_train, n_test), got {synthetic_size!r}")
        check_int("synthetic_size[0]", synthetic_size[0], minimum=1)
        check_int("synthetic_size[1]", synthetic_size[1], minimum=1)
        train, test = make_synthetic(*synthetic_size)
        return train, test, f"synthetic(seed={SYNTHETIC_SEED}, patch={SYNTHETIC_PATCH})", None
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    return load_arrays(dataset, root, NUM_CLASSES[dataset], download)


def split_indices(dataset: str, n_raw: int, *, val_size: int, subset: int | None, seed: int):
    """Seeded split of ``n_raw`` training images into ``(train_idx, val_idx)``: the first
    ``val_size`` of one permutation form the validation split; the training subset is taken from
    the rest (so the validation split does not depend on ``subset``). Both are sorted, so the
    splits keep the source order."""
    if val_size >= n_raw:
        raise ValueError(
            f"val_size={val_size} must be smaller than the {n_raw} training images of {dataset}"
        )
    if subset is not None and subset > n_raw - val_size:
        raise ValueError(
            f"subset={subset} is larger than the {n_raw - val_size} training images available "
            f"({n_raw} minus val_size={val_size})"
        )
    order = torch.randperm(n_raw, generator=torch.Generator().manual_seed(seed)).numpy()
    rest = order[val_size:]
    return np.sort(rest if subset is None else rest[:subset]), np.sort(order[:val_size])


def load_data(
    dataset: str,
    data_root: str | os.PathLike | None = None,
    *,
    val_size: int = 0,
    subset: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    download: bool = True,
    synthetic_size: tuple[int, int] = SYNTHETIC_SIZE,
) -> DataBundle:
    """Load ``dataset`` (one of :data:`DATASETS`) as uint8 tensors on ``device``.

    ``val_size`` images are held out of the training set as a validation split (seeded by
    ``seed``); ``subset`` then keeps that many of the remaining training images (seeded, class
    agnostic). The permutation test's pixel permutation is not applied here but to each batch
    after augmentation (:class:`PixelPermutation`, used by :mod:`companion.train.loop`).
    ``synthetic_size`` = (n_train, n_test) is used for ``"synthetic"`` only.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; accepted: {', '.join(DATASETS)}")
    check_int("val_size", val_size, minimum=0)
    if subset is not None:
        check_int("subset", subset, minimum=1)
    check_int("seed", seed, minimum=0)
    (x_train, y_train), (x_test, y_test), source, official = _source_arrays(dataset, data_root, download,
                                                                             synthetic_size)
    train_idx, val_idx = split_indices(dataset, len(y_train), val_size=val_size, subset=subset, seed=seed)
    content = _content_hash(x_train, y_train, x_test, y_test)

    def to_split(x: np.ndarray, y: np.ndarray) -> Split:
        xt = torch.from_numpy(np.ascontiguousarray(x))
        return Split(x=xt.to(device), y=torch.from_numpy(y.astype(np.int64)).to(device))

    if val_size == 0 and subset is None:
        train = to_split(x_train, y_train)  # no copy
    else:
        train = to_split(x_train[train_idx], y_train[train_idx])
    val = to_split(x_train[val_idx], y_train[val_idx]) if val_size else None
    test = to_split(x_test, y_test)
    fingerprint = {
        "dataset": dataset,
        "source": source,
        "official_md5": official,
        "content_blake2b": content,
        "n_train": len(train),
        "n_val": len(val) if val is not None else 0,
        "n_test": len(test),
        "val_size": val_size,
        "subset": subset,
        "seed": seed,
    }
    return DataBundle(
        name=dataset,
        train=train,
        val=val,
        test=test,
        num_classes=NUM_CLASSES[dataset],
        in_channels=int(train.x.shape[1]),
        image_size=int(train.x.shape[2]),
        fingerprint=fingerprint,
    )


def batches(
    split_size: int,
    batch_size: int,
    *,
    generator: torch.Generator | None,
    shuffle: bool = True,
    drop_last: bool = False,
    device: str | torch.device = "cpu",
) -> Iterator[torch.Tensor]:
    """Index tensors of mini-batches over ``range(split_size)`` (a fresh permutation if shuffle).

    The permutation is drawn with ``generator`` on the generator's own device, then moved to
    ``device``. The last batch is smaller unless ``drop_last``.
    """
    check_int("split_size", split_size, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    if batch_size > split_size:
        raise ValueError(f"batch_size={batch_size} is larger than the split ({split_size} items)")
    if shuffle and generator is None:
        raise ValueError("batches(shuffle=True) needs a torch.Generator")
    if shuffle:
        order = torch.randperm(split_size, generator=generator, device=generator.device)
        order = order.to(device)
    else:
        order = torch.arange(split_size, device=device)
    stop = split_size - split_size % batch_size if drop_last else split_size
    return (order[start : start + batch_size] for start in range(0, stop, batch_size))


# --------------------------------------------------------------------------- synthetic task


def make_synthetic(
    n_train: int = SYNTHETIC_SIZE[0], n_test: int = SYNTHETIC_SIZE[1], *, seed: int = SYNTHETIC_SEED
):
    """A 10-class task whose label depends ONLY on one local patch (a known answer for locality).

    Every image is uniform uint8 noise (32×32×3) except the square ``SYNTHETIC_PATCH`` =
    (top, left, side) = (14, 14, 4), which holds the class's template: one of 10 fixed random
    4×4×3 uint8 patterns (seeded). The label is drawn uniformly, then its template is planted;
    all other pixels are independent of the label, so a classifier that reads only that 4×4
    square reaches 100% and nothing else carries information. The square is centred, so it stays
    in view under the 4-pixel crops of the training augmentation. Deterministic given ``seed``.
    Returns ((x_train, y_train), (x_test, y_test)) as numpy arrays, x uint8 N×3×32×32.
    """
    rng = np.random.default_rng(seed)
    top, left, side = SYNTHETIC_PATCH
    h, w, c = IMAGE_SHAPE
    templates = rng.integers(0, 256, size=(10, c, side, side), dtype=np.uint8)

    def draw(n):
        x = rng.integers(0, 256, size=(n, c, h, w), dtype=np.uint8)
        y = rng.integers(0, 10, size=n).astype(np.int64)
        x[:, :, top : top + side, left : left + side] = templates[y]
        return x, y

    return draw(n_train), draw(n_test)


# --------------------------------------------------------------------------- helpers


def _content_hash(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(str((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()

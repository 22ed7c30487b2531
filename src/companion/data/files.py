"""Reading the datasets' files (Appendix A.2's CIFAR-10, CIFAR-100, SVHN) into uint8 arrays, for
:func:`companion.data.datasets.load_data`: an npz folder, or the official files, fetched by torchvision's
own download helpers when allowed.

The official files are read here (pickle batches / ``scipy.io.loadmat``) rather than through
``torchvision.datasets.CIFAR10(...)``: torchvision refuses any file whose md5 differs from the
official one, which would make the format untestable with small files (CIFAR-100 and SVHN can
only be tested that way offline). Whether the files read are the bit-exact official ones is
recorded instead in the fingerprint's ``official_md5``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

DATASETS = ("cifar10", "cifar100", "svhn", "synthetic")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "synthetic": 10}
IMAGE_SHAPE = (32, 32, 3)  # H, W, C of every dataset here
DATA_ROOT_ENV = "COMPANION_DATA_ROOT"
_NPZ_LAYOUT = (
    "train.npz and test.npz, each with 'x' (uint8 N x 32 x 32 x 3) and 'y' (integer labels N)"
)


def load_arrays(dataset: str, root: Path, num_classes: int, download: bool):
    """((x_train, y_train), (x_test, y_test), source, official_md5) with x uint8 N×C×H×W."""
    npz = _find_npz(dataset, root)
    if npz is not None:
        train = _read_npz(npz / "train.npz", num_classes)
        test = _read_npz(npz / "test.npz", num_classes)
        return train, test, "npz", None

    for folder in (root, root / dataset):
        if _official_present(dataset, folder):
            return _read_official(dataset, folder, num_classes)

    if not download:
        raise FileNotFoundError(
            f"no {dataset} data under {root}: expected {root / dataset} or {root} to hold "
            f"{_NPZ_LAYOUT}, or the official files ({_official_layout(dataset)}); "
            f"pass --data-root / set {DATA_ROOT_ENV}, or allow download"
        )
    if dataset == "svhn":
        _require_scipy()  # fail before a download we could not read
    _download(dataset, root)
    return _read_official(dataset, root, num_classes)


def _find_npz(dataset: str, root: Path) -> Path | None:
    """The npz folder for ``dataset``: ``<root>/<dataset>`` or ``<root>`` itself (unless ``root``
    is named after another dataset). A folder with only one of the two files is an error."""
    candidates = [root / dataset]
    if root.name not in DATASETS or root.name == dataset:
        candidates.append(root)
    for folder in candidates:
        present = [(folder / f).is_file() for f in ("train.npz", "test.npz")]
        if all(present):
            return folder
        if any(present):
            missing = folder / ("test.npz" if present[0] else "train.npz")
            raise FileNotFoundError(f"{missing} is missing; an npz folder holds {_NPZ_LAYOUT}")
    return None


def _read_npz(path: Path, num_classes: int):
    """Read and validate one npz split; returns (x uint8 N×C×H×W, y int64 N)."""
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in ("x", "y") if k not in f.files]
        if missing:
            raise ValueError(
                f"{path}: missing array(s) {missing} (has {f.files}); expected {_NPZ_LAYOUT}"
            )
        x, y = f["x"], f["y"]
    if x.dtype != np.uint8:
        raise ValueError(f"{path}: 'x' has dtype {x.dtype}, expected uint8")
    if x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{path}: 'x' has shape {x.shape}, expected N x 32 x 32 x 3 (HWC)")
    _check_labels(path, y, len(x), num_classes)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y.astype(np.int64)


def _check_labels(path, y: np.ndarray, n: int, num_classes: int) -> None:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{path}: labels have shape {y.shape} and dtype {y.dtype}, expected 1-D integers"
        )
    if len(y) != n:
        raise ValueError(f"{path}: {n} images but {len(y)} labels")
    if n == 0:
        raise ValueError(f"{path}: holds no images")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(
            f"{path}: labels span [{y.min()}, {y.max()}], expected values in [0, {num_classes})"
        )


def _tv_class(dataset: str):
    from torchvision import datasets

    classes = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100, "svhn": datasets.SVHN}
    return classes[dataset]


def _official_files(dataset: str, folder: Path) -> dict[str, list[tuple[Path, str]]]:
    """{"train": [(path, md5)...], "test": [...]} as listed by torchvision."""
    cls = _tv_class(dataset)
    if dataset == "svhn":
        return {
            s: [(folder / cls.split_list[s][1], cls.split_list[s][2])] for s in ("train", "test")
        }
    base = folder / cls.base_folder
    return {
        "train": [(base / name, md5) for name, md5 in cls.train_list],
        "test": [(base / name, md5) for name, md5 in cls.test_list],
    }


def _official_layout(dataset: str) -> str:
    files = _official_files(dataset, Path("."))
    return ", ".join(str(p) for s in ("train", "test") for p, _ in files[s])


def _official_present(dataset: str, folder: Path) -> bool:
    files = _official_files(dataset, folder)
    present = [p.is_file() for s in ("train", "test") for p, _ in files[s]]
    if any(present) and not all(present):
        missing = [str(p) for s in ("train", "test") for p, _ in files[s] if not p.is_file()]
        raise FileNotFoundError(
            f"incomplete {dataset} files in {folder}: missing {', '.join(missing)}"
        )
    return all(present)


def _read_official(dataset: str, folder: Path, num_classes: int):
    from torchvision.datasets.utils import check_integrity

    files = _official_files(dataset, folder)
    reader = _read_svhn_mat if dataset == "svhn" else _read_cifar_pickle
    label_key = "fine_labels" if dataset == "cifar100" else "labels"
    splits = []
    for s in ("train", "test"):
        parts = [reader(path, label_key) for path, _ in files[s]]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        _check_labels(files[s][0][0], y, len(x), num_classes)
        splits.append((x, y))
    official = all(check_integrity(str(p), md5) for s in files for p, md5 in files[s])
    name = _tv_class(dataset).__name__
    return splits[0], splits[1], f"official:{name}", official


def _read_cifar_pickle(path: Path, label_key: str):
    """One CIFAR python batch: rows of 3072 bytes (R, G, B planes of 32×32) -> N×3×32×32."""
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")  # Python 2 pickles, as torchvision reads them
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: not a CIFAR python batch (a pickled dict)")
    if "data" not in entry or label_key not in entry:
        raise ValueError(f"{path}: keys {sorted(entry)} lack 'data' and/or '{label_key}'")
    data = np.asarray(entry["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(
            f"{path}: 'data' has shape {data.shape} and dtype {data.dtype}, expected uint8 N x 3072"
        )
    return data.reshape(-1, 3, 32, 32), np.asarray(entry[label_key])


def _require_scipy():
    try:
        import scipy.io  # noqa: F401
    except ModuleNotFoundError as exc:
        raise RuntimeError(
            "reading SVHN's official .mat files needs scipy (pip install scipy), "
            "or provide an npz folder instead"
        ) from exc


def _read_svhn_mat(path: Path, label_key: str):
    """One SVHN cropped-digits file: 'X' 32×32×3×N, 'y' N×1 with 10 for the digit 0."""
    _require_scipy()
    import scipy.io

    mat = scipy.io.loadmat(str(path))
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: expected variables 'X' and 'y' (SVHN format 2)")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != IMAGE_SHAPE:
        raise ValueError(
            f"{path}: 'X' has shape {x.shape} and dtype {x.dtype}, expected uint8 32x32x3xN"
        )
    y[y == 10] = 0  # SVHN stores the digit 0 as label 10
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y


def _download(dataset: str, root: Path) -> None:
    """Fetch the official archive(s) into ``root`` with torchvision's download helpers."""
    from torchvision.datasets import utils

    cls = _tv_class(dataset)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if dataset == "svhn":
            for split in ("train", "test"):  # the paper's SVHN: train/test, not "extra"
                url, filename, md5 = cls.split_list[split]
                utils.download_url(url, str(root), filename, md5)
        else:
            utils.download_and_extract_archive(
                cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5
            )
    except (OSError, RuntimeError, ValueError) as exc:
        raise FileNotFoundError(
            f"could not download {dataset} to {root} ({type(exc).__name__}: {exc}); put the "
            f"official files there ({_official_layout(dataset)}) or an npz folder "
            f"({_NPZ_LAYOUT}) in {root / dataset}, or pass --data-root / set {DATA_ROOT_ENV}"
        ) from exc

"""companion.data.datasets: file formats (npz folder, official CIFAR / SVHN files), splits, errors."""

from __future__ import annotations

import pickle
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from companion.data import datasets as data
from companion.data.datasets import batches, load_data, make_synthetic
from companion.data.files import DATASETS
from companion.data import permutation



def _ids(n, offset=0):
    """n distinct HWC images whose pixel (0, 0, 0) / (0, 0, 1) encode offset + index."""
    rng = np.random.default_rng(offset)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    i = np.arange(offset, offset + n)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = i % 256, i // 256
    return x


def _index_of(x_nchw: torch.Tensor) -> np.ndarray:
    return (x_nchw[:, 0, 0, 0].long() + 256 * x_nchw[:, 1, 0, 0].long()).numpy()


def _write_npz(folder: Path, n_train=40, n_test=10, num_classes=10, **override):
    folder.mkdir(parents=True, exist_ok=True)
    xs = {"train": _ids(n_train), "test": _ids(n_test, offset=1000)}
    ys = {s: np.arange(len(xs[s])) % num_classes for s in xs}
    for s in xs:
        arrays = {"x": xs[s], "y": ys[s]}
        arrays.update(override.get(s, {}))
        np.savez(folder / f"{s}.npz", **arrays)
    return xs, ys


# --------------------------------------------------------------------------- npz folder


def test_npz_folder_under_root_and_root_itself(tmp_path):
    xs, ys = _write_npz(tmp_path / "cifar10")
    for root in (tmp_path, tmp_path / "cifar10"):
        b = load_data("cifar10", root, download=False)
        assert b.train.x.dtype == torch.uint8 and b.train.x.shape == (40, 3, 32, 32)
        assert b.test.y.dtype == torch.int64 and len(b.test) == 10
        # HWC -> CHW without reordering pixels or images
        np.testing.assert_array_equal(b.train.x.permute(0, 2, 3, 1).numpy(), xs["train"])
        np.testing.assert_array_equal(b.test.y.numpy(), ys["test"])
        assert (b.num_classes, b.in_channels, b.image_size, b.val) == (10, 3, 32, None)
        assert b.fingerprint["source"] == "npz"  # no machine path


def test_env_var_gives_the_default_root(tmp_path, monkeypatch):
    _write_npz(tmp_path / "cifar100", num_classes=100)
    monkeypatch.setenv("COMPANION_DATA_ROOT", str(tmp_path))
    assert data.default_data_root() == tmp_path
    assert load_data("cifar100", download=False).num_classes == 100


def test_root_named_after_another_dataset_is_not_used(tmp_path):
    _write_npz(tmp_path / "cifar10")
    with pytest.raises(FileNotFoundError, match="no cifar100 data"):
        load_data("cifar100", tmp_path / "cifar10", download=False)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"train": {"x": np.zeros((4, 32, 32, 3), np.float32)}}, "dtype float32, expected uint8"),
        ({"train": {"x": np.zeros((4, 28, 28, 3), np.uint8)}}, r"shape \(4, 28, 28, 3\)"),
        ({"train": {"x": np.zeros((4, 3, 32, 32), np.uint8)}}, "expected N x 32 x 32 x 3"),
        ({"train": {"y": np.zeros(3, int)}}, "40 images but 3 labels"),
        ({"test": {"y": np.full(10, 10)}}, r"labels span \[10, 10\], expected values in \[0, 10\)"),
        ({"test": {"y": np.zeros(10, np.float32)}}, "expected 1-D integers"),
    ],
)
def test_npz_bad_content_names_file_and_problem(tmp_path, override, message):
    _write_npz(tmp_path / "cifar10", **override)
    with pytest.raises(ValueError, match=message) as err:
        load_data("cifar10", tmp_path, download=False)
    split = next(iter(override))
    assert str(tmp_path / "cifar10" / f"{split}.npz") in str(err.value)


def test_npz_missing_file_or_key(tmp_path):
    _write_npz(tmp_path / "cifar10")
    (tmp_path / "cifar10" / "test.npz").unlink()
    with pytest.raises(FileNotFoundError, match="test.npz is missing; an npz folder holds train.npz"):
        load_data("cifar10", tmp_path, download=False)
    np.savez(tmp_path / "cifar10" / "test.npz", images=np.zeros(3))
    with pytest.raises(ValueError, match=r"missing array\(s\) \['x', 'y'\]"):
        load_data("cifar10", tmp_path, download=False)


def test_nothing_there_without_download(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_data("cifar10", tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path) in msg and "train.npz" in msg and "cifar-10-batches-py" in msg


def test_unknown_dataset_lists_accepted():
    with pytest.raises(ValueError, match="accepted: cifar10, cifar100, svhn, synthetic"):
        load_data("mnist")


# --------------------------------------------------------------------------- official formats


def _cifar_rows(x_hwc):
    """The official row layout: 1024 R, then 1024 G, then 1024 B values per image."""
    return x_hwc.transpose(0, 3, 1, 2).reshape(len(x_hwc), 3072)


def _pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _torchvision_reads(monkeypatch, dataset, root):
    """torchvision's own reader of the official format, its md5 check switched off (our small
    files cannot match the official checksums): {split: (x N×C×H×W, y)}."""
    from torchvision import datasets
    from torchvision.datasets import cifar, svhn

    for module in (cifar, svhn):
        monkeypatch.setattr(module, "check_integrity", lambda *args, **kwargs: True)
    out = {}
    for split in ("train", "test"):
        if dataset == "svhn":
            ds = datasets.SVHN(str(root), split=split)
            out[split] = (ds.data, np.asarray(ds.labels))
        else:
            cls = datasets.CIFAR10 if dataset == "cifar10" else datasets.CIFAR100
            ds = cls(str(root), train=split == "train")
            out[split] = (ds.data.transpose(0, 3, 1, 2), np.asarray(ds.targets))
    return out


def _same_as_torchvision(bundle, reference):
    for split in ("train", "test"):
        x, y = reference[split]
        np.testing.assert_array_equal(getattr(bundle, split).x.numpy(), x)
        np.testing.assert_array_equal(getattr(bundle, split).y.numpy(), y)


def test_official_cifar10_batches(tmp_path, monkeypatch):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    xs = _ids(12)
    labels = (np.arange(12) * 3) % 10
    for k in range(5):  # data_batch_1..5 hold 2, 2, 2, 2, 4 images, in order
        sl = slice(2 * k, 2 * k + 2) if k < 4 else slice(8, 12)
        entry = {"batch_label": "training batch", "labels": labels[sl].tolist(), "data": _cifar_rows(xs[sl])}
        _pickle(base / f"data_batch_{k + 1}", entry)
    test_x = _ids(3, offset=500)
    _pickle(base / "test_batch", {"data": _cifar_rows(test_x), "labels": [9, 0, 4]})
    _pickle(base / "batches.meta", {"label_names": ["airplane"] * 10, "num_cases_per_batch": 2})
    b = load_data("cifar10", tmp_path, download=False)
    np.testing.assert_array_equal(b.train.x.permute(0, 2, 3, 1).numpy(), xs)
    np.testing.assert_array_equal(b.train.y.numpy(), labels)
    np.testing.assert_array_equal(b.test.x.permute(0, 2, 3, 1).numpy(), test_x)
    assert b.test.y.tolist() == [9, 0, 4]
    assert b.fingerprint["source"] == "official:CIFAR10"
    assert b.fingerprint["official_md5"] is False  # our small files are not the official ones
    _same_as_torchvision(b, _torchvision_reads(monkeypatch, "cifar10", tmp_path))
    # also found under <root>/cifar10/
    moved = tmp_path / "inner" / "cifar10"
    moved.mkdir(parents=True)
    base.rename(moved / "cifar-10-batches-py")
    assert len(load_data("cifar10", tmp_path / "inner", download=False).train) == 12


def test_official_cifar10_incomplete_or_corrupt(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    _pickle(base / "data_batch_1", {"data": _cifar_rows(_ids(2)), "labels": [0, 1]})
    with pytest.raises(FileNotFoundError, match="missing .*data_batch_2"):
        load_data("cifar10", tmp_path, download=False)
    for name in ("data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        _pickle(base / name, {"data": np.zeros((2, 1000), np.uint8), "labels": [0, 1]})
    with pytest.raises(ValueError, match=r"data_batch_2: 'data' has shape \(2, 1000\)"):
        load_data("cifar10", tmp_path, download=False)


def test_official_cifar100_uses_fine_labels(tmp_path, monkeypatch):
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    train_x, test_x = _ids(5), _ids(2, offset=70)
    train = {"data": _cifar_rows(train_x), "fine_labels": [99, 0, 57, 3, 42], "coarse_labels": [1] * 5}
    _pickle(base / "train", train)
    test = {"data": _cifar_rows(test_x), "fine_labels": [12, 98], "coarse_labels": [0, 0]}
    _pickle(base / "test", test)
    _pickle(base / "meta", {"fine_label_names": [str(i) for i in range(100)]})
    b = load_data("cifar100", tmp_path, download=False)
    assert b.num_classes == 100
    assert b.train.y.tolist() == [99, 0, 57, 3, 42] and b.test.y.tolist() == [12, 98]
    np.testing.assert_array_equal(b.test.x.permute(0, 2, 3, 1).numpy(), test_x)
    _same_as_torchvision(b, _torchvision_reads(monkeypatch, "cifar100", tmp_path))


def test_official_svhn_mat(tmp_path, monkeypatch):
    scipy_io = pytest.importorskip("scipy.io")
    train_x, test_x = _ids(6), _ids(3, offset=40)
    train_digits, test_digits = np.array([0, 1, 9, 0, 5, 3]), np.array([7, 0, 2])
    for name, x, digits in (("train", train_x, train_digits), ("test", test_x, test_digits)):
        y = np.where(digits == 0, 10, digits).reshape(-1, 1)  # SVHN stores digit 0 as 10
        mat = {"X": x.transpose(1, 2, 3, 0), "y": y.astype(np.uint8)}  # X is H x W x C x N
        scipy_io.savemat(tmp_path / f"{name}_32x32.mat", mat)
    b = load_data("svhn", tmp_path, download=False)
    np.testing.assert_array_equal(b.train.x.permute(0, 2, 3, 1).numpy(), train_x)
    np.testing.assert_array_equal(b.train.y.numpy(), train_digits)
    np.testing.assert_array_equal(b.test.y.numpy(), test_digits)
    _same_as_torchvision(b, _torchvision_reads(monkeypatch, "svhn", tmp_path))


def test_svhn_without_scipy_says_so(tmp_path, monkeypatch):
    for name in ("train_32x32.mat", "test_32x32.mat"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setitem(sys.modules, "scipy", None)  # import scipy now fails
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(RuntimeError, match=r"needs scipy \(pip install scipy\)"):
        load_data("svhn", tmp_path, download=False)
    with pytest.raises(RuntimeError, match="needs scipy"):  # before any download
        load_data("svhn", tmp_path / "empty", download=True)
    assert not (tmp_path / "empty").exists()


def test_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    from torchvision.datasets import utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(utils, "download_and_extract_archive", offline)
    with pytest.raises(FileNotFoundError) as err:
        load_data("cifar100", tmp_path / "fresh", download=True)
    msg = str(err.value)
    assert f"could not download cifar100 to {tmp_path / 'fresh'}" in msg
    assert "network is unreachable" in msg and "cifar-100-python" in msg
    assert "--data-root" in msg and "COMPANION_DATA_ROOT" in msg


# --------------------------------------------------------------------------- splits and options


def test_val_and_subset_are_seeded_disjoint_and_leave_test_alone(tmp_path):
    _write_npz(tmp_path / "cifar10", n_train=100)
    b = load_data("cifar10", tmp_path, val_size=20, subset=30, seed=1, download=False)
    train, val = set(_index_of(b.train.x)), set(_index_of(b.val.x))
    assert len(train) == 30 and len(val) == 20 and not train & val
    assert len(b.test) == 10 and set(_index_of(b.test.x)) == set(range(1000, 1010))
    # labels stay attached to their images (y = index % 10)
    np.testing.assert_array_equal(b.train.y.numpy(), _index_of(b.train.x) % 10)
    again = load_data("cifar10", tmp_path, val_size=20, subset=30, seed=1, download=False)
    assert torch.equal(again.train.x, b.train.x) and torch.equal(again.val.y, b.val.y)
    other = load_data("cifar10", tmp_path, val_size=20, subset=30, seed=2, download=False)
    assert set(_index_of(other.val.x)) != val
    # the validation split does not depend on subset
    full = load_data("cifar10", tmp_path, val_size=20, seed=1, download=False)
    assert set(_index_of(full.val.x)) == val and len(full.train) == 80
    assert b.fingerprint["n_train"] == 30 and b.fingerprint["n_val"] == 20
    assert b.fingerprint["content_blake2b"] == full.fingerprint["content_blake2b"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"val_size": -1}, "val_size must be an integer >= 0"),
        ({"val_size": 40}, "val_size=40 must be smaller than the 40 training images"),
        ({"subset": 0}, "subset must be an integer >= 1"),
        ({"val_size": 10, "subset": 31}, "subset=31 is larger than the 30 training images"),
    ],
)
def test_bad_split_arguments(tmp_path, kwargs, message):
    _write_npz(tmp_path / "cifar10")
    with pytest.raises(ValueError, match=message):
        load_data("cifar10", tmp_path, download=False, **kwargs)


def test_pixel_permutation_is_one_fixed_permutation():
    # recover the permutation from one image whose 1024 positions carry distinct values
    probe = torch.arange(1024).view(1, 1, 32, 32)
    p = permutation.permute(probe, 7).flatten()
    assert not torch.equal(p, torch.arange(1024)) and torch.equal(p.sort().values, torch.arange(1024))
    assert torch.equal(p, permutation.pixel_order(7, 32, 32))
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    moved = permutation.PixelPermutation(7, 32, 32)(x)
    assert torch.equal(moved.flatten(2), x.flatten(2)[:, :, p])  # all channels moved together
    assert torch.equal(permutation.permute(x.float(), 7), moved.float())  # any dtype
    assert not torch.equal(permutation.permute(x, 8), moved)
    with pytest.raises(ValueError, match="for N×C×32×32 batches, got shape"):
        permutation.PixelPermutation(7, 32, 32)(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="permute_pixels must be an integer"):
        permutation.pixel_order(1.5, 32, 32)


# --------------------------------------------------------------------------- synthetic


def test_synthetic_label_is_readable_from_the_patch_only():
    (x, y), (xt, yt) = make_synthetic(300, 100)
    assert x.shape == (300, 3, 32, 32) and x.dtype == np.uint8 and set(np.unique(y)) == set(range(10))
    top, left, side = data.SYNTHETIC_PATCH
    patch = lambda a: a[:, :, top : top + side, left : left + side].reshape(len(a), -1)  # noqa: E731
    # nearest-neighbour on the patch alone: 100% on the test set
    templates = {c: patch(x[y == c])[0] for c in range(10)}
    distance = lambda p, c: np.abs(p.astype(int) - templates[c]).sum()  # noqa: E731
    guess = np.array([min(templates, key=lambda c: distance(p, c)) for p in patch(xt)])
    np.testing.assert_array_equal(guess, yt)
    # outside the patch: no information (same images' pixels for two classes are alike on average)
    outside = x.astype(float).copy()
    outside[:, :, top : top + side, left : left + side] = np.nan
    means = np.array([np.nanmean(outside[y == c]) for c in range(10)])
    assert np.ptp(means) < 5  # uniform noise, mean 127.5, se about 0.5 per class
    again = make_synthetic(300, 100)
    np.testing.assert_array_equal(again[0][0], x)


def test_synthetic_bundle():
    b = load_data("synthetic", synthetic_size=(64, 16), val_size=8, subset=20)
    assert (len(b.train), len(b.val), len(b.test)) == (20, 8, 16)
    assert b.fingerprint["source"].startswith("synthetic")
    assert b.train.x.dtype == torch.uint8 and b.num_classes == 10


def test_fingerprint_tracks_options(tmp_path):
    _write_npz(tmp_path / "cifar10")
    a = load_data("cifar10", tmp_path, download=False).fingerprint
    b = load_data("cifar10", tmp_path, download=False, val_size=4, seed=3).fingerprint
    assert {"source", "n_train", "n_val", "n_test", "content_blake2b"} <= set(a)
    assert (a["n_train"], a["n_val"], a["n_test"]) == (40, 0, 10)
    assert (b["n_train"], b["n_val"], b["seed"], b["val_size"]) == (36, 4, 3, 4)
    _write_npz(tmp_path / "cifar10", test={"y": np.zeros(10, int)})
    assert load_data("cifar10", tmp_path, download=False).fingerprint["content_blake2b"] != a["content_blake2b"]


# --------------------------------------------------------------------------- batches


def test_batches_cover_every_index_once():
    g = torch.Generator().manual_seed(0)
    got = list(batches(10, 4, generator=g))
    assert [len(b) for b in got] == [4, 4, 2]
    assert sorted(torch.cat(got).tolist()) == list(range(10))
    assert torch.cat(got).tolist() != list(range(10))  # shuffled
    assert [len(b) for b in batches(10, 4, generator=g, drop_last=True)] == [4, 4]
    ordered = list(batches(10, 5, generator=None, shuffle=False))
    assert torch.cat(ordered).tolist() == list(range(10))
    a = torch.cat(list(batches(50, 7, generator=torch.Generator().manual_seed(3))))
    b = torch.cat(list(batches(50, 7, generator=torch.Generator().manual_seed(3))))
    assert torch.equal(a, b) and a.dtype == torch.int64


def test_batches_bad_arguments_raise_before_iterating():
    with pytest.raises(ValueError, match="batch_size=11 is larger than the split"):
        batches(10, 11, generator=torch.Generator())
    with pytest.raises(ValueError, match="needs a torch.Generator"):
        batches(10, 2, generator=None)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        batches(10, 0, generator=torch.Generator())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_device():
    b = load_data("synthetic", synthetic_size=(32, 8), device="cuda")
    assert b.train.x.is_cuda and b.test.y.is_cuda
    idx = next(batches(32, 8, generator=torch.Generator(), device="cuda"))
    assert idx.is_cuda


SHARED = Path("/work/shared/data")


@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED / "cifar10" / "train.npz").is_file(), reason="shared CIFAR-10 npz not available"
)
def test_shared_cifar10_npz():
    b = load_data("cifar10", SHARED, download=False, val_size=5000, seed=0)
    assert (len(b.train), len(b.val), len(b.test)) == (30000, 5000, 10000)
    assert torch.bincount(b.test.y).tolist() == [1000] * 10
    assert b.fingerprint["source"] == "npz"


def test_datasets_constant():
    assert DATASETS == ("cifar10", "cifar100", "svhn", "synthetic")


def test_svhn_download_failure(tmp_path, monkeypatch):
    pytest.importorskip("scipy.io")
    from torchvision.datasets import utils

    calls = []

    def offline(url, root, filename, md5):
        calls.append(filename)
        raise OSError("no route to host")

    monkeypatch.setattr(utils, "download_url", offline)
    with pytest.raises(FileNotFoundError, match="could not download svhn .*no route to host.*train_32x32.mat"):
        load_data("svhn", tmp_path)
    assert calls == ["train_32x32.mat"]

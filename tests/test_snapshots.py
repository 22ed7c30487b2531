"""Issue 16: the first layer recorded over training (companion.nn.snapshots), the test predictions
and labels a run stores, and the paired gain of claim (b) at the longer lengths."""

import io

import numpy as np
import pytest
import torch

from companion.book.claims import accuracy_se, paired_gain
from companion.config import TrainConfig
from companion.nn import snapshots
from companion.nn.analysis import first_layer_filters
from companion.nn.models import build_model
from companion.store import results
from companion.train import loop
from companion.train.loop import train

TINY = dict(model="s-fc", alpha=2, epochs=3, dataset="synthetic", subset=256, val_size=64, batch_size=64,
            device="cpu", optimizer="beta-lasso", lam=1e-4)


def test_snapshot_epochs_start_at_initialisation_and_end_at_the_last():
    assert snapshots.snapshot_epochs(3) == [0, 1, 2, 3]
    e = snapshots.snapshot_epochs(480)
    assert len(e) == snapshots.FRAMES and e[0] == 0 and e[-1] == 480 and e == sorted(set(e))
    assert set(np.diff(e)) == {30}


def test_encode_keeps_zeros_and_is_within_half_a_code_step():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 3, 8, 8, generator=g)
    w[w.abs() < 0.5] = 0.0
    w[3] = 0.0  # an all-zero unit
    codes, scale = snapshots.encode(w)
    assert codes.dtype == np.int8 and scale.dtype == np.float32 and codes.shape == w.shape
    back = snapshots.decode(codes, scale)
    assert np.all(back[w.numpy() == 0] == 0) and np.all(back[3] == 0)
    step = scale.reshape(-1, 1, 1, 1)
    assert np.all(np.abs(back - w.numpy()) <= step / 2 + 1e-7)
    assert np.allclose(np.abs(back).reshape(5, -1).max(1), np.abs(w.numpy()).reshape(5, -1).max(1))


def test_a_cpu_scale_recording_stays_under_one_megabyte():
    """S-FC α=8's first layer (2048 units × 3072 inputs), dense Gaussian weights (SGD's worst case)."""
    rec = snapshots.Recorder(480, 2048, seed=0)
    g = torch.Generator().manual_seed(1)
    for epoch in rec.epochs:
        rec.record(epoch, torch.randn(2048, 3, 32, 32, generator=g))
    buf = io.BytesIO()
    np.savez_compressed(buf, **rec.arrays())
    assert len(rec.arrays()["snapshot_epochs"]) == snapshots.FRAMES
    assert buf.tell() <= 1_000_000


def test_a_run_stores_snapshots_predictions_and_test_labels(tmp_path):
    config = TrainConfig(**TINY)
    run = train(config, root=tmp_path, progress=False)
    a = run.arrays()
    epochs = a["snapshot_epochs"]
    assert list(epochs) == snapshots.snapshot_epochs(config.epochs)
    codes, scale = a["snapshot_codes"], a["snapshot_scale"]
    assert codes.dtype == np.int8 and codes.shape == (len(epochs), snapshots.UNITS, 3, 32, 32)
    assert scale.dtype == np.float32 and scale.shape == (len(epochs), snapshots.UNITS)
    # the units are the run's seeded draw, and the last frame is the trained layer
    torch.manual_seed(config.seed)
    model = build_model("s-fc", 2, image_size=32, in_channels=3, num_classes=10, device="cpu")
    n_units = first_layer_filters(model).shape[0]
    assert np.array_equal(a["snapshot_units"], snapshots.choose_units(n_units, config.seed).numpy())
    state = torch.load(run.path / results.CHECKPOINT, weights_only=True)
    model.load_state_dict(state["model"])
    final = first_layer_filters(model)[torch.as_tensor(a["snapshot_units"]).long()].numpy()
    assert np.all(np.abs(snapshots.decode(codes[-1], scale[-1]) - final) <= scale[-1].reshape(-1, 1, 1, 1) / 2 + 1e-7)
    # the first frame is the initialisation: not the trained weights
    assert not np.allclose(snapshots.decode(codes[0], scale[0]), final)
    # predictions scored against the store's test labels give the run's test accuracy
    labels = results.read_test_labels(tmp_path, run.summary["dataset"])
    pred = a["test_predictions"]
    assert pred.dtype == np.uint8 and pred.shape == labels.shape
    assert np.mean(pred == labels) == pytest.approx(run.summary["final_test_acc"])


def test_resume_keeps_the_frames_recorded_before(tmp_path, monkeypatch):
    """A run interrupted after epoch 1 and resumed has the same frames as one trained straight."""
    config = TrainConfig(**TINY)
    real = loop.train_epoch
    calls = {"n": 0}

    def interrupted(loop, epoch):
        if epoch == 2 and calls["n"] == 0:
            calls["n"] += 1
            raise KeyboardInterrupt("killed")
        return real(loop, epoch)

    monkeypatch.setattr(loop, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, root=tmp_path / "a", progress=False)
    monkeypatch.undo()
    saved = torch.load(tmp_path / "a" / config.run_id() / results.CHECKPOINT, weights_only=True)
    assert saved["snapshots"]["epochs"] == [0, 1]
    resumed = train(config, root=tmp_path / "a", resume=True, progress=False).arrays()
    straight = train(config, root=tmp_path / "b", progress=False).arrays()
    for key in ("snapshot_units", "snapshot_epochs", "snapshot_codes", "snapshot_scale", "test_predictions"):
        assert np.array_equal(resumed[key], straight[key]), key


def test_missing_test_labels_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="test_labels.cifar10.0123456789ab.npz"):
        results.read_test_labels(tmp_path, {"dataset": "cifar10", "content_blake2b": "0123456789abcdef"})


def test_paired_gain_uses_the_per_image_difference():
    rng = np.random.default_rng(0)
    n = 4000
    base = rng.random(n) < 0.6  # images the baseline gets right
    better = base.copy()
    flip = rng.choice(n, 120, replace=False)
    better[flip] = True  # the row gets the same images right, and 120 more at most
    a, b = np.stack([better, better]), np.stack([base, base])
    g = paired_gain(a, b)
    assert g["gain"] == pytest.approx(100 * (better.mean() - base.mean()))
    d = 100 * (better.astype(float) - base)
    assert g["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(n))  # identical seeds: no spread term
    unpaired = np.hypot(accuracy_se(100 * better.mean(), n), accuracy_se(100 * base.mean(), n))
    assert g["se_unpaired"] == pytest.approx(unpaired) and g["se"] < g["se_unpaired"] / 3
    with pytest.raises(ValueError, match="same images"):
        paired_gain(a, b[:, :10])

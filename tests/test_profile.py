"""Tests for companion.train.profile: the per-phase step profile (``--profile-steps``)."""

import pytest

from companion.cli import main
from companion.config import TrainConfig
from companion.train.profile import PHASES, profile_steps

TINY = dict(model="s-fc", alpha=2, epochs=4, dataset="synthetic", subset=256, val_size=64, batch_size=64,
            device="cpu", optimizer="beta-lasso", lam=1e-4)


def test_profile_reports_every_phase_and_consistent_rates():
    p = profile_steps(TrainConfig(**TINY), 3, warmup=1)
    assert list(p.seconds) == list(PHASES) and all(v > 0 for v in p.seconds.values())
    assert sum(p.shares.values()) == pytest.approx(1.0)
    assert p.images_per_s > 0 and p.batch == 64
    # S-FC α=2: Linear layers 3072->512->48->10; fwd 2·B·ΣM, weight grads 2·B·ΣM, input grads all but the first
    m = [3072 * 512, 512 * 48, 48 * 10]
    assert p.flops_per_step == 2 * 64 * (2 * sum(m) + sum(m[1:]))
    assert p.achieved_flops == pytest.approx(p.flops_per_step * p.images_per_s / 64)
    assert 0 < p.utilisation and p.peak_flops > 0
    text = "\n".join(p.lines())
    assert all(name in text for name in PHASES) and "beta-lasso (exact step)" in text


def test_cli_profile_steps_trains_nothing(tmp_path, capsys):
    argv = ["train", "--model", "s-fc", "--alpha", "2", "--epochs", "4", "--dataset", "synthetic", "--subset", "256",
            "--val-size", "64", "--batch-size", "64", "--device", "cpu", "--out", str(tmp_path), "--profile-steps", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "forward + backward" in out and "images/s" in out and "% of the measured peak" in out
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("steps", [0, -3])
def test_profile_steps_must_be_positive(steps):
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        profile_steps(TrainConfig(**TINY), steps)

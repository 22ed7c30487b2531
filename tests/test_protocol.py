"""The protocol measurements of issue 9 (companion.book.protocol) and their tables/figure
(companion.book.protocol_figures), on constructed frames and on the committed smoke results."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from companion.book import captions, protocol_figures as plots_protocol, protocol
from companion.experiments import profiles
from companion.experiments.study import Study

SMOKE = Path(__file__).resolve().parents[1] / "results" / "smoke"


def test_steps_and_search_regime_follow_the_profile():
    p = profiles.get("cpu")
    assert protocol.steps(p, 1) == 78 and protocol.steps(p, 120) == 9360  # ⌊10,000 / 128⌋: no partial batch
    init = protocol.initial_first_layer(p)
    assert init["weights"] == 3 * 32 * 32 * 2048  # S-FC α=8's first layer
    assert init["max_abs"] == pytest.approx(1 / 3072 ** 0.5, rel=1e-3)  # default init bound 1/√fan_in
    regime = protocol.search_regime(p)
    assert len(regime) == len(p.betas) * len(p.lambdas) * len(p.lam_first_factors)
    row = regime[(regime["beta"] == 10) & (regime["lam"] == 3e-5)].iloc[0]
    assert row["shrink_x"] == pytest.approx(0.5 * 0.1 * 9e-5 * 9360 / init["mean_abs"])
    assert row["threshold_frac"] == pytest.approx(10 * 9e-5 / init["max_abs"])
    assert (regime.loc[regime["beta"] == 0, "threshold_frac"] == 0).all()
    with pytest.raises(ValueError, match="whole dataset"):
        protocol.steps(profiles.get("paper"), 1)


def curves_frame(density, radius, lr=None) -> pd.DataFrame:
    n = len(density)
    return pd.DataFrame({"epoch": np.arange(1, n + 1), "lr": lr if lr is not None else np.linspace(1, 0, n),
                         "density": density, "radius": radius, "window_mass": np.nan, "train_acc": 50.0})


def test_settled_finds_when_density_and_radius_stop_moving():
    density = [1.0, 0.5, 0.2, 0.1, 0.1, 0.1]
    radius = [13.0, 12.0, 8.0, 6.0, 5.2, 5.0]
    out = protocol.settled(curves_frame(density, radius))
    assert out["epochs"] == 6 and out["density_epoch"] == 4  # 0.1 from epoch 4 on
    assert out["radius_epoch"] == 5  # within 0.5 px of 5.0 from epoch 5
    assert out["density_lr_left"] == pytest.approx(0.4)
    untracked = protocol.settled(curves_frame(density, [np.nan] * 6))
    assert untracked["radius_epoch"] != untracked["radius_epoch"]  # NaN: never tracked
    text = captions.describe_settling(out, "run x")
    assert "epoch 4 on (40 % of the learning rate left)" in text and "0.5 px" in text


def test_table2_seeds_mean_and_spread():
    per_seed = pd.DataFrame({"row": ["a", "a", "a", "b"], "seed": [0, 1, 2, 0],
                             "train_acc": [70.0, 72.0, 74.0, 60.0], "val_acc": [50.0, 51.0, 52.0, 40.0],
                             "test_acc": [55.0, 56.0, 57.0, 45.0], "gap": [15.0, 16.0, 17.0, 15.0],
                             "first_density": [0.01, 0.02, 0.03, 1.0], "radius": [5.0, 6.0, 7.0, 13.0],
                             "window_mass": [0.5, 0.6, 0.7, 0.08], "n_test": 10_000, "wall_s": 1.0})
    seeds = protocol.table2_seeds(per_seed).set_index("row")
    assert seeds.loc["a", "n_seeds"] == 3 and seeds.loc["a", "test_acc_mean"] == 56.0
    assert seeds.loc["a", "test_acc_sd"] == pytest.approx(1.0)
    assert np.isnan(seeds.loc["b", "test_acc_sd"])  # one seed: no spread
    table = plots_protocol.seeds_table(seeds.reset_index(), {"a": 80.0})
    assert table["test acc. (%)"].tolist() == ["56.00 ± 1.00", "45.00"]
    assert table["1st layer non-zeros (%)"].tolist()[0] == "2.00 ± 1.00"
    assert table["paper's test acc. (%)"].tolist() == ["80.00", "—"]


def test_sgd_search_table_marks_the_choice():
    search = pd.DataFrame({"momentum": [0.9, 0.0], "weight_decay": [5e-4, 2e-3], "train_acc": [0.8, 0.7],
                           "val_acc": [0.55, 0.57], "test_acc": [0.56, 0.58]})
    table = plots_protocol.sgd_search_table(search, {"momentum": 0.0, "weight_decay": 2e-3})
    assert table["chosen on validation"].tolist() == ["", "yes"]
    assert table["gap train − test (pp)"].tolist() == ["24.00", "12.00"]


@pytest.mark.skipif(not SMOKE.is_dir(), reason="no committed smoke results")
def test_protocol_frames_on_the_committed_smoke_runs():
    p = profiles.get("smoke")
    per_seed = protocol.seed_frame(protocol.seed_runs(Study(p, SMOKE)))
    assert sorted(per_seed["seed"].unique()) == list(p.seeds) and len(per_seed) == 4 * len(p.seeds)
    assert ((per_seed["first_density"] > 0) & (per_seed["first_density"] <= 1)).all()
    curves, settled = protocol.settling(Study(p, SMOKE))
    assert curves["epoch"].tolist() == list(range(1, p.epochs_long + 1)) and settled["epochs"] == p.epochs_long
    fig = plots_protocol.settling_figure(curves, settled, "smoke")
    assert len(fig.axes) == 4


@pytest.mark.skipif(not SMOKE.is_dir(), reason="no committed smoke results")
def test_null_frame_keeps_each_units_count():
    from companion.experiments import runs
    from companion.nn import analysis

    p = profiles.get("smoke")
    (_, run), = [(k, r) for (k, seed), r in protocol.seed_runs(Study(p, SMOKE)).items()
                 if k == runs.BEST_LASSO and seed == p.seeds[0]]
    frame = protocol.null_frame(run.arrays())
    a = run.arrays()
    assert len(frame) == int((a["unit_nonzeros"] > 0).sum())
    assert (frame["null_radius"] > 0).all() and frame["null_radius"].notna().all()
    fig = plots_protocol.null_figure(frame, 5, analysis.reference_locality(), "β-LASSO")
    assert len(fig.axes) == 2


def test_describe_null():
    stats = {"units": 90, "few_units": 3, "few_median_radius": 1.2, "median_radius": 5.0, "null_median_radius": 11.0,
             "median_window_mass": 0.6, "null_median_window_mass": 0.1, "p_value": 2e-30}
    text = captions.describe_null(stats)
    assert "5.0 px trained and 11.0 px" in text and "p = 2e-30" in text and "3 filters with 1–4" in text
    assert "nothing to compare" in captions.describe_null(dict(stats, units=0))


def test_the_trainer_takes_the_steps_the_book_counts(tmp_path):
    """One source for the step count (issue 17): the trainer's cosine schedule runs over
    ``config.steps_per_epoch`` steps an epoch, the count the book's regime table uses."""
    import torch

    from companion.config import TrainConfig, steps_per_epoch
    from companion.store import results
    from companion.train.loop import train

    config = TrainConfig(model="s-fc", alpha=1, epochs=2, dataset="synthetic", subset=100, batch_size=32,
                         device="cpu")
    run = train(config, root=tmp_path, progress=False)
    state = torch.load(run.path / results.CHECKPOINT, weights_only=True)
    assert steps_per_epoch(100, 32) == 3  # the partial batch of 4 images is dropped
    assert state["scheduler"]["last_epoch"] == state["scheduler"]["T_max"] == 2 * steps_per_epoch(100, 32)

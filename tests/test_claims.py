"""The paper's claims checked at a profile (companion.experiments, chapter helpers), fed
constructed frames whose outcome is known; and the settings / caption sentences."""

import numpy as np
import pandas as pd
import pytest

from companion.book import captions, claims, labels, summary, tables
from companion.experiments import runs
from companion import paper
from companion.book import protocol
from companion.experiments import profiles
from companion.experiments.study import Study


def table1_frame(ours: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Table 1 with our (short, long) test accuracy per model and the paper's CIFAR-10 numbers."""
    return pd.DataFrame([{"model": m, "short_test": s, "long_test": l,
                          "paper_400": paper.TABLE1_ACCURACY[m][("cifar10", 400)],
                          "paper_4000": paper.TABLE1_ACCURACY[m][("cifar10", 4000)]}
                         for m, (s, l) in ours.items()])


#: a Table 1 that behaves like the paper's: LOCAL ≫ FC, CONV ≈ LOCAL, S-FC > D-FC, 3-FC; S gains more
LIKE_PAPER = {"d-conv": (60, 60), "d-local": (58, 58), "d-fc": (40, 40), "s-conv": (55, 60),
              "s-local": (54, 59), "s-fc": (45, 50), "3-fc": (42, 46)}


def test_table1_observations_on_the_papers_numbers_all_hold():
    obs = claims.table1_observations(table1_frame(LIKE_PAPER))
    assert obs["holds_in_paper"].all()  # the rules read the paper's own Table 1 as the paper does
    assert obs["holds_here"].all()
    first = obs.iloc[0]
    assert first["ours_a"] == 18 and first["ours_b"] == 2  # D short: LOCAL − FC, CONV − LOCAL
    assert len(obs) == 9  # (1) D, S, (3), (4) per training length, and (2)


def test_locality_fails_when_conv_local_gap_is_not_much_smaller():
    ours = dict(LIKE_PAPER, **{"d-conv": (70, 70)})  # CONV − LOCAL = 12 vs LOCAL − FC = 18: not > 2×
    obs = claims.table1_observations(table1_frame(ours))
    d_rows = obs[obs["observation"].str.contains("locality, D")]
    assert not d_rows["holds_here"].any()
    assert not claims.claim_locality(table1_frame(ours))["holds"]
    assert claims.claim_locality(table1_frame(LIKE_PAPER))["holds"]
    # a larger factor turns the paper-like table's S rows false (LOCAL − FC = 9, |CONV − LOCAL| = 1)
    assert not claims.claim_locality(table1_frame(LIKE_PAPER), factor=10)["holds"]


def test_locality_gap_sign_matters():
    ours = dict(LIKE_PAPER, **{"s-fc": (60, 65)})  # FC above LOCAL: LOCAL − FC < 0
    gaps = claims.table1_gaps({m: s for m, (s, _) in ours.items()})
    assert [g["holds"] for g in gaps] == [True, False, True, True]


def test_longer_training_claim():
    assert claims.claim_longer_training(table1_frame(LIKE_PAPER))["holds"]
    deep_gain = {m: (s, l + 10 if m.startswith("d-") else l) for m, (s, l) in LIKE_PAPER.items()}
    claim = claims.claim_longer_training(table1_frame(deep_gain))
    assert not claim["holds"] and "D +10.00 pp" in claim["ours"]


def test_table1_missing_model_or_column_is_refused():
    frame = table1_frame(LIKE_PAPER)
    with pytest.raises(ValueError, match="3-fc"):
        claims.table1_observations(frame[frame["model"] != "3-fc"])
    with pytest.raises(ValueError, match="paper_4000"):
        claims.table1_observations(frame.drop(columns="paper_4000"))


def table2_frame(sgd: float, lasso: float) -> pd.DataFrame:
    rows = ["S-CONV, SGD", "S-LOCAL, SGD", "S-FC, SGD", "S-FC, β-LASSO (β=50)", labels.run_label(runs.BEST_LASSO)]
    acc = {"S-FC, SGD": sgd, labels.run_label(runs.BEST_LASSO): lasso}
    return pd.DataFrame({"row": rows, "test_acc": [acc.get(r, 50.0) for r in rows],
                         "paper": [87.05, 85.86, 78.63, 85.19, None],
                         "beta": [None, None, None, 50.0, 1.0], "lam": [None, None, None, 1e-4, 3e-5],
                         "lam_first": [None, None, None, 3e-4, 9e-5], "val_acc": [50.0] * 5})


def seeds_frame(sgd: float, lasso: float, sd: float = 0.5, k: int = 3) -> pd.DataFrame:
    """protocol.table2_seeds's frame for S-FC SGD and the chosen β-LASSO (mean ± sd over k seeds)."""
    return pd.DataFrame({"row": ["S-FC, SGD", labels.run_label(runs.BEST_LASSO)], "n_seeds": [k, k],
                         "test_acc_mean": [sgd, lasso], "test_acc_sd": [sd, sd] if k > 1 else [np.nan] * 2,
                         "n_test": [10_000, 10_000]})


def test_lasso_beats_sgd_claim_uses_seed_spread_and_test_noise():
    paper_t2 = {"sgd": 78.63, "lasso": 85.19}
    claim = claims.claim_lasso_beats_sgd(seeds_frame(40.0, 42.0), paper_t2)
    se = (claims.accuracy_se(40.0, 10_000) ** 2 + claims.accuracy_se(42.0, 10_000) ** 2 + 2 * 0.5 ** 2 / 3) ** 0.5
    assert claim["holds"] and "+2.00 pp" in claim["ours"] and f"1 s.e. {se:.2f} pp" in claim["ours"]
    assert "85.19" in claim["paper"] and "40.00 ± 0.50" in claim["ours"] and "3 seeds" in claim["ours"]
    # the same gain with a large seed spread is within noise: 2 s.e. > 2 pp
    assert not claims.claim_lasso_beats_sgd(seeds_frame(40.0, 42.0, sd=2.0), paper_t2)["holds"]
    # a positive gain smaller than twice the test-sampling error alone does not hold either
    assert not claims.claim_lasso_beats_sgd(seeds_frame(40.0, 41.0, k=1), paper_t2)["holds"]
    one = claims.seed_gain(seeds_frame(40.0, 42.0, k=1), labels.run_label(runs.BEST_LASSO), "S-FC, SGD")
    assert one["se"] == pytest.approx(np.hypot(claims.accuracy_se(40.0, 10_000), claims.accuracy_se(42.0, 10_000)))
    with pytest.raises(ValueError, match="no row"):
        claims.claim_lasso_beats_sgd(seeds_frame(1, 2).iloc[:1], paper_t2)


def test_accuracy_se():
    assert claims.accuracy_se(50.0, 10_000) == pytest.approx(0.5)
    assert claims.accuracy_se(100.0, 10) == 0


def test_describe_lasso_choice_names_validation():
    text = captions.describe_lasso_choice(table2_frame(40, 42))
    assert "β = 1" in text and "λ = 3·10⁻⁵" in text and "validation" in text and "not used" in text


def test_locality_stats_ignore_empty_units():
    arrays = {"unit_nonzeros": np.array([0, 10, 20, 30]), "locality_radius": np.array([np.nan, 2.0, 3.0, 4.0]),
              "locality_window_mass": np.array([np.nan, 0.9, 0.8, 0.1])}
    stats = claims.locality_stats(arrays)
    assert stats == {"median_radius": 3.0, "median_window_mass": 0.8, "empty_units": 1, "units": 4}
    with pytest.raises(ValueError, match="locality_radius"):
        claims.locality_stats({"unit_nonzeros": np.ones(3)})


REFS = {"uniform": {"median_radius": 13.0, "median_window_mass": 0.08},
        "s-local": {"median_radius": 3.7, "median_window_mass": 1.0}}
BEATS_NULL = {"units": 90, "few_units": 10, "few_median_radius": 1.0, "median_radius": 5.0,
              "null_median_radius": 11.0, "median_window_mass": 0.6, "null_median_window_mass": 0.1, "p_value": 1e-9}


def test_local_filters_claim():
    sgd = {"median_radius": 12.5, "median_window_mass": 0.09}
    local = {"median_radius": 4.0, "median_window_mass": 0.7, "empty_units": 3, "units": 10}
    claim = claims.claim_local_filters(local, sgd, REFS, BEATS_NULL)
    assert claim["holds"] and "3 of 10 units all zero" in claim["ours"]
    assert "10 units with 1–4 non-zeros apart" in claim["ours"] and "p = 1e-09" in claim["ours"]
    sparse_not_local = {"median_radius": 11.0, "median_window_mass": 0.7}  # below SGD, above midpoint 8.35
    assert not claims.claim_local_filters(sparse_not_local, sgd, REFS, BEATS_NULL)["holds"]
    small_window = {"median_radius": 4.0, "median_window_mass": 0.3}  # window mass below midpoint 0.54
    assert not claims.claim_local_filters(small_window, sgd, REFS, BEATS_NULL)["holds"]
    as_null = dict(BEATS_NULL, median_radius=10.0)  # > 0.8 × the null's 11.0
    assert not claims.claim_local_filters(local, sgd, REFS, as_null)["holds"]
    not_significant = dict(BEATS_NULL, p_value=0.01)
    assert not claims.claim_local_filters(local, sgd, REFS, not_significant)["holds"]


def test_null_comparison_tells_local_filters_from_random_placement():
    from companion.nn.analysis import locality

    rng = np.random.default_rng(0)
    filters = np.zeros((60, 3, 32, 32), dtype=np.float32)
    for u in range(40):  # local: 20 weights inside one 5×5 patch
        y, x = rng.integers(0, 27, 2)
        idx = rng.choice(3 * 25, 20, replace=False)
        patch = np.zeros(3 * 25, dtype=np.float32)
        patch[idx] = rng.uniform(0.5, 1, 20)
        filters[u, :, y:y + 5, x:x + 5] = patch.reshape(3, 5, 5)
    for u in range(40, 57):  # spread out: 20 weights anywhere
        flat = np.zeros(3 * 1024, dtype=np.float32)
        flat[rng.choice(3 * 1024, 20, replace=False)] = 1.0
        filters[u] = flat.reshape(3, 32, 32)
    filters[57, 0, 3, 3] = filters[58, 1, 9, 9] = 1.0  # two units with one weight; unit 59 empty
    scores = locality(__import__("torch").from_numpy(filters))
    arrays = {"unit_nonzeros": (filters != 0).reshape(60, -1).sum(1), "locality_radius": scores["radius"].numpy(),
              "locality_window_mass": scores["window_mass"].numpy()}
    null = claims.null_comparison(protocol.null_frame(arrays))
    assert null["units"] == 57 and null["few_units"] == 2 and null["few_median_radius"] == 0.0
    assert null["median_radius"] < 0.8 * null["null_median_radius"] and null["p_value"] < 1e-3
    spread = dict(arrays, unit_nonzeros=arrays["unit_nonzeros"][40:57],
                  locality_radius=arrays["locality_radius"][40:57],
                  locality_window_mass=arrays["locality_window_mass"][40:57])
    assert claims.null_comparison(protocol.null_frame(spread))["p_value"] > 1e-3  # random filters are not told apart from the null


def test_locality_references_are_computed():
    refs = claims.locality_references()
    assert refs["s-local"]["median_radius"] < refs["uniform"]["median_radius"]
    assert refs["s-local"]["median_window_mass"] == pytest.approx(1.0)
    assert refs["uniform"]["median_window_mass"] < 0.2


def test_fit_caveat():
    assert summary.fit_caveat([60.0, 99.0]) == {"train_min": 60.0, "train_max": 99.0, "underfit": True}
    assert not summary.fit_caveat([96.0, 100.0])["underfit"]
    with pytest.raises(ValueError, match="at least one"):
        summary.fit_caveat([])


def layers_frame(lasso_nonzeros: int) -> pd.DataFrame:
    return pd.DataFrame({"row": ["S-CONV, SGD", "S-LOCAL, SGD", labels.run_label(runs.BEST_LASSO)],
                         "first_weights": [1944, 124_416, 1_572_864],
                         "first_nonzeros": [1944, 124_416, lasso_nonzeros]})


@pytest.mark.parametrize("nonzeros,holds,where", [(50_000, True, "between the two"),
                                                  (1_000, True, "below S-CONV's"),
                                                  (124_416, False, "above S-LOCAL's")])
def test_first_layer_nonzeros_claim(nonzeros, holds, where):
    claim = claims.claim_first_layer_nonzeros(layers_frame(nonzeros))
    assert claim["holds"] is holds and where in claim["ours"]


def test_fit_order():
    fit = pd.DataFrame({"model": ["resnet18", "d-conv", "s-conv", "3-fc"], "min_params": [1e4, 2e4, 1e5, 1e6],
                        "best_test_acc": [90.0, 88.0, 80.0, 60.0]})
    assert claims.orders_agree(fit) and claims.claim_fit_order(fit)["holds"]
    assert "agree, as in the paper" in claims.describe_fit(fit)
    swapped = fit.assign(best_test_acc=[90.0, 70.0, 80.0, 60.0])
    assert not claims.orders_agree(swapped) and "do not agree" in claims.describe_fit(swapped)
    tie = fit.assign(best_test_acc=[90.0, 80.0, 80.0, 60.0])
    assert not claims.orders_agree(tie)
    assert not claims.orders_agree(fit.assign(min_params=[1e4, 2e4, float("nan"), 1e6]))


def test_fit_target_is_the_highest_accuracy_every_family_reaches():
    scaling = pd.DataFrame({"model": ["a", "a", "b", "b"], "params": [1, 2, 1, 2],
                            "train_acc": [60.0, 95.0, 70.0, 80.0], "test_acc": [1.0, 2.0, 3.0, 4.0]})
    target = claims.fit_target(scaling)
    assert target == 80.0
    fit = tables.fewest_params_to_fit(scaling, target)
    assert fit["min_params"].notna().all()  # every family reaches it by construction
    with pytest.raises(ValueError, match="train_acc"):
        claims.fit_target(scaling.drop(columns="train_acc"))


def test_kernel_claim():
    f5 = pd.DataFrame({"kernel_size": [3, 3, 5, 5], "optimizer": ["sgd", "beta-lasso"] * 2,
                       "test_acc": [50.0, 51.0, 49.0, 52.5]})
    claim = claims.claim_kernels(f5)
    assert claim["holds"] and "2 of 2" in claim["ours"] and "5×5: +3.50 pp" in claim["ours"]
    assert not claims.claim_kernels(f5.assign(test_acc=[50.0, 51.0, 49.0, 48.0]))["holds"]
    with pytest.raises(ValueError, match="both optimizers"):
        claims.lasso_gains(f5[f5["optimizer"] == "sgd"])


def test_describe_claims_counts_flags_synthetic_and_underfitting():
    claims = pd.DataFrame({"id": ["a", "b", "c", "d"], "holds": [True, False, True, False],
                           "underfit": [True, True, False, False], "train_min": [50.0, 60.0, 99.0, 97.0],
                           "train_max": [70.0, 76.0, 100.0, 99.0]})
    smoke = captions.describe_claims(claims, profiles.get("smoke"))
    assert "2 of 4" in smoke and "(a, c)" in smoke and "synthetic" in smoke
    cpu = captions.describe_claims(claims, profiles.get("cpu"))
    assert "synthetic" not in cpu
    assert "(b): 60–76 %" in cpu and "no refutation" in cpu  # b fails on underfit networks
    assert "(d) do not hold on networks that fit" in cpu  # d fails on networks that fit


def test_settings_comparison_follows_the_profile():
    cpu = captions.settings_comparison(profiles.get("cpu")).set_index("setting")
    ours = cpu["this book (profile cpu)"]
    assert ours["epochs"].startswith("8 (short") and "120 (long" in ours["epochs"]
    assert "10,000 training images" in ours["data"] and ours["batch size"] == "128"
    assert cpu.loc["batch size", "paper (Appendix A.2)"] == "512"
    assert "S-CONV 150" in cpu.loc["network size", "paper (Appendix A.2)"]
    assert len(captions.settings_comparison(profiles.get("cpu"), ["lasso"])) == 1
    with pytest.raises(ValueError, match="unknown setting topic"):
        captions.settings_comparison(profiles.get("cpu"), ["optimiser"])


def test_paper_label_and_reference_dataset():
    assert labels.paper_label(profiles.get("smoke"), 400) == "paper, 400 ep., CIFAR-10"
    assert labels.paper_label(profiles.get("cpu", dataset="svhn")) == "paper, SVHN"


def test_describe_setting_reads_runs(tmp_path):
    p = profiles.get("smoke")
    configs = runs.scaling_configs(p)
    with pytest.raises(FileNotFoundError, match="none of the"):
        captions.describe_setting(Study(p, tmp_path), configs)
    with pytest.raises(ValueError, match="at least one"):
        captions.describe_setting(Study(p, tmp_path), [])
    summary = {"dataset": {"n_train": 512, "n_val": 256, "n_test": 512}}
    text = captions.describe_data(p, summary)
    assert "512 training images, 256 held out" in text and "pipeline check" in text


def test_describe_observations_names_what_fails():
    ours = dict(LIKE_PAPER, **{"d-conv": (70, 58)})  # CONV − LOCAL = 12 after short training only
    text = captions.describe_observations(claims.table1_observations(table1_frame(ours)))
    assert "8 of 9 checks hold (not: (1) D short)" in text and "9 of 9" in text


def test_chapter_helpers_on_the_committed_smoke_runs(monkeypatch):
    """The committed smoke results (results/smoke) hold every run the chapters need: the helpers
    read them without training anything."""
    from pathlib import Path

    from companion.train import loop as training

    root = Path(__file__).resolve().parents[1] / "results" / "smoke"
    if not root.is_dir():
        pytest.skip("no committed smoke results")

    def no_training(*args, **kwargs):
        raise AssertionError("a chapter helper started training")

    monkeypatch.setattr(training, "_run", no_training)
    p = profiles.get("smoke")
    study = Study(p, root)
    claims = summary.claims(study)
    longer = [f"{c}, {e} ep." for e in p.longer_epochs for c in "bc"]  # issue 16: (b), (c) at each longer length
    assert list(claims["id"]) == list("abcdefg") + longer and claims["holds"].map(type).eq(bool).all()
    assert claims["scale"].str.startswith("smoke: synthetic, 512 training images").all()
    f5 = tables.figure5_table(study)
    assert ((f5["conv_nonzeros"] <= f5["conv_weights"]) & (f5["conv_weights"] < f5["weights"])).all()
    text = captions.describe_setting(study, runs.scaling_configs(p))
    assert "512 training images, 256 held out" in text and "ResNet18 2" in text and "SGD" in text

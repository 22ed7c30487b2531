"""Profiles and the experiments behind the chapters (smoke profile, trained into a temp store)."""

import pytest

from companion.book import labels, tables
from companion.experiments import profiles, runs, stages
from companion.experiments.study import Study
from companion.nn.params import count_params


def test_profiles_are_defined_once_and_validated():
    assert profiles.PROFILE_NAMES == ("smoke", "cpu", "paper")
    paper = profiles.get("paper")
    assert runs.table1_alphas(paper)["s-conv"] == 150  # Section 2.2's 256 M budget
    assert runs.table1_alphas(paper)["d-conv"] == 15
    assert profiles.get("cpu", data_root="/x").data_root == "/x"
    with pytest.raises(ValueError, match="unknown profile 'gpu'"):
        profiles.get("gpu")
    with pytest.raises(ValueError, match="unknown profile field"):
        profiles.get("cpu", epochs=3)


def test_search_grid_and_table1_configs():
    p = profiles.get("cpu")
    search = runs.search_configs(p)
    assert len(search) == len(p.betas) * len(p.lambdas) * len(p.lam_first_factors)
    assert {c.epochs for c in search} == {p.epochs_long}  # selected at the length it is reported at
    sgd = runs.sgd_search_configs(p)
    assert [(c.momentum, c.weight_decay) for c in sgd] == list(p.sgd_grid) and {c.epochs for c in sgd} == {120}
    assert {c.epochs for c in runs.search_configs(profiles.get("paper"))} == {400}  # paper: short search
    with pytest.raises(ValueError, match="search_length"):
        profiles.get("cpu", search_length="medium")
    assert all(c.optimizer == "beta-lasso" and c.model == "s-fc" and c.val_size == p.val_size for c in search)
    t1 = runs.table1_configs(p)
    assert len(t1) == 14 and {c.epochs for c in t1} == {p.epochs_short, p.epochs_long}
    for c in t1:  # every FC counterpart reaches the common budget
        fc = "3-fc" if c.model == "3-fc" else c.model[0] + "-fc"
        assert count_params(fc, c.alpha) >= p.fc_budget


def test_smoke_experiments_train_once_and_select_on_validation(tmp_path, monkeypatch):
    p = profiles.get("smoke")
    with pytest.raises(runs.MissingRunsError, match="companion experiments --profile smoke") as missing:
        Study(p, tmp_path).lasso_search  # listing never trains: one error naming every missing run
    assert str(missing.value).count("s-fc") == len(runs.search_configs(p))
    with pytest.raises(runs.MissingRunsError):
        stages.stage2(Study(p, tmp_path))  # stage 2 is listed from the finished search
    stages.ensure(runs.search_configs(p) + runs.sgd_search_configs(p), tmp_path, progress=False)
    found = Study(p, tmp_path).lasso_search
    assert len(found) == len(runs.search_configs(p))
    best = Study(p, tmp_path).lasso_selection["best"]
    top = found.sort_values(["val_acc", "lam"], ascending=[False, True]).iloc[0]
    assert best["beta"] == top["beta"]  # chosen by validation accuracy, not test
    # everything is cached now: a second call trains nothing
    from companion.train import loop as training

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was retrained")

    monkeypatch.setattr(training, "_run", no_training)
    study = Study(p, tmp_path)
    again = study.lasso_search
    assert again["run_id"].tolist() == found["run_id"].tolist()
    sgd_found = study.sgd_search
    top_sgd = sgd_found.sort_values(["val_acc", "weight_decay"], ascending=[False, True]).iloc[0]
    assert study.sgd_choice["momentum"] == top_sgd["momentum"]  # SGD chosen on validation too
    stage2 = stages.stage2(study)  # chosen rows, their seeds and permuted copies, Figure 5's β-LASSO
    assert not {c.run_id() for c in stage2} & {c.run_id() for c in stages.stage1(p)}
    seeded = {(c.model, c.optimizer) for c in stage2 if c.seed == p.seeds[1]}
    assert seeded == {("s-fc", "sgd"), ("s-fc", "beta-lasso")}  # S-CONV/S-LOCAL seeds are in stage 1
    assert any(c.model == "resnet18" and c.optimizer == "beta-lasso" for c in stage2)


def test_run_labels_come_from_the_key():
    assert labels.run_label(runs.S_FC_SGD) == "S-FC, SGD"
    assert labels.run_label(runs.lasso_key(1)) == "S-FC, β-LASSO (β=1)"
    assert labels.run_label(runs.BEST_LASSO) == "S-FC, β-LASSO (best β on validation)"
    assert labels.run_label(runs.lasso_key(50), with_model=False) == "β-LASSO (β=50)"
    assert labels.model_label("resnet18") == "ResNet18" and labels.model_label("3-fc") == "3-FC"


def test_fewest_params_to_fit():
    import pandas as pd

    df = pd.DataFrame({"model": ["a", "a", "b"], "params": [10, 100, 50],
                       "train_acc": [60.0, 90.0, 70.0], "test_acc": [50.0, 55.0, 65.0]})
    out = tables.fewest_params_to_fit(df, 80.0).set_index("model")
    assert out.loc["a", "min_params"] == 100 and out.loc["a", "best_test_acc"] == 55.0
    assert out.loc["b", "min_params"] != out.loc["b", "min_params"]  # NaN: never reaches 80 %


def test_experiments_fan_out_checks_options_before_any_stage(tmp_path):
    import pytest

    from companion.experiments import profiles

    with pytest.raises(ValueError, match="time"):
        stages.train_missing(profiles.get("smoke"), tmp_path, executor="slurm", time="abc")
    assert not any(tmp_path.iterdir())  # nothing trained or submitted


def test_experiments_executor_with_every_run_finished_submits_nothing():
    from companion.experiments import profiles, runs

    p = profiles.get("smoke")
    before = {c.run_id() for c in stages.stage1(p)}
    done = stages.train_missing(p, None, executor="local")  # the committed smoke store is complete
    assert before <= {r.run_id for r in done}
    assert not (runs.results_dir(p) / ".launch").exists() or not any((runs.results_dir(p) / ".launch").rglob("*.pkl"))

"""Tests for companion.experiments.sweep: grid expansion, the packaged Appendix A.2 grid, selection by
validation accuracy (launching on executors: tests/test_launch.py)."""

import pandas as pd
import pytest

from companion import paper
from companion.experiments.sweep import best_by_validation, expand, packaged_spec, run_sweep

TINY = dict(dataset="synthetic", subset=128, val_size=64, batch_size=64, device="cpu", epochs=1,
            alpha=16, model="3-fc")


def test_paper_a2_grid_size_and_values():
    configs = expand(packaged_spec("paper_a2"))
    lasso = [c for c in configs if c.optimizer == "beta-lasso"]
    sgd = [c for c in configs if c.optimizer == "sgd"]
    # β-LASSO: 3 datasets × 5 λ_first × 5 λ × 2 dropout; SGD: 3 datasets × 7 models × 2 × 5 × 2
    assert len(lasso) == 3 * 5 * 5 * 2 and len(sgd) == 3 * 7 * 2 * 5 * 2
    assert len({c.run_id() for c in configs}) == len(configs) == 570
    assert {c.lam for c in lasso} == {c.lam_first for c in lasso} == set(paper.LAMBDAS)
    assert {c.momentum for c in sgd} == set(paper.SGD_MOMENTA)
    assert {c.weight_decay for c in sgd} == set(paper.SGD_WEIGHT_DECAYS)
    assert all(c.beta == paper.BETA and c.model == "s-fc" for c in lasso)
    assert {c.model for c in sgd} == {"s-conv", "s-local", "s-fc", "d-conv", "d-local", "d-fc", "3-fc"}
    for c in configs:
        assert (c.lr, c.batch_size, c.epochs, c.augment) == (paper.LR, paper.BATCH_SIZE, 400, "fast-autoaugment")
        assert c.val_size > 0 and c.dropout in (0.0, 0.5)


@pytest.mark.parametrize("spec, message", [
    ({"base": {**TINY, "lamda": 1e-6}}, "block 0: unknown field.*in base: lamda; accepted: model"),
    ({"base": TINY, "grid": {"lr": 0.1}}, "grid field lr must be a non-empty list"),
    ({"base": TINY, "grid": {"seed": [0], "learning_rate": [0.1]}}, "unknown field.*in grid: learning_rate"),
    ({"base": TINY, "grid": {"alpha": [8]}}, "alpha are in both base and grid"),
    ([{"base": TINY}, {"base": {**TINY, "optimizer": "adam"}}], "block 1: unknown optimizer 'adam'"),
    ({"base": TINY, "grids": {}}, "unknown key.*grids; accepted: base, grid"),
    ([], "no blocks"),
])
def test_bad_spec_is_one_clear_error(spec, message):
    with pytest.raises(ValueError, match=message):
        expand(spec)


def test_yaml_file_expansion_and_dedup(tmp_path):
    spec = tmp_path / "grid.yaml"
    spec.write_text(
        "- base: {model: 3-fc, alpha: 16, epochs: 1, optimizer: beta-lasso}\n"
        "  grid: {lam: [1e-6, 2.0e-6], momentum: [0.0, 0.9]}\n"  # momentum: ignored by β-LASSO
    )
    configs = expand(spec)
    assert [c.lam for c in configs] == [1e-6, 2e-6]  # YAML's "1e-6" string read as a number
    with pytest.raises(FileNotFoundError, match="does not exist"):
        expand(tmp_path / "missing.yaml")


def test_dry_run_trains_nothing(tmp_path):
    df = run_sweep({"base": TINY, "grid": {"seed": [0, 1, 2]}}, tmp_path, progress=False, dry_run=True)
    assert len(df) == 3 and not df["finished"].any()
    assert list(tmp_path.iterdir()) == []


def test_best_by_validation_never_uses_test():
    df = pd.DataFrame({
        "model": ["a", "a", "b"], "final_val_acc": [0.6, 0.5, 0.7], "final_test_acc": [0.1, 0.9, 0.2],
        "run_id": ["x", "y", "z"],
    })
    best = best_by_validation(df, "model")
    assert list(best["run_id"]) == ["x", "z"]
    with pytest.raises(ValueError, match="select by a validation metric"):
        best_by_validation(df, "model", metric="final_test_acc")
    with pytest.raises(ValueError, match="train with val_size > 0"):
        best_by_validation(df.assign(final_val_acc=None), "model")


def test_tiny_sweep_runs_skips_finished_and_picks_best(tmp_path, capsys):
    from companion.cli import main

    spec = tmp_path / "tiny.yaml"
    base = ", ".join(f"{k}: {v}" for k, v in TINY.items())
    spec.write_text(f"base: {{{base}}}\ngrid: {{lr: [0.05, 0.5, 1.0e30]}}\n")  # 1e30 diverges
    assert main(["sweep", str(spec), "--root", str(tmp_path / "runs"), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "1 run(s) failed" in captured.err
    df = run_sweep(spec, tmp_path / "runs", progress=False)  # second time: two cached, one fails again
    assert sorted(df["lr"]) == [0.05, 0.5] and df["final_val_acc"].notna().all()
    assert len(df.attrs["failed"]) == 1 and "non-finite" in next(iter(df.attrs["failed"].values()))
    assert len(df.attrs["report"].already_finished) == 2 and df.attrs["report"].trained == []
    best = best_by_validation(df, ["model"])
    assert len(best) == 1 and best["final_val_acc"].iloc[0] == df["final_val_acc"].max()
    assert "best by final_val_acc" in captured.out and best["run_id"].iloc[0] in captured.out
    assert main(["sweep", str(spec), "--root", str(tmp_path / "runs"), "--dry-run"]) == 0
    assert "3 configs (2 finished, 1 to run)" in capsys.readouterr().out
    assert main(["sweep", str(spec), "--root", str(tmp_path / "runs"), "--status"]) == 0
    out = capsys.readouterr().out  # the diverged run's error is recorded, so it is "failed"
    assert "3 configs under" in out and "2 finished, 0 running, 1 failed" in out and "non-finite" in out


def test_sweep_without_a_validation_split_lists_what_it_trained_and_how_to_select(tmp_path, capsys):
    from companion.cli import main

    spec = tmp_path / "noval.yaml"
    base = ", ".join(f"{k}: {v}" for k, v in {**TINY, "val_size": 0}.items())
    spec.write_text(f"base: {{{base}}}\ngrid: {{lr: [0.05, 0.5]}}\n")
    assert main(["sweep", str(spec), "--root", str(tmp_path / "runs"), "--quiet"]) == 0
    out = capsys.readouterr().out
    df = run_sweep(spec, tmp_path / "runs", progress=False)
    assert "2 run(s) finished" in out and all(r in out for r in df["run_id"])
    assert "set val_size" in out and "no validation split" in out

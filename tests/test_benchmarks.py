"""The benchmarks that quote issue 18's figures still run end to end (tiny sizes; the figures
themselves come from quiet-machine runs, never from tests)."""

import importlib.util
import os
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_paper_scale_profiles_the_trainers_step(capsys, monkeypatch):
    monkeypatch.setenv("COMPANION_BETA_LASSO_STEP", "auto")
    load("bench_paper_scale").main(["--device", "cpu", "--alpha", "1", "--batch", "16", "--steps", "1",
                                    "--warmup", "0", "--augment", "flip-crop", "--modes", "exact"])
    out = capsys.readouterr().out
    assert "s-fc α=1, batch 16, beta-lasso (exact step)" in out
    assert "optimizer step" in out and "400 epochs:" in out and "% of the nominal peak" in out
    assert os.environ["COMPANION_BETA_LASSO_STEP"] == "auto"  # the benchmark restores the setting


def test_bench_beta_lasso_prints_the_goal_line(capsys):
    assert load("bench_beta_lasso").main(["--params", "2e5", "--repeats", "1", "--steps", "1", "--no-naive"]) == 0
    out = capsys.readouterr().out
    assert "BetaLasso(fused=True) / SGD: median of paired x" in out and "bit-identical to the exact mode here" in out

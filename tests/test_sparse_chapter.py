"""Chapter 11 (sparse execution): its sentences and tables from constructed frames."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure

from companion.book import weight_captions, weight_tables
from companion.book import sparse_figures as plots_sparse

ROWS = ["S-FC, SGD", "S-FC, β-LASSO (β=1; best on validation)"]


def summary(same=(1000, 1000), weights=("checkpoint", "weights.npz"), test=(50.0, 52.0)) -> pd.DataFrame:
    df = pd.DataFrame({
        "row": ROWS, "method": [r.removeprefix("S-FC, ") for r in ROWS], "weights": list(weights), "test_acc": list(test),
        "density": [1.0, 0.03], "images": [1000, 1000], "same_prediction": list(same),
        "max_logit_diff": [2e-7, 5e-7], "dense_bytes": [8 * 2**20, 8 * 2**20], "sparse_bytes": [8 * 2**20, 2**20],
        "memory_ratio": [1.0, 8.0],
    })
    stand_in = df["weights"] == weight_tables.STAND_IN
    df.loc[stand_in, ["images", "same_prediction", "max_logit_diff"]] = float("nan")
    df.attrs["inputs"] = {"images": 1000, "batch": 512, "seed": 0, "shape": (3, 32, 32)}
    return df


def speeds(fast=(1.0, 7.0, 1.1, 3.0)) -> pd.DataFrame:
    return pd.DataFrame({
        "row": [ROWS[0], ROWS[1], ROWS[0], ROWS[1]], "density": [1.0, 0.03, 1.0, 0.03], "threads": [1, 1, 2, 2],
        "batch": 512, "dense_images_per_s": 1000.0, "sparse_images_per_s": [1000.0 * f for f in fast],
        "speedup": list(fast),
    })


def test_describe_sparse_names_the_sparsest_run_and_the_goal():
    text = weight_captions.describe_sparse(summary(), speeds())
    assert text.startswith("On all 1,000 generated inputs the export predicts the same class")
    assert "for every run" in text
    assert "β-LASSO (β=1; best on validation) (3.0 % of its weights non-zero)" in text
    assert "7.0× (1 thread) and 3.0× (2 threads)" in text
    assert "meets the goal of 5× with 1 thread(s)" in text and "8.0× less memory" in text
    slow = weight_captions.describe_sparse(summary(), speeds(fast=(1.0, 2.0, 1.0, 1.5)))
    assert "misses the goal of 5×" in slow


def test_describe_sparse_reports_disagreeing_predictions():
    text = weight_captions.describe_sparse(summary(same=(1000, 990)), speeds())
    assert text.startswith("The export does not predict the same class") and "990 of 1,000" in text


def test_describe_sparse_compares_only_runs_with_trained_weights():
    text = weight_captions.describe_sparse(summary(weights=(weight_tables.STAND_IN, "weights.npz")), speeds())
    assert "for each of the 1 runs with trained weights" in text
    only_stand_ins = weight_captions.describe_sparse(summary(weights=(weight_tables.STAND_IN, weight_tables.STAND_IN)), speeds())
    assert only_stand_ins.startswith("No run's trained weights are available here")
    assert "its weights are not committed, so an untrained network of its shape was timed" in only_stand_ins


def test_describe_sparse_weights_says_where_weights_came_from():
    text = weight_captions.describe_sparse_weights(summary())
    assert f"from the run's checkpoint for {ROWS[0]}" in text and f"weights.npz: positions" in text
    assert "untrained" not in text
    plain = weight_captions.describe_sparse_weights(summary(weights=(weight_tables.STAND_IN, "weights.npz")))
    assert f"The weights of {ROWS[0]} (8.0 MiB) are not committed (dense)" in plain
    assert "timed on an untrained network of the same shape" in plain and "no agreement numbers" in plain
    none = weight_captions.describe_sparse_weights(summary(weights=(weight_tables.STAND_IN, weight_tables.STAND_IN)))
    assert none.startswith("No run's trained weights are stored here")


def test_describe_sparse_inputs_says_no_dataset_is_read():
    text = weight_captions.describe_sparse_inputs(summary())
    assert text.startswith("No dataset is read") and "standard normal (seed 0) of shape 3×32×32" in text
    assert "first 1,000" in text and "first 512" in text and "run's summary" in text
    with pytest.raises(ValueError, match="attrs"):
        weight_captions.describe_sparse_inputs(pd.DataFrame(summary().to_dict("list")))


def test_sparse_frames_and_figure():
    table = plots_sparse.sparse_summary_frame(summary())
    assert list(table["same prediction"]) == ["1,000 / 1,000"] * 2 and list(table["memory ratio"]) == ["1.0×", "8.0×"]
    stand_in = plots_sparse.sparse_summary_frame(summary(weights=(weight_tables.STAND_IN, "weights.npz")))
    assert stand_in["weights from"][0] == ("weights not committed (dense, 8.0 MiB): timed on an untrained network "
                                           "of the same shape; accuracy from the run's summary")
    assert list(stand_in["same prediction"]) == ["—", "1,000 / 1,000"] and stand_in["max |Δ logit|"][0] == "—"
    layers = pd.DataFrame({"row": [ROWS[0], ROWS[0], ROWS[1], ROWS[1]], "layer": ["conv1", "fc1"] * 2,
                           "weights": [6291456, 393216] * 2, "nonzeros": [6291456, 393216, 159300, 285063],
                           "density": [1.0, 1.0, 159300 / 6291456, 285063 / 393216],
                           "layout": ["dense", "dense", "bag", "dense"]})
    wide = plots_sparse.sparse_layers_frame(layers)
    assert list(wide.columns) == ["network", "conv1 (6,291,456 weights)", "fc1 (393,216 weights)"]
    assert wide.iloc[1, 1] == "2.53 % (bag)" and wide.iloc[1, 2] == "72.50 % (dense)"
    assert list(plots_sparse.sparse_speed_frame(speeds())["speed-up"]) == ["1.0×", "7.0×", "1.1×", "3.0×"]
    fig = plots_sparse.sparse_speed_figure(summary(), speeds(), weight_captions.SPARSE_SPEED_GOAL)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    with pytest.raises(ValueError, match="lacks columns"):
        plots_sparse.sparse_speed_figure(summary().drop(columns="density"), speeds(), 5)


def test_describe_machine_names_threads_and_batch():
    text = weight_captions.describe_machine(speeds())
    assert "with 1 and 2 thread(s), batch 512" in text and "torch" in text


def test_sparse_execution_refuses_a_bad_batch_before_any_work(tmp_path):
    from companion.experiments import profiles

    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        weight_tables.sparse_execution(profiles.get("smoke"), tmp_path, batch=0)
    assert not any(tmp_path.iterdir())  # nothing trained or written


# ------------------------------------------------------------------ sparse_execution on stored runs
def _run(path, first_density: float, *, weights: bool):
    """A finished S-FC (α=1, synthetic) run whose summary records ``first_density`` for its first
    layer; with ``weights``, its compact weights (that density, exactly) stored beside it."""
    import torch

    from companion import build_model
    from companion.store import artifacts
    from companion.config import TrainConfig
    from companion.store.results import Run

    torch.manual_seed(1)
    model = build_model("s-fc", 1, num_classes=10).eval()
    with torch.no_grad():
        w = model.conv1.layer.weight
        w.mul_((torch.rand_like(w) < first_density).float())
    params = {n: int(getattr(model, n.split(".")[0]).layer.weight.numel()) for n in model.paper_layers}
    nonzeros = {n: int(getattr(model, n.split(".")[0]).layer.weight.count_nonzero()) for n in model.paper_layers}
    path.mkdir()
    run = Run(path, TrainConfig(model="s-fc", alpha=1, epochs=1, dataset="synthetic"),
              {"params": params, "nonzeros": nonzeros, "final_test_acc": 0.4})
    if weights:
        artifacts.save_weights(run, model)
    return run


def test_sparse_execution_reads_stored_weights_and_stands_in_only_for_dense_runs(tmp_path):
    from companion.experiments import profiles
    from companion.experiments.runs import S_FC_SGD, lasso_key

    runs = {lasso_key(50): _run(tmp_path / "sparse", 0.02, weights=True),
            S_FC_SGD: _run(tmp_path / "dense", 1.0, weights=False)}
    summary, layers, speeds = weight_tables.sparse_execution(profiles.get("smoke"), runs=runs, threads=(1,), batch=8,
                                                 images=32, repeats=1)
    assert list(summary["weights"]) == ["weights.npz", weight_tables.STAND_IN]
    assert list(summary["test_acc"]) == [40.0, 40.0]  # from the summaries: nothing is evaluated
    assert summary["same_prediction"][0] == summary["images"][0] == 32
    assert summary[["images", "same_prediction", "max_logit_diff"]].iloc[1].isna().all()
    assert summary["density"][0] < 0.1 and summary["density"][1] == 1.0
    assert layers.set_index(["row", "layer"]).loc[(summary["row"][0], "conv1"), "layout"] == "bag"
    assert set(layers[layers["row"] == summary["row"][1]]["layout"]) == {"dense"}
    assert list(speeds["weights"]) == ["weights.npz", weight_tables.STAND_IN] and (speeds["batch"] == 8).all()
    assert summary.attrs["inputs"] == {"images": 32, "batch": 8, "seed": weight_tables.PROBE_SEED, "shape": (3, 32, 32)}
    assert weight_tables.weights_needed(runs[lasso_key(50)]) and not weight_tables.weights_needed(runs[S_FC_SGD])


def test_sparse_execution_refuses_to_stand_in_for_a_sparse_run(tmp_path):
    from companion.experiments import profiles
    from companion.experiments.runs import lasso_key

    runs = {lasso_key(50): _run(tmp_path / "sparse", 0.02, weights=False)}
    with pytest.raises(FileNotFoundError, match="no untrained network can stand in.*companion weights --profile smoke"):
        weight_tables.sparse_execution(profiles.get("smoke"), runs=runs, threads=(1,), batch=8, images=8, repeats=1)


def test_probe_inputs_are_seeded_standard_normal_images():
    import torch

    x = weight_tables.probe_inputs(64, seed=3)
    assert x.shape == (64, 3, 32, 32) and torch.equal(x, weight_tables.probe_inputs(64, seed=3))
    assert not torch.equal(x, weight_tables.probe_inputs(64, seed=4))
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05

"""Chapter 11 (sparse execution): its sentences and tables from constructed frames."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure

from companion import experiments as E, plots

ROWS = ["S-FC, SGD", "S-FC, β-LASSO (β=1; best on validation)"]


def summary(same=(1000, 1000), weights=("checkpoint", "checkpoint"), test=(50.0, 52.0)) -> pd.DataFrame:
    return pd.DataFrame({
        "row": ROWS, "weights": list(weights), "test_acc": list(test), "stored_test_acc": [50.0, 52.0],
        "density": [1.0, 0.03], "images": [1000, 1000], "same_prediction": list(same),
        "max_logit_diff": [2e-7, 5e-7], "dense_bytes": [8 * 2**20, 8 * 2**20], "sparse_bytes": [8 * 2**20, 2**20],
        "memory_ratio": [1.0, 8.0],
    })


def speeds(fast=(1.0, 7.0, 1.1, 3.0)) -> pd.DataFrame:
    return pd.DataFrame({
        "row": [ROWS[0], ROWS[1], ROWS[0], ROWS[1]], "density": [1.0, 0.03, 1.0, 0.03], "threads": [1, 1, 2, 2],
        "batch": 512, "dense_images_per_s": 1000.0, "sparse_images_per_s": [1000.0 * f for f in fast],
        "speedup": list(fast),
    })


def test_describe_sparse_names_the_sparsest_run_and_the_goal():
    text = E.describe_sparse(summary(), speeds())
    assert text.startswith("On all 1,000 test images the export predicts the same class")
    assert "β-LASSO (β=1; best on validation) (3.0 % of its weights non-zero)" in text
    assert "7.0× (1 thread) and 3.0× (2 threads)" in text
    assert "meets the goal of 5× with 1 thread(s)" in text and "8.0× less memory" in text
    slow = E.describe_sparse(summary(), speeds(fast=(1.0, 2.0, 1.0, 1.5)))
    assert "misses the goal of 5×" in slow


def test_describe_sparse_reports_disagreeing_predictions():
    text = E.describe_sparse(summary(same=(1000, 990)), speeds())
    assert text.startswith("The export does not predict the same class") and "990 of 1,000" in text


def test_describe_sparse_weights_says_where_weights_came_from():
    assert "stored checkpoints" in E.describe_sparse_weights(summary())
    again = E.describe_sparse_weights(summary(weights=("retrained", "retrained")))
    assert "2 of the 2 networks were trained again" in again and "exactly the stored test accuracy" in again
    moved = E.describe_sparse_weights(summary(weights=("checkpoint", "retrained"), test=(50.0, 51.5)))
    assert "1 of the 2" in moved and "51.50 % (stored 52.00 %)" in moved


def test_sparse_frames_and_figure():
    table = plots.sparse_summary_frame(summary())
    assert list(table["same prediction"]) == ["1,000 / 1,000"] * 2 and list(table["memory ratio"]) == ["1.0×", "8.0×"]
    layers = pd.DataFrame({"row": [ROWS[0], ROWS[0], ROWS[1], ROWS[1]], "layer": ["conv1", "fc1"] * 2,
                           "weights": [6291456, 393216] * 2, "nonzeros": [6291456, 393216, 159300, 285063],
                           "density": [1.0, 1.0, 159300 / 6291456, 285063 / 393216],
                           "layout": ["dense", "dense", "bag", "dense"]})
    wide = plots.sparse_layers_frame(layers)
    assert list(wide.columns) == ["network", "conv1 (6,291,456 weights)", "fc1 (393,216 weights)"]
    assert wide.iloc[1, 1] == "2.53 % (bag)" and wide.iloc[1, 2] == "72.50 % (dense)"
    assert list(plots.sparse_speed_frame(speeds())["speed-up"]) == ["1.0×", "7.0×", "1.1×", "3.0×"]
    fig = plots.sparse_speed_figure(summary(), speeds(), E.SPARSE_SPEED_GOAL)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    with pytest.raises(ValueError, match="lacks columns"):
        plots.sparse_speed_figure(summary().drop(columns="density"), speeds(), 5)


def test_describe_machine_names_threads_and_batch():
    text = E.describe_machine(speeds())
    assert "with 1 and 2 thread(s), batch 512" in text and "torch" in text


def test_sparse_execution_refuses_a_bad_batch_before_any_work(tmp_path):
    from companion import profiles

    with pytest.raises(ValueError, match="batch must be an integer >= 1"):
        E.sparse_execution(profiles.get("smoke"), tmp_path, batch=0)
    assert not any(tmp_path.iterdir())  # nothing trained or written

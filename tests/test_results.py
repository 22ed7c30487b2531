"""Tests for companion.results (the run store) and companion.analysis.nonzeros."""

import pytest
import torch
from torch import nn

from companion import results
from companion.analysis import layer_sizes, nonzeros
from companion.config import TrainConfig
from companion.training import train

TINY = dict(model="3-fc", alpha=16, epochs=1, dataset="synthetic", subset=128, val_size=64,
            batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A results root with two finished runs and one unfinished (diverged) run."""
    root = tmp_path_factory.mktemp("runs")
    finished = [train(TrainConfig(**TINY, seed=s), root=root, progress=False) for s in (0, 1)]
    with pytest.raises(RuntimeError, match="non-finite"):
        train(TrainConfig(**{**TINY, "epochs": 2}, lr=1e30), root=root, progress=False)
    return root, finished


def test_load_runs_one_row_per_finished_run(store):
    root, finished = store
    df = results.load_runs(root)
    assert sorted(df["run_id"]) == sorted(r.run_id for r in finished)  # the diverged run is left out
    for column in TrainConfig.__dataclass_fields__:
        assert column in df.columns
    for column in results.SUMMARY_COLUMNS:
        assert column in df.columns
    assert df.columns.is_unique
    assert {"nonzeros.fc1.layer", "nonzeros.fc2.layer", "nonzeros.fc3.layer"} <= set(df.columns)
    row = df.set_index("run_id").loc[finished[1].run_id]
    assert row["seed"] == 1 and row["final_test_acc"] == finished[1].summary["final_test_acc"]


def test_load_run_and_metrics_frame(store):
    root, finished = store
    run = results.load_run(finished[0].path)
    assert run.config == finished[0].config and run.finished
    m = run.metrics
    assert list(m["epoch"]) == [1]
    assert {"train_loss", "train_acc", "val_acc", "test_acc", "lr", "images_per_s", "seconds",
            "nonzeros.fc1.layer", "params.fc1.layer"} <= set(m.columns)
    assert run.arrays()["unit_nonzeros"].shape == (16,)  # 3-FC: its first Linear's 16 units


def test_find_run_only_finished(store):
    root, finished = store
    assert results.find_run(finished[0].config, root).path == finished[0].path
    assert results.find_run(TrainConfig(**{**TINY, "epochs": 2}, lr=1e30), root) is None
    assert results.find_run(TrainConfig(**TINY, seed=7), root) is None


def test_missing_and_empty_roots(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        results.load_runs(tmp_path / "nowhere")
    df = results.load_runs(tmp_path)
    assert df.empty and "final_val_acc" in df.columns and "lam" in df.columns
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        results.load_run(tmp_path)


def test_write_atomic_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "x.json"
    results.write_json(path, {"a": 1})

    def fail(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        results.write_atomic(path, fail)
    assert path.read_text().strip().replace(" ", "").replace("\n", "") == '{"a":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary left behind


def test_nonzeros_counts_paper_layers_only():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model.paper_layers = ("0", "1")
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].weight[0, :2] = 1.0
        model[0].bias.fill_(1.0)  # biases are not counted
    assert nonzeros(model) == {"0": 2, "1": int(model[1].weight.count_nonzero())}
    assert layer_sizes(model) == {"0": 12, "1": 6}
    with pytest.raises(ValueError, match="no `paper_layers`"):
        nonzeros(nn.Linear(2, 2))

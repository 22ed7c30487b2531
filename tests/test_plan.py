"""The per-chapter plan: runs, finished/missing, training time, provenance, GPU-hour estimate."""

from companion import plan, profiles, runs
from companion.config import TrainConfig
from companion.cost import Throughput
from companion.reproduce import dry_run
from companion.training import train


def test_chapter_plan_counts_finished_and_missing(tmp_path):
    done = TrainConfig(model="3-fc", alpha=8, epochs=1, dataset="synthetic", batch_size=64, subset=128, val_size=64)
    missing = done.replace(epochs=2)
    train(done, root=tmp_path, progress=False)
    table = plan.chapter_plan({"a": [done, missing, done], "b": []}, tmp_path, throughput=Throughput(1e12, "test"))
    a = table.set_index("chapter").loc["a"]
    assert (a["runs"], a["finished"], a["missing"]) == (2, 1, 1)
    assert a["train_hours"] > 0 and a["gpu_hours_estimate"] > 0
    assert a["data"].startswith("synthetic: 128/64/") and "/tmp" not in a["data"]  # no machine path
    assert table.set_index("chapter").loc["b", "runs"] == 0
    assert "companion reproduce --profile paper --only 04_table2" in plan.rerun_commands("04_table2", "paper")


def test_paper_dry_run_lists_every_chapter_without_training(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_RESULTS", str(tmp_path))
    text = dry_run("paper")
    p = profiles.get("paper")
    for chapter in runs.chapter_configs(p, tmp_path / "paper"):
        assert chapter in text
    assert "GPU-h" in text and "lower bound" in text
    assert not any(tmp_path.iterdir())  # planning trains nothing

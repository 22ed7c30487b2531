"""Tests for companion.store.results (the run store) and companion.nn.analysis.nonzeros."""

import os
import socket
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from companion.store import locks, results
from companion.nn.analysis import layer_sizes, nonzeros
from companion.config import TrainConfig
from companion.train.loop import train

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


# --------------------------------------------------------------------------- one writer per run
def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_run_lock_names_its_holder_and_is_released(tmp_path):
    with locks.run_lock(tmp_path) as lock:
        holder = locks.lock_holder(tmp_path)
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert holder["started"] <= holder["heartbeat"] <= time.time()
        with pytest.raises(locks.RunLocked, match=rf"is being trained by pid {os.getpid()} on host "):
            with locks.run_lock(tmp_path):
                pass
        before = holder["heartbeat"]
        time.sleep(0.01)
        lock.heartbeat()
        assert locks.lock_holder(tmp_path)["heartbeat"] > before
    assert locks.lock_holder(tmp_path) is None and not (tmp_path / locks.LOCK).exists()
    with pytest.raises(KeyError):
        with locks.run_lock(tmp_path):
            raise KeyError("boom")
    assert not (tmp_path / locks.LOCK).exists()  # released on errors too
    assert issubclass(locks.RunLocked, RuntimeError)


def test_stale_locks_do_not_block(tmp_path):
    now = time.time()
    dead = {"host": socket.gethostname(), "pid": dead_pid(), "started": now, "heartbeat": now, "token": "x"}
    results.write_json(tmp_path / locks.LOCK, dead)
    assert locks.lock_holder(tmp_path) is None  # same host, pid gone
    away = {**dead, "host": "elsewhere.invalid", "pid": os.getpid()}
    results.write_json(tmp_path / locks.LOCK, {**away, "heartbeat": now - 100})
    assert locks.lock_holder(tmp_path)["host"] == "elsewhere.invalid"  # other host, recent heartbeat
    assert locks.lock_holder(tmp_path, stale_s=50) is None  # ... older than the limit
    with locks.run_lock(tmp_path, stale_s=50):
        assert locks.lock_holder(tmp_path)["pid"] == os.getpid()


def test_wait_waits_for_the_holder(tmp_path):
    import threading

    order = []
    with locks.run_lock(tmp_path):
        def second():
            with locks.run_lock(tmp_path, wait=True, poll_s=0.05):
                order.append("second")

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append("first done")
    thread.join(10)
    assert order == ["first done", "second"]


def cli(config: TrainConfig, root, *extra) -> list[str]:
    args = [sys.executable, "-m", "companion", "train", "--quiet", "--out", str(root), *extra]
    for key, value in config.to_dict().items():
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


HOLDER = """
import sys
from companion.store import locks
with locks.run_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()  # hold the run until the test says so
"""


@pytest.mark.slow
def test_two_processes_one_writer(tmp_path):
    """While another process holds a run, `companion train` of it stops with one error naming
    the holder; with --wait it waits, then trains; metrics get exactly one line per epoch.
    (The holder is a process that takes the run's lock and waits on its stdin, so the test does
    not depend on how fast a training run is.)"""
    config = TrainConfig(**{**TINY, "epochs": 4, "subset": 1024})
    run_dir = tmp_path / config.run_id()
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held", holder.stderr.read()
    second = subprocess.run(cli(config, tmp_path, "--resume"), capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    assert f"is being trained by pid {holder.pid} on host {socket.gethostname()}" in second.stderr
    assert second.stderr.count("error") == 1 and "Traceback" not in second.stderr
    assert not (run_dir / results.METRICS).exists()  # the refused process wrote nothing
    waiter = subprocess.Popen(cli(config, tmp_path, "--wait"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    time.sleep(1.0)
    assert waiter.poll() is None and not (run_dir / results.METRICS).exists()  # waiting, not training
    holder.communicate("go\n", timeout=60)
    out, err = waiter.communicate(timeout=300)
    assert waiter.returncode == 0 and f"run: {run_dir}" in out, err
    assert [m["epoch"] for m in results.read_jsonl(run_dir / results.METRICS)] == [1, 2, 3, 4]
    assert not (run_dir / locks.LOCK).exists() and results.find_run(config, tmp_path).finished


def test_stale_lock_of_a_killed_process_does_not_block_training(tmp_path):
    config = TrainConfig(**TINY)
    run_dir = tmp_path / config.run_id()
    run_dir.mkdir()
    now = time.time()
    results.write_json(run_dir / locks.LOCK, {"host": socket.gethostname(), "pid": dead_pid(),
                                                "started": now, "heartbeat": now, "token": "x"})
    run = train(config, root=tmp_path, progress=False)
    assert run.finished and not (run_dir / locks.LOCK).exists()
    # a finished run is returned without locking, even while someone holds its lock
    with locks.run_lock(run_dir):
        assert train(config, root=tmp_path, progress=False).summary == run.summary


def test_committed_runs_are_still_found():
    """Run ids and the store's format are unchanged: the committed results are found."""
    from pathlib import Path

    committed = sorted(Path(__file__).parents[1].glob("results/*/*/summary.json"))
    if not committed:
        pytest.skip("no committed results")
    for summary in committed[:20]:
        config = TrainConfig.from_dict(results._read_json(summary.parent / results.CONFIG))
        assert config.run_id() == summary.parent.name
        assert results.find_run(config, summary.parent.parent).path == summary.parent


# ------------------------------------------------------------------ issue 17, item 7: what is broken
def _stored_run(tmp_path):
    """A finished tiny run with stored weights (β-LASSO S-FC, so its export is sparse)."""
    from companion.store import artifacts
    from companion.train.loop import train

    config = TrainConfig(model="s-fc", alpha=1, epochs=1, dataset="synthetic", subset=64, batch_size=32,
                         device="cpu", optimizer="beta-lasso", lam=1e-3, beta=50.0)
    run = train(config, root=tmp_path, progress=False)
    artifacts.save_weights(run, artifacts.load_model(run))
    return run


@pytest.mark.parametrize("name", ["summary.json", "config.json", "metrics.jsonl", "arrays.npz", "weights.npz"])
def test_a_broken_run_file_is_one_error_naming_it(tmp_path, name):
    from companion.store import artifacts

    run = _stored_run(tmp_path)
    path = run.path / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(results.BrokenRunError) as err:
        loaded = results.load_run(run.path)
        loaded.metrics  # noqa: B018 (reading is the test)
        loaded.arrays()
        artifacts.load_weights(loaded)
    message = str(err.value)
    assert str(path) in message and "corrupt or truncated" in message and "delete the run directory" in message
    assert path.read_bytes() == data[: len(data) // 2]  # nothing is rewritten

"""Provenance names the data by dataset, split sizes and content hash, never by a machine path."""

import json
import os
from pathlib import Path

import numpy as np

from companion.store import results
from companion.config import TrainConfig
from companion.train.loop import train


def _npz_folder(folder, n_train=96, n_test=32):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        np.savez(folder / f"{name}.npz", x=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                 y=rng.integers(0, 10, n))


def _strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def test_new_summary_names_data_without_a_path(tmp_path):
    data = tmp_path / "machine-specific-data"
    _npz_folder(data / "cifar10")
    config = TrainConfig(model="3-fc", alpha=8, epochs=1, dataset="cifar10", data_root=str(data),
                         batch_size=32, val_size=32, device="cpu")
    run = train(config, root=tmp_path / "runs", progress=False)
    dataset = json.loads((run.path / results.SUMMARY).read_text())["dataset"]
    assert dataset["source"] == "npz"
    assert (dataset["n_train"], dataset["n_val"], dataset["n_test"]) == (64, 32, 32)
    assert len(dataset["content_blake2b"]) == 32
    for text in _strings(dataset):
        assert str(data) not in text and not os.path.isabs(text), text


def test_data_root_does_not_change_the_run_id(tmp_path):
    a = TrainConfig(model="3-fc", alpha=8, epochs=1, dataset="cifar10")
    assert a.run_id() == a.replace(data_root=str(tmp_path)).run_id()


def test_committed_summaries_name_no_machine_path():
    """The results committed with the book (tracked by git) carry no absolute path under ``dataset``."""
    import subprocess
    from pathlib import Path

    import pytest

    root = Path(__file__).resolve().parents[1]
    listed = subprocess.run(["git", "ls-files", "results/*/summary.json"], cwd=root, capture_output=True, text=True)
    if listed.returncode != 0 or not listed.stdout.strip():
        pytest.skip("not a git checkout with committed results")
    bad = [path for path in listed.stdout.split() if (root / path).is_file()
           and any(os.path.isabs(text) or ":/" in text
                   for text in _strings(json.loads((root / path).read_text())["dataset"]))]
    assert not bad, f"summaries naming a machine path under 'dataset' (rewrite 'source'): {bad}"


def test_stored_configs_name_no_data_folder(tmp_path):
    """The store keeps configs without ``data_root`` (a folder of the training machine): a new
    run's config.json and summary, and every committed one."""
    import subprocess

    from companion.config import TrainConfig

    config = TrainConfig(model="3-fc", alpha=8, epochs=1, data_root=str(tmp_path))
    assert config.stored_dict()["data_root"] is None and config.to_dict()["data_root"] == str(tmp_path)
    assert TrainConfig.from_dict(config.stored_dict()).run_id() == config.run_id()
    root = Path(__file__).resolve().parents[1]
    listed = subprocess.run(["git", "ls-files", "results/*/config.json", "results/*/summary.json"], cwd=root,
                            capture_output=True, text=True)
    paths = [p for p in listed.stdout.split() if (root / p).is_file()]
    bad = [p for p in paths if (lambda d: (d if p.endswith("config.json") else d["config"]).get("data_root"))(
        json.loads((root / p).read_text()))]
    assert not bad, f"committed runs recording a data folder (data_root): {bad}"

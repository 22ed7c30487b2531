"""Issue 17, item 5: the results store holds what the book reads (``companion store prune``)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from companion.book import prune
from companion.config import TrainConfig
from companion.experiments import profiles
from companion.experiments.study import Study
from companion.store import results
from companion.train.loop import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_every_committed_run_is_read_by_some_chapter(profile):
    tracked = subprocess.run(["git", "ls-files", f"results/{profile}"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0 or not tracked.stdout.strip():
        pytest.skip(f"not a git checkout with committed {profile} results")
    committed = {Path(f).parts[2] for f in tracked.stdout.split() if f.endswith("/summary.json")}
    read = prune.read_run_ids(Study(profiles.get(profile), ROOT / "results" / profile))
    assert committed and not committed - read, f"committed runs no chapter reads: {sorted(committed - read)}"


def test_prune_lists_then_deletes_only_finished_unread_runs(tmp_path):
    store = tmp_path / "smoke"
    shutil.copytree(ROOT / "results" / "smoke", store, ignore=shutil.ignore_patterns("checkpoint.pt", "lock.json"))
    extra = TrainConfig(model="s-fc", alpha=1, epochs=1, dataset="synthetic", subset=64, batch_size=32, device="cpu")
    unread = train(extra, root=store, progress=False).path
    unfinished = store / "000000000000"
    unfinished.mkdir()
    (unfinished / results.CONFIG).write_text("{}")
    before = sorted(p.name for p in store.iterdir())
    assert prune.unread_runs(Study(profiles.get("smoke"), store)) == [unread]

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "companion", "store", "prune", "--profile", "smoke",
                               "--results-dir", str(store), *args], capture_output=True, text=True)

    dry = cli()
    assert dry.returncode == 0 and unread.name in dry.stdout and "dry run" in dry.stdout
    assert sorted(p.name for p in store.iterdir()) == before  # nothing deleted
    done = cli("--delete")
    assert done.returncode == 0 and "1 run(s)" in done.stdout
    assert sorted(p.name for p in store.iterdir()) == sorted(set(before) - {unread.name})
    assert unfinished.is_dir() and any(store.glob("test_labels.*.npz"))


def test_prune_of_a_missing_store_is_one_clear_error(tmp_path):
    run = subprocess.run([sys.executable, "-m", "companion", "store", "prune", "--profile", "smoke",
                          "--results-dir", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert run.returncode == 2 and "nowhere" in run.stderr and "does not exist" in run.stderr

"""``make book`` on a fresh clone: the chapters build from the committed results store and read
no dataset (issue 10).

The chapters are executed the way ``make book`` executes them (``python -m companion reproduce
--profile smoke``) into a temporary folder, on a copy of the committed smoke results store, with
``COMPANION_DATA_ROOT`` an empty folder, ``HOME`` an empty folder and a ``sitecustomize.py``
first on ``PYTHONPATH``: every Python process started (the reproduce command and each notebook's
kernel) installs an audit hook (``sys.addaudithook``) that records any ``open`` or ``os.mkdir``
under the data root or the home folder, any listing (``os.listdir``, ``os.scandir``) of the data
root, any of these on a path naming a torchvision dataset file (:data:`DATASET_NAMES`), and any
``urllib`` request (a download). The record must stay empty. (Listings under HOME are allowed:
matplotlib looks for fonts in ``~/.fonts``.) With the data root empty, a chapter that looked for
CIFAR-10 would show as a ``mkdir`` of the data root and a download request; with data present,
as an ``open`` of its files.

At smoke the data is synthetic (generated, never read), so what this checks is that building a
chapter does not look for a dataset at all. Chapter 11 (sparse execution), the one that needs
trained networks, is run on a store where Table 2's β-LASSO runs with β > 0 have their compact
``weights.npz`` and no checkpoint (the situation of a fresh clone): they are trained again into
the copy, their weights stored with :func:`companion.store.artifacts.store_weights`, their checkpoints
deleted. Every chapter in ``notebooks/`` is run (1.5–2 minutes on a 2-core machine busy training).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
#: file and folder names of the datasets torchvision reads (CIFAR-10/100, SVHN)
DATASET_NAMES = ("cifar-10-batches-py", "cifar-10-python.tar.gz", "cifar-100-python", "cifar-100-python.tar.gz",
                 "data_batch", "test_batch", "batches.meta", "train_32x32.mat", "test_32x32.mat", "extra_32x32.mat")

SITECUSTOMIZE = textwrap.dedent('''
    """Audit hook of tests/test_book_offline.py: record reads of the data root, HOME, dataset files."""
    import os
    import sys

    _LOG = os.environ["BOOK_OFFLINE_LOG"]
    _DATA = os.path.realpath(os.environ["COMPANION_DATA_ROOT"])
    _HOME = os.path.realpath(os.environ["HOME"])
    _NAMES = tuple(os.environ["BOOK_OFFLINE_NAMES"].split(os.pathsep))
    _EVENTS = ("open", "os.listdir", "os.scandir", "os.mkdir")
    _busy = False


    def _record(line, log=_LOG):
        with open(log, "a", encoding="utf-8") as f:
            f.write(line + "\\n")


    def _hook(event, args):
        global _busy
        if event == "urllib.Request" and not _busy:  # a download (the book needs no network)
            _busy = True
            try:
                _record(f"{os.getpid()} {event} {args[0]}")
            finally:
                _busy = False
        if _busy or event not in _EVENTS or not args or args[0] is None or isinstance(args[0], int):
            return
        _busy = True
        try:
            path = os.path.realpath(os.path.abspath(os.fsdecode(args[0])))
            under = [d for d in (_DATA, _HOME) if path == d or path.startswith(d + os.sep)]
            # listing a folder under HOME is matplotlib looking for fonts; opening or making one is not allowed
            if (under and (event != "os.scandir" and event != "os.listdir" or _DATA in under)) \
                    or any(n in path for n in _NAMES):
                _record(f"{os.getpid()} {event} {path}")
        except TypeError:
            pass
        finally:
            _busy = False


    sys.addaudithook(_hook)
    _record(f"{os.getpid()} {' '.join(sys.orig_argv)}", os.environ["BOOK_OFFLINE_STARTED"])
''')


def _offline_env(tmp: Path) -> dict[str, str]:
    """The environment of a fresh clone on a machine with no dataset, and the audit hook."""
    hook, data, home, config = tmp / "hook", tmp / "data", tmp / "home", tmp / "config"
    for d in (hook, data, home, config):
        d.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")])),
        "COMPANION_DATA_ROOT": str(data), "COMPANION_RESULTS": str(tmp / "results"), "HOME": str(home),
        "BOOK_OFFLINE_LOG": str(tmp / "reads.log"), "BOOK_OFFLINE_STARTED": str(tmp / "started.log"),
        "BOOK_OFFLINE_NAMES": os.pathsep.join(DATASET_NAMES),
        # where Jupyter, IPython and matplotlib keep their state, outside HOME (they would use it)
        "MPLCONFIGDIR": str(config / "mpl"), "IPYTHONDIR": str(config / "ipython"),
        "JUPYTER_CONFIG_DIR": str(config / "jupyter"), "JUPYTER_DATA_DIR": str(config / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(config / "jupyter-runtime"), "XDG_CONFIG_HOME": str(config / "xdg-config"),
        "XDG_CACHE_HOME": str(config / "xdg-cache"), "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"),
    })
    return env


def _smoke_store_with_compact_weights(results: Path) -> list:
    """A copy of the committed smoke store in which chapter 11's β-LASSO runs with β > 0 hold
    ``weights.npz`` and no checkpoint; returns those runs."""
    from companion.experiments import profiles
    from companion.experiments.study import Study
    from companion.store import artifacts
    from companion.book.weight_tables import sparse_runs
    from companion.train.loop import train

    p = profiles.get("smoke")
    store = results / p.name
    shutil.copytree(ROOT / "results" / p.name, store, ignore=shutil.ignore_patterns("checkpoint.pt", "lock.json*"))
    sparse = [r for r in sparse_runs(Study(p, store)).values() if r.config.optimizer == "beta-lasso" and r.config.beta > 0]
    assert sparse, "the smoke store has no β-LASSO run with β > 0 in Table 2"
    retrained = []
    for run in sparse:
        shutil.rmtree(run.path)
        retrained.append(train(run.config, root=store, progress=False))
    artifacts.store_weights(retrained)
    for run in retrained:
        (run.path / "checkpoint.pt").unlink()
    return retrained


def test_audit_hook_records_a_dataset_read(tmp_path):
    """The hook is installed in a child Python and records what the chapters must not do."""
    env = _offline_env(tmp_path)
    probe = ("import os\n"
             "for p in (os.path.join(os.environ['COMPANION_DATA_ROOT'], 'train.npz'),\n"
             "          os.path.expanduser('~/.cache/companion/data/x'), '/nowhere/cifar-10-batches-py/data_batch_1'):\n"
             "    try: open(p)\n"
             "    except OSError: pass\n"
             "os.mkdir(os.path.join(os.environ['COMPANION_DATA_ROOT'], 'cifar10'))\n"
             "import urllib.request\n"
             "try: urllib.request.urlopen('http://127.0.0.1:9/cifar-10-python.tar.gz', timeout=1)\n"
             "except OSError: pass\n")
    subprocess.run([sys.executable, "-c", probe], env=env, check=True, timeout=60)
    reads = (tmp_path / "reads.log").read_text().splitlines()
    assert len(reads) == 5 and "train.npz" in reads[0] and ".cache/companion/data" in reads[1]
    assert "cifar-10-batches-py" in reads[2] and "os.mkdir" in reads[3] and "urllib.Request" in reads[4]


@pytest.mark.slow
def test_chapters_build_from_committed_results_without_reading_data(tmp_path):
    pytest.importorskip("papermill", reason="papermill not installed (pip install -e '.[book]')")
    env = _offline_env(tmp_path)
    stored = _smoke_store_with_compact_weights(tmp_path / "results")
    out = tmp_path / "book"
    run = subprocess.run(
        [sys.executable, "-m", "companion", "reproduce", "--profile", "smoke", "--force", "--no-progress",
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"reproduce failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    assert sorted(p.stem for p in out.glob("*.ipynb")) == CHAPTERS

    started = (tmp_path / "started.log").read_text().splitlines()
    kernels = [line for line in started if "ipykernel" in line]
    assert len(kernels) == len(CHAPTERS), f"the audit hook is not in every kernel: {started}"
    reads = tmp_path / "reads.log"
    assert not reads.exists(), "building the chapters read data or HOME:\n" + reads.read_text()[:3000]

    # chapter 11 ran from the compact weights: no checkpoint anywhere, weights.npz for the β > 0 runs
    assert not list((tmp_path / "results").rglob("checkpoint.pt"))
    nb = nbformat.read(out / "11_sparse_execution.ipynb", as_version=4)
    tables = [o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "tab-sparse-summary" in o.get("data", {}).get("text/markdown", "")]
    assert len(tables) == 1, "chapter 11's summary table is missing"
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1] for line in tables[0].splitlines()
            if line.startswith("| S-FC")}
    assert sum(cell == "weights.npz" for cell in rows.values()) == len(stored), rows
    others = [cell for cell in rows.values() if cell != "weights.npz"]
    assert others and all(cell.startswith("weights not committed (dense,") for cell in others), rows
    assert "No dataset is read" in tables[0]

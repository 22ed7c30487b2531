"""The results store: one directory per run, named by :meth:`TrainConfig.run_id`.

``root/<run_id>/`` holds

- ``config.json``   the :class:`TrainConfig` (written when training starts),
- ``metrics.jsonl`` one JSON line per epoch,
- ``checkpoint.pt`` the last completed epoch (model, optimizer, scaler, scheduler, metrics),
- ``arrays.npz``    small arrays the book draws (first-layer weights, Figure 4),
- ``summary.json``  final numbers and provenance; written last, atomically: a run is *finished*
  exactly when it has a summary,
- ``lock.json``     only while a process trains the run (:mod:`companion.store.locks`).

All writes that replace a file go through a temporary file in the same directory and
``os.replace``, so a reader (or a killed writer) never sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from companion.config import TrainConfig

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"
ARRAYS = "arrays.npz"

#: summary entries copied into :func:`load_runs` rows (besides the config)
SUMMARY_COLUMNS = (
    "final_train_loss", "final_train_acc", "final_val_acc", "final_test_acc",
    "best_val_acc", "best_val_epoch", "test_acc_at_best_val",
    "total_nonzeros", "total_weights", "wall_time_s", "device_name", "precision_used", "git_commit",
)


class BrokenRunError(ValueError):
    """A file of a run that cannot be read (corrupt or truncated): names the file and what to do."""


def broken(path: Path, exc: BaseException) -> BrokenRunError:
    """The one error for an unreadable run file ``path``: which file, why, and how to recover."""
    run_dir = Path(path).parent
    return BrokenRunError(
        f"{path} is corrupt or truncated ({type(exc).__name__}: {exc}); delete the run directory {run_dir} "
        f"and train it again (`companion experiments --profile <profile>` retrains every missing run of the "
        f"book; `companion train` with the settings in its {CONFIG} retrains this one)")


@contextlib.contextmanager
def reading(path: Path):
    """Turn any failure to parse ``path`` (a run's file) into :func:`broken`'s error."""
    import zipfile

    try:
        yield
    except (ValueError, KeyError, TypeError, EOFError, OSError, zipfile.BadZipFile) as exc:
        if isinstance(exc, (FileNotFoundError, BrokenRunError)):
            raise
        raise broken(path, exc) from None


@dataclass
class Run:
    """A run directory: its config, its summary (None while unfinished) and per-epoch metrics."""

    path: Path
    config: TrainConfig
    summary: dict[str, Any] | None

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per epoch; nested dicts flattened (``nonzeros.fc1``, ``weights.fc1``)."""
        path = self.path / METRICS
        with reading(path):
            return pd.json_normalize(read_jsonl(path))

    def arrays(self) -> dict[str, Any]:
        """The small arrays saved at the end of training, about the first layer (the one at the
        first convolution's position): ``first_layer_name``; for every unit ``unit_nonzeros``,
        ``locality_radius`` and ``locality_window_mass`` (:func:`companion.nn.analysis.locality`);
        and ``filters`` (float16, units × C × H × W on the input grid) of the ``filter_units``
        drawn at random among units with at least 20 non-zeros (Figures 4, 7–9)."""
        import numpy as np

        path = self.path / ARRAYS
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist (the run is unfinished or predates arrays)")
        with reading(path), np.load(path) as npz:
            return {k: npz[k] for k in npz.files}


# --------------------------------------------------------------------------- file helpers
def write_atomic(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then ``os.replace`` it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, lambda f: f.write((json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_atomic(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in rows).encode()))


def append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------- checkpoints
#: version of checkpoint.pt's layout
CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from (corrupt, truncated, or from another config)."""


def write_checkpoint(path: Path, state: dict) -> None:
    """Save a training state (``torch.save``, atomically) as checkpoint.pt."""
    import torch

    state = {"format": CHECKPOINT_FORMAT, **state}
    write_atomic(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, config: TrainConfig, device) -> dict:
    """Read and check a checkpoint: one :class:`CheckpointError` if corrupt or from another config."""
    import torch

    try:
        state = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a companion checkpoint")
    except Exception as exc:  # unpicklable, truncated, wrong zip, ... : all mean the same here
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
            "delete it to train from scratch"
        ) from None
    try:
        theirs = TrainConfig.from_dict(state["config"]).result_fields()
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} holds no readable config ({exc})") from None
    ours = config.result_fields()
    if theirs != ours:
        diff = ", ".join(
            f"{k}: {theirs.get(k)!r} (checkpoint) vs {ours.get(k)!r}"
            for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)
        )
        raise CheckpointError(f"checkpoint {path} is from a different config ({diff}); not resuming")
    return state


# --------------------------------------------------------------------------- test labels
def test_labels_path(root: str | os.PathLike, fingerprint: dict) -> Path:
    """Where a store keeps the test labels of one dataset (named by its content hash): the runs'
    ``test_predictions`` are scored against them (paired comparisons, issue 16)."""
    return Path(root) / f"test_labels.{fingerprint['dataset']}.{fingerprint['content_blake2b'][:12]}.npz"


def write_test_labels(root: str | os.PathLike, fingerprint: dict, labels) -> Path:
    """Save the test labels of the dataset ``fingerprint`` names (uint8), once per store."""
    import numpy as np

    path = test_labels_path(root, fingerprint)
    if not path.exists():
        values = np.asarray(labels).astype(np.uint8)
        write_atomic(path, lambda f: np.savez_compressed(f, labels=values))
    return path


def read_test_labels(root: str | os.PathLike, fingerprint: dict):
    """The test labels :func:`write_test_labels` saved for the dataset ``fingerprint`` names."""
    import numpy as np

    path = test_labels_path(root, fingerprint)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the test labels of {fingerprint['dataset']} that the runs' "
                                "predictions are scored against; a finished run of the trainer writes it")
    with np.load(path) as npz:
        return npz["labels"]


# --------------------------------------------------------------------------- queries
def load_run(path: str | os.PathLike) -> Run:
    """Load the run in directory ``path`` (finished or not)."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise FileNotFoundError(f"{path} is not a run directory (no {CONFIG})")
    with reading(path / CONFIG):
        config = TrainConfig.from_dict(_read_json(path / CONFIG))
    summary = None
    if (path / SUMMARY).is_file():
        with reading(path / SUMMARY):
            summary = _read_json(path / SUMMARY)
            if not isinstance(summary, dict):
                raise ValueError(f"a run summary is a JSON object, got {type(summary).__name__}")
    return Run(path=path, config=config, summary=summary)


def find_run(config: TrainConfig, root: str | os.PathLike = "runs") -> Run | None:
    """The finished run of ``config`` under ``root`` (same :meth:`~TrainConfig.run_id`), or None."""
    path = Path(root) / config.run_id()
    if not (path / SUMMARY).is_file() or not (path / CONFIG).is_file():
        return None
    return load_run(path)


def load_runs(root: str | os.PathLike = "runs") -> pd.DataFrame:
    """One row per finished run under ``root``: ``run_id``, ``path``, config fields, summary metrics
    (:data:`SUMMARY_COLUMNS`) and final non-zeros per layer (``nonzeros.<layer>``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"results root {root} does not exist")
    config_columns = [f for f in TrainConfig.__dataclass_fields__]
    rows = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (path / SUMMARY).is_file() or not (path / CONFIG).is_file():
            continue
        run = load_run(path)
        row = {"run_id": run.run_id, "path": str(path), **run.config.to_dict()}
        row.update({k: run.summary.get(k) for k in SUMMARY_COLUMNS})
        for layer, count in (run.summary.get("nonzeros") or {}).items():
            row[f"nonzeros.{layer}"] = count
        rows.append(row)
    columns = ["run_id", "path", *config_columns, *SUMMARY_COLUMNS]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=columns)
    extra = [c for c in df.columns if c not in columns]
    return df[columns + extra]

"""The results store: one directory per run, named by :meth:`TrainConfig.run_id`.

``root/<run_id>/`` holds

- ``config.json``   the :class:`TrainConfig` (written when training starts),
- ``metrics.jsonl`` one JSON line per epoch,
- ``checkpoint.pt`` the last completed epoch (model, optimizer, scaler, scheduler, metrics),
- ``arrays.npz``    small arrays the book draws (first-layer weights, Figure 4),
- ``summary.json``  final numbers and provenance; written last, atomically: a run is *finished*
  exactly when it has a summary.

All writes that replace a file go through a temporary file in the same directory and
``os.replace``, so a reader (or a killed writer) never sees half a file.
"""

from __future__ import annotations

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
        return pd.json_normalize(read_jsonl(self.path / METRICS))

    def arrays(self) -> dict[str, Any]:
        """The small arrays saved at the end of training, about the first layer (the one at the
        first convolution's position): ``first_layer_name``; for every unit ``unit_nonzeros``,
        ``locality_radius`` and ``locality_window_mass`` (:func:`companion.analysis.locality`);
        and ``filters`` (float16, units × C × H × W on the input grid) of the ``filter_units``
        drawn at random among units with at least 20 non-zeros (Figures 4, 7–9)."""
        import numpy as np

        path = self.path / ARRAYS
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist (the run is unfinished or predates arrays)")
        with np.load(path) as npz:
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


# --------------------------------------------------------------------------- queries
def load_run(path: str | os.PathLike) -> Run:
    """Load the run in directory ``path`` (finished or not)."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise FileNotFoundError(f"{path} is not a run directory (no {CONFIG})")
    config = TrainConfig.from_dict(_read_json(path / CONFIG))
    summary = _read_json(path / SUMMARY) if (path / SUMMARY).is_file() else None
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

"""The training-length comparison read back from the store (issue 16): the runs of
:mod:`companion.experiments.lengths` at every length, as the frames the training-length chapter and claims
(b) and (c) at the longer lengths read (a :class:`~companion.experiments.study.Study`'s finished runs
only; nothing here trains)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from companion.book.protocol import seed_frame, seed_runs, table2_seeds
from companion.experiments.lengths import METHODS, planned_runs
from companion.experiments.study import Study


def setting(c) -> str:
    """The optimizer settings of a run's config, in words."""
    return (f"β={c.beta:g}, λ={c.lam:g}, λ_first={c.lam_first:g}" if c.optimizer == "beta-lasso"
            else f"momentum {c.momentum:g}, weight decay {c.weight_decay:g}")


def candidate_frame(study: Study, epochs: int) -> pd.DataFrame:
    """One row per candidate at ``epochs``: method, its settings, validation / test / train
    accuracy (%, NaN while unfinished), and ``chosen`` (best validation accuracy of its method,
    decided once all its candidates are finished)."""
    rows = []
    for method, configs in study.candidates(epochs).items():
        runs = [study.find(c) for c in configs]
        vals = [r.summary["final_val_acc"] if r else None for r in runs]
        best = vals.index(max(vals)) if None not in vals else None
        for i, (c, r) in enumerate(zip(configs, runs)):
            s = r.summary if r else {}
            rows.append({"method": method, "setting": setting(c),
                         **{f"{k}_acc": 100 * s[f"final_{k}_acc"] if r else float("nan") for k in ("val", "test", "train")},
                         "chosen": "pending" if best is None else ("yes" if i == best else "no"), "run_id": c.run_id()})
    return pd.DataFrame(rows)


def first_candidates(study: Study) -> dict[tuple[int, object, int], object]:
    """(epochs, Table 2 row key, first seed) → the finished first candidate of each method at each
    longer length (the best setting at the long length): what the chapter can show before the
    choice at that length is made."""
    p = study.profile
    out = {}
    for epochs in p.longer_epochs:
        for method, configs in study.candidates(epochs).items():
            if (run := study.find(configs[0])) is not None:
                out[(epochs, METHODS[method], p.seed)] = run
    return out


def length_runs(study: Study, *, partial: bool = False) -> dict[tuple[int, object, int], object]:
    """(epochs, Table 2 row key, seed) → finished Run for the central comparison at every length:
    the long length's seed runs (Table 2), and :func:`planned_runs`. ``partial=False``: every
    planned run must be finished (else :class:`~companion.experiments.runs.MissingRunsError` lists them);
    ``partial=True``: the finished ones (:func:`~companion.experiments.lengths.pending_runs` lists the
    rest), and while the choice at a length is pending, :func:`first_candidates` in its place."""

    out = {(study.profile.epochs_long, key, seed): run for (key, seed), run in seed_runs(study).items()
           if key in METHODS.values()}
    planned = planned_runs(study)
    if not partial:
        out.update(zip(planned, study.finished(planned.values())))
        return out
    out.update(first_candidates(study))
    out.update({k: r for k, c in planned.items() if (r := study.find(c)) is not None})
    return out


def length_frame(runs: dict) -> pd.DataFrame:
    """:func:`companion.book.protocol.seed_frame` of :func:`length_runs`'s runs, with their ``epochs``."""
    frames = []
    for epochs in sorted({e for e, _, _ in runs}):
        f = seed_frame({(key, seed): run for (e, key, seed), run in runs.items() if e == epochs})
        f.insert(0, "epochs", epochs)
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def length_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """:func:`length_frame` summarised per (epochs, row): :func:`companion.book.protocol.table2_seeds`."""

    return pd.concat([table2_seeds(g).assign(epochs=e) for e, g in per_run.groupby("epochs", sort=True)],
                     ignore_index=True)


def correct_matrix(runs: list, labels) -> np.ndarray:
    """Runs × test images: whether each run's stored prediction (``test_predictions``) is right."""

    rows = []
    for run in runs:
        a = run.arrays()
        if "test_predictions" not in a:
            raise ValueError(f"run {run.run_id} stored no test predictions (trained before issue 16)")
        rows.append(np.asarray(a["test_predictions"]) == np.asarray(labels))
    return np.stack(rows)

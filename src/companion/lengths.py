"""Training length (issue 16): the central comparison of Table 2 — S-FC trained with β-LASSO
against S-FC trained with SGD — again at the profile's longer lengths (``Profile.longer_epochs``;
cpu: 480 epochs), selected on validation at that length, with seeds.

- **Candidates** (:func:`candidate_configs`): the best :data:`CANDIDATES` settings of each
  search at the long length (by validation accuracy, the searches' own tie-breaking), trained
  at the longer length with the profile's first seed.
- **Choice** (:func:`chosen_configs`): of each method, the candidate with the best validation
  accuracy *at the longer length*; it is trained with every seed of the profile.
- **References**: S-LOCAL and S-CONV (SGD, the profile's fixed settings) at the longer length, first seed.
- **Trend** (``Profile.trend_epochs``; cpu: 960): each chosen setting of the longest longer
  length, first seed, to show where the trend goes (not a verdict: one seed).

Nothing here trains; the configs are listed for :mod:`companion.runs` (stages 2 and 3) and read
back by :func:`length_runs`.
"""

from __future__ import annotations

import pandas as pd

from companion.config import TrainConfig
from companion.profiles import Profile
from companion.runs import (BEST_LASSO, S_CONV_SGD, S_FC_SGD, S_LOCAL_SGD, beta_lasso, finished, sgd)

#: settings of each 120-epoch search carried to the longer length
CANDIDATES = 2
#: the two methods of the central comparison, as Table 2's rows
METHODS = {"lasso": BEST_LASSO, "sgd": S_FC_SGD}
#: the reference rows trained at the longer length (first seed)
REFERENCES = (S_LOCAL_SGD, S_CONV_SGD)


def candidate_configs(p: Profile, epochs: int, root=None) -> dict[str, list[TrainConfig]]:
    """Method (``lasso``/``sgd``) → the best :data:`CANDIDATES` settings of its search (finished
    runs at the search length, by validation accuracy), as configs of ``epochs`` epochs."""
    from companion.search import lasso_search, sgd_search

    lasso = lasso_search(p, root).sort_values(["val_acc", "lam"], ascending=[False, True]).head(CANDIDATES)
    out = {"lasso": [beta_lasso(p, "s-fc", p.s_alpha, epochs, lam=float(r.lam), lam_first=float(r.lam_first),
                                beta=float(r.beta)) for r in lasso.itertuples()]}
    if p.sgd_grid:
        s = sgd_search(p, root).sort_values(["val_acc", "weight_decay", "momentum"], ascending=[False, True, True])
        out["sgd"] = [sgd(p, "s-fc", p.s_alpha, epochs, momentum=float(r.momentum), weight_decay=float(r.weight_decay))
                      for r in s.head(CANDIDATES).itertuples()]
    else:
        out["sgd"] = [sgd(p, "s-fc", p.s_alpha, epochs)]
    return out


def candidate_frame(p: Profile, epochs: int, root=None) -> pd.DataFrame:
    """One row per candidate at ``epochs``: method, its settings, validation / test / train
    accuracy (%) and whether it is the one chosen (best validation accuracy of its method)."""
    rows = []
    for method, configs in candidate_configs(p, epochs, root).items():
        runs = finished(p, configs, root)
        vals = [r.summary["final_val_acc"] for r in runs]
        best = vals.index(max(vals))
        for i, (c, r) in enumerate(zip(configs, runs)):
            s = r.summary
            setting = (f"β={c.beta:g}, λ={c.lam:g}, λ_first={c.lam_first:g}" if c.optimizer == "beta-lasso"
                       else f"momentum {c.momentum:g}, weight decay {c.weight_decay:g}")
            rows.append({"method": method, "setting": setting, "val_acc": 100 * s["final_val_acc"],
                         "test_acc": 100 * s["final_test_acc"], "train_acc": 100 * s["final_train_acc"],
                         "chosen": i == best, "run_id": r.run_id})
    return pd.DataFrame(rows)


def chosen_configs(p: Profile, epochs: int, root=None) -> dict[str, TrainConfig]:
    """Method → its candidate with the best validation accuracy at ``epochs`` (first one on a
    tie, i.e. the better one at the search length); raises if a candidate is unfinished."""
    out = {}
    for method, configs in candidate_configs(p, epochs, root).items():
        vals = [r.summary["final_val_acc"] for r in finished(p, configs, root)]
        out[method] = configs[vals.index(max(vals))]
    return out


def reference_configs(p: Profile, epochs: int) -> dict:
    """S-LOCAL and S-CONV (SGD, the profile's settings) at ``epochs``."""
    return {key: sgd(p, key.model, p.s_alpha, epochs) for key in REFERENCES}


def stage2_configs(p: Profile, root=None) -> list[TrainConfig]:
    """What needs only the finished searches: the candidates and references at every longer length."""
    out = []
    for epochs in p.longer_epochs:
        out += [c for configs in candidate_configs(p, epochs, root).values() for c in configs]
        out += list(reference_configs(p, epochs).values())
    return out


def stage3_configs(p: Profile, root=None) -> list[TrainConfig]:
    """What needs the finished candidates: each chosen setting with every seed, and at the trend lengths."""
    out = []
    for epochs in p.longer_epochs:
        out += [c.replace(seed=s) for c in chosen_configs(p, epochs, root).values() for s in p.seeds]
    if p.trend_epochs and p.longer_epochs:
        chosen = chosen_configs(p, max(p.longer_epochs), root)
        out += [c.replace(epochs=e) for e in p.trend_epochs for c in chosen.values()]
    return out


def length_runs(p: Profile, root=None) -> dict[tuple[int, object, int], object]:
    """(epochs, Table 2 row key, seed) → finished Run for the central comparison at every length:
    the long length's seed runs (Table 2), each longer length's chosen runs with their seeds and
    references, the trend lengths' runs."""
    from companion.protocol import seed_runs

    out = {(p.epochs_long, key, seed): run for (key, seed), run in seed_runs(p, root).items()
           if key in METHODS.values()}
    configs = {}
    for epochs in p.longer_epochs:
        for method, c in chosen_configs(p, epochs, root).items():
            configs.update({(epochs, METHODS[method], s): c.replace(seed=s) for s in p.seeds})
        configs.update({(epochs, key, p.seed): c for key, c in reference_configs(p, epochs).items()})
    if p.trend_epochs and p.longer_epochs:
        for method, c in chosen_configs(p, max(p.longer_epochs), root).items():
            configs.update({(e, METHODS[method], p.seed): c.replace(epochs=e) for e in p.trend_epochs})
    out.update(zip(configs, finished(p, list(configs.values()), root)))
    return out


def length_frame(runs: dict) -> pd.DataFrame:
    """:func:`companion.protocol.seed_frame` of :func:`length_runs`'s runs, with their ``epochs``."""
    from companion.protocol import seed_frame

    frames = []
    for epochs in sorted({e for e, _, _ in runs}):
        f = seed_frame({(key, seed): run for (e, key, seed), run in runs.items() if e == epochs})
        f.insert(0, "epochs", epochs)
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def length_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """:func:`length_frame` summarised per (epochs, row): :func:`companion.protocol.table2_seeds`."""
    from companion.protocol import table2_seeds

    return pd.concat([table2_seeds(g).assign(epochs=e) for e, g in per_run.groupby("epochs", sort=True)],
                     ignore_index=True)


def correct_matrix(runs: list, labels) -> "np.ndarray":
    """Runs × test images: whether each run's stored prediction (``test_predictions``) is right."""
    import numpy as np

    rows = []
    for run in runs:
        a = run.arrays()
        if "test_predictions" not in a:
            raise ValueError(f"run {run.run_id} stored no test predictions (trained before issue 16)")
        rows.append(np.asarray(a["test_predictions"]) == np.asarray(labels))
    return np.stack(rows)


def all_configs(p: Profile, root=None) -> list[TrainConfig]:
    """Every run of the training-length comparison, for planning (never trains): stages 2 and 3;
    while runs they are listed from are unfinished, the first grid points stand in for the
    candidates (:func:`companion.runs.placeholder_choices`) and the first candidate for the choice."""
    from companion.runs import MissingRunsError, placeholder_choices

    out = []
    for epochs in p.longer_epochs:
        try:
            candidates = candidate_configs(p, epochs, root)
        except MissingRunsError:
            stand_in = placeholder_choices(p)
            candidates = {"lasso": [beta_lasso(p, "s-fc", p.s_alpha, epochs, **stand_in["best"])],
                          "sgd": [sgd(p, "s-fc", p.s_alpha, epochs, **(stand_in["sgd"] or {}))]}
        try:
            chosen = chosen_configs(p, epochs, root)
        except MissingRunsError:
            chosen = {m: cs[0] for m, cs in candidates.items()}
        out += [c for cs in candidates.values() for c in cs] + list(reference_configs(p, epochs).values())
        out += [c.replace(seed=s) for c in chosen.values() for s in p.seeds]
        if epochs == max(p.longer_epochs):
            out += [c.replace(epochs=e) for e in p.trend_epochs for c in chosen.values()]
    return out

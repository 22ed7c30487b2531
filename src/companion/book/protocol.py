"""The measurements behind the training protocol of a profile (issue 9): does the length of
training give β-LASSO room to act? Three frames, from finished runs only:

- :func:`search_regime`: for each λ/β of the search, the total ℓ1 shrink ½·η·λ·T of a weight
  that stays non-zero (cosine schedule: the learning rates sum to ½·η·T) and the threshold βλ,
  both relative to the first layer's initial weights — the scale on which λ and β act;
- :func:`settling`: when the chosen β-LASSO run's first layer stops changing (density of
  non-zeros, median locality radius) compared with how much of the learning rate is left;
- :func:`table2_seeds`: Table 2's chosen rows over every seed of the profile (mean ± spread),
  with the generalisation gap and the first layer's density and locality.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from companion.book.labels import run_label
from companion.config import steps_per_epoch
from companion.experiments.profiles import Profile
from companion.experiments.runs import BEST_LASSO, search_configs, seed_configs
from companion.experiments.study import Study
from companion.nn.analysis import paper_weights, random_placement_locality, settled_epoch
from companion.nn.models import build_model

#: :func:`settling`'s tolerances: density within this fraction of its final value, median
#: locality radius within this many pixels of its final value
DENSITY_TOLERANCE = 0.10
RADIUS_TOLERANCE = 0.5


def initial_first_layer(p: Profile) -> dict[str, float]:
    """Mean |w| and max |w| of S-FC's first layer at initialisation (seed of the profile),
    measured on the built network (PyTorch's default initialisation, as the trainer uses)."""
    import torch


    torch.manual_seed(p.seed)
    model = build_model("s-fc", p.s_alpha)
    w = next(iter(paper_weights(model).values())).detach().abs()
    return {"mean_abs": float(w.mean()), "max_abs": float(w.max()), "weights": int(w.numel())}


def steps(p: Profile, epochs: int) -> int:
    """Optimizer steps of one run: ``epochs`` × the trainer's steps per epoch
    (:func:`companion.config.steps_per_epoch`: the last partial batch is dropped)."""
    if p.train_size is None:
        raise ValueError(f"profile {p.name} trains on the whole dataset; give its training size")
    return epochs * steps_per_epoch(p.train_size, p.batch_size)


def search_regime(p: Profile) -> pd.DataFrame:
    """Per (β, λ, λ_first) of the search: T steps, the first layer's total ℓ1 shrink
    ½·η·λ_first·T relative to its mean initial |w| (``shrink_x``: how many times a typical weight
    could be pulled to zero), and the threshold β·λ_first relative to its initial max |w|
    (``threshold_frac``)."""
    init = initial_first_layer(p)
    rows = []
    for c in search_configs(p):
        eta, t = c.lr, steps(p, c.epochs)  # the trainer's schedule is cosine to 0 over all steps
        lam_first = c.lam_first if c.lam_first is not None else c.lam
        rows.append({"beta": c.beta, "lam": c.lam, "lam_first": lam_first, "steps": t,
                     "shrink_x": 0.5 * eta * lam_first * t / init["mean_abs"],
                     "threshold_frac": c.beta * lam_first / init["max_abs"]})
    return pd.DataFrame(rows)


def settling_curves(run) -> pd.DataFrame:
    """Per tracked epoch of ``run``: the learning rate relative to its first value, the first
    layer's share of non-zero weights, its median locality radius and window mass, train accuracy
    and (on tracked epochs) test accuracy (%)."""
    m = run.metrics
    first = run.summary["first_layer"]["layer"]
    weights = run.summary["params"][first]
    rows = []
    for _, r in m.iterrows():
        radius, window = r.get("locality.radius"), r.get("locality.window_mass")
        tracked = isinstance(radius, list) and isinstance(window, list)
        rows.append({"epoch": int(r["epoch"]), "lr": float(r["lr"]) / float(m["lr"].iloc[0]),
                     "density": float(r[f"nonzeros.{first}"]) / weights,
                     "radius": radius[len(radius) // 2] if tracked else np.nan,
                     "window_mass": window[len(window) // 2] if tracked else np.nan,
                     "train_acc": float(r["train_acc"]) * 100,
                     "test_acc": float(r["test_acc"]) * 100 if pd.notna(r["test_acc"]) else np.nan})
    return pd.DataFrame(rows)


def settled(curves: pd.DataFrame, *, density_tolerance: float = DENSITY_TOLERANCE,
            radius_tolerance: float = RADIUS_TOLERANCE) -> dict:
    """When the first layer stopped changing (:func:`companion.nn.analysis.settled_epoch`): the
    epoch from which its density stays within ``density_tolerance`` × its final value and the
    epoch from which its median radius stays within ``radius_tolerance`` px of its final value,
    each with the share of the initial learning rate still left then (cosine: ``lr``), and the
    epochs trained."""

    out = {"epochs": int(curves["epoch"].iloc[-1])}
    tracked = curves.dropna(subset=["radius"])
    for name, frame, tol in (("density", curves, density_tolerance * curves["density"].iloc[-1]),
                             ("radius", tracked, radius_tolerance)):
        if frame.empty:
            out[f"{name}_epoch"], out[f"{name}_lr_left"] = np.nan, np.nan
            continue
        i = settled_epoch(frame[name].to_numpy(), tolerance=tol)
        out[f"{name}_epoch"] = int(frame["epoch"].iloc[i])
        out[f"{name}_lr_left"] = float(frame["lr"].iloc[i])
    return out


def settling(study: Study, row=BEST_LASSO) -> tuple[pd.DataFrame, dict]:
    """:func:`settling_curves` and :func:`settled` of Table 2's ``row`` (by default the β-LASSO
    run chosen on validation)."""
    (run,) = study.finished([study.table2_configs[row]])
    curves = settling_curves(run)
    return curves, settled(curves)


def _first_layer_locality(run) -> dict[str, float]:
    a = run.arrays()
    nnz = np.asarray(a["unit_nonzeros"])
    alive = nnz > 0
    return {"radius": float(np.median(a["locality_radius"][alive])) if alive.any() else np.nan,
            "window_mass": float(np.median(a["locality_window_mass"][alive])) if alive.any() else np.nan}


def seed_runs(study: Study) -> dict:
    """(row key, seed) → finished Run, for Table 2's rows trained with every seed."""
    configs = seed_configs(study.profile, study.table2_configs)
    return dict(zip(configs, study.finished(configs.values())))


def seed_frame(runs: dict) -> pd.DataFrame:
    """One row per (row, seed) of :func:`seed_runs`'s runs: accuracies (%), gap (train − test),
    the first layer's share of non-zeros and its median locality radius and window mass."""
    rows = []
    for (key, seed), run in runs.items():
        s = run.summary
        first = s["first_layer"]["layer"]
        train, val, test = (100 * s[f"final_{k}_acc"] for k in ("train", "val", "test"))
        rows.append({"row": run_label(key), "seed": seed, "train_acc": train, "val_acc": val, "test_acc": test,
                     "gap": train - test, "first_density": s["nonzeros"][first] / s["params"][first],
                     **_first_layer_locality(run), "n_test": s["dataset"]["n_test"], "wall_s": s["wall_time_s"]})
    return pd.DataFrame(rows)


def table2_seeds(per_seed: pd.DataFrame) -> pd.DataFrame:
    """:func:`seed_frame` summarised per row: ``n_seeds``, and the mean and sample standard
    deviation (``_sd``, NaN for one seed) of every measured column."""
    columns = [c for c in ["train_acc", "val_acc", "test_acc", "gap", "first_density", "radius", "window_mass",
                           "null_ratio"] if c in per_seed]
    g = per_seed.groupby("row", sort=False)
    out = g[columns].mean().add_suffix("_mean").join(g[columns].std(ddof=1).add_suffix("_sd"))
    out.insert(0, "n_seeds", g.size())
    out["n_test"] = g["n_test"].min()
    return out.reset_index()


def null_frame(arrays: dict, *, seed: int = 0) -> pd.DataFrame:
    """Claim (c)'s null, unit by unit: for every first-layer unit with at least one non-zero
    weight (``arrays``: a run's :meth:`~companion.store.results.Run.arrays`), its count of non-zeros,
    its locality radius and window mass, and those of the same count placed at random
    (:func:`companion.nn.analysis.random_placement_locality`). One draw, read by both claim (c)
    (:func:`companion.book.claims.null_comparison`) and chapter 9's figure."""

    for key in ("unit_nonzeros", "locality_radius", "locality_window_mass"):
        if key not in arrays:
            raise ValueError(f"run arrays lack {key!r}; they have {sorted(arrays)}")
    nnz = np.asarray(arrays["unit_nonzeros"])
    alive = nnz > 0
    null = random_placement_locality(nnz[alive], seed=seed)
    return pd.DataFrame({"nonzeros": nnz[alive], "radius": np.asarray(arrays["locality_radius"])[alive],
                         "window_mass": np.asarray(arrays["locality_window_mass"])[alive],
                         "null_radius": null["radius"].numpy(), "null_window_mass": null["window_mass"].numpy()})

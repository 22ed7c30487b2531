"""The λ/β search of β-LASSO, the SGD baseline's (momentum, weight decay) search, and their
selection on validation accuracy (Appendix A.2: test accuracy is reported, never used to
choose). Each search's frame is built from its configs and their finished runs; selection is a
plain function of that frame (:class:`companion.experiments.study.Study` reads the runs and
chooses once per store)."""

from __future__ import annotations

import pandas as pd

from companion.experiments.profiles import Profile
from companion.experiments.runs import sgd_choice_of

#: the columns of :func:`sgd_frame` (an empty grid gives an empty frame with them)
SGD_COLUMNS = ["momentum", "weight_decay", "train_acc", "val_acc", "test_acc", "nonzeros", "weights", "wall_s",
               "run_id"]


def summary_row(run) -> dict:
    """A finished run's accuracies (fractions), non-zeros, weights, wall time and run id."""
    s = run.summary
    return {"train_acc": s["final_train_acc"], "val_acc": s["final_val_acc"], "test_acc": s["final_test_acc"],
            "nonzeros": s["total_nonzeros"], "weights": s["total_weights"], "wall_s": s["wall_time_s"],
            "run_id": run.run_id}


def lasso_frame(configs, runs) -> pd.DataFrame:
    """The β-LASSO search (:func:`companion.experiments.runs.search_configs` and their finished
    runs): one row per (β, λ, λ_first), with validation and test accuracy."""
    rows = [{"beta": c.beta, "lam": c.lam, "lam_first": c.lam_first, **summary_row(r)}
            for c, r in zip(configs, runs)]
    return pd.DataFrame(rows)


def ranked_lasso(search: pd.DataFrame) -> pd.DataFrame:
    """:func:`lasso_frame`'s frame best first: by validation accuracy, ties to the smaller λ."""
    return search.sort_values(["val_acc", "lam"], ascending=[False, True])


def pick_lasso(search: pd.DataFrame, beta: float | None = None) -> dict:
    """(β, λ, λ_first) of the row of :func:`lasso_frame`'s frame with the best validation
    accuracy (among β = ``beta`` if given; ties go to the smaller λ)."""
    if beta is not None:
        search = search[search["beta"] == beta]
    best = ranked_lasso(search).iloc[0]
    return {"beta": float(best["beta"]), "lam": float(best["lam"]), "lam_first": float(best["lam_first"])}


def selection(search: pd.DataFrame) -> dict:
    """Every choice made on :func:`lasso_frame`'s frame: β → the best (β, λ, λ_first) for that
    β, and ``"best"`` → the best overall."""
    out = {float(beta): pick_lasso(search, float(beta)) for beta in search["beta"].unique()}
    out["best"] = pick_lasso(search)
    return out


def lasso_choices(search: pd.DataFrame) -> pd.DataFrame:
    """A copy of :func:`lasso_frame`'s frame with the selections marked: ``chosen_for_beta`` (the
    best (λ, λ_first) of each β, Table 2's β rows) and ``chosen`` (the best overall)."""
    search = search.copy()

    def where(hp):
        return (search["beta"] == hp["beta"]) & (search["lam"] == hp["lam"]) & (search["lam_first"] == hp["lam_first"])

    choices = selection(search)
    best = choices.pop("best")
    search["chosen_for_beta"] = False
    for hp in choices.values():
        search.loc[where(hp), "chosen_for_beta"] = True
    search["chosen"] = where(best)
    return search


def sgd_frame(configs, runs) -> pd.DataFrame:
    """The SGD baseline's search (:func:`companion.experiments.runs.sgd_search_configs` and their
    finished runs): one row per (momentum, weight decay), with validation and test accuracy.
    Empty when the profile has no grid."""
    rows = [{"momentum": c.momentum, "weight_decay": c.weight_decay, **summary_row(r)} for c, r in zip(configs, runs)]
    return pd.DataFrame(rows, columns=SGD_COLUMNS)


def ranked_sgd(search: pd.DataFrame) -> pd.DataFrame:
    """:func:`sgd_frame`'s frame best first: by validation accuracy, ties to the smaller weight
    decay, then the smaller momentum."""
    return search.sort_values(["val_acc", "weight_decay", "momentum"], ascending=[False, True, True])


def pick_sgd(search: pd.DataFrame) -> dict:
    """(momentum, weight decay) of the row of :func:`sgd_frame`'s frame with the best validation
    accuracy (ties go to the smaller weight decay, then the smaller momentum)."""
    best = ranked_sgd(search).iloc[0]
    return {"momentum": float(best["momentum"]), "weight_decay": float(best["weight_decay"])}


def placeholder_choices(p: Profile) -> dict:
    """A stand-in selection (the first grid point for every β and of the SGD grid) for counting
    runs and their cost before the searches have finished: how many runs and FLOPs do not depend
    on which setting wins."""
    first = {"lam": p.lambdas[0], "lam_first": p.lambdas[0] * p.lam_first_factors[0]}
    choices = {float(b): {"beta": float(b), **first} for b in p.betas}
    choices["best"] = choices[float(p.betas[-1])]
    choices["sgd"] = sgd_choice_of(p, p.sgd_grid[0]) if p.sgd_grid else None
    return choices

"""The runs behind each table and figure of the paper, at a scale profile, as
:class:`~companion.config.TrainConfig` lists (which of them are finished in the results store:
:class:`companion.experiments.study.Study`). Nothing here trains (:mod:`companion.experiments.stages` does).

=====================  ==================================================================
artifact               runs
=====================  ==================================================================
Table 1                the seven networks at a common FC budget, SGD, short and long
λ/β search             S-FC β-LASSO, short, over the profile's β × λ × λ_first grid
SGD search             S-FC SGD over the profile's (momentum, weight decay) grid, same length
Table 2, Figure 3      S-FC SGD and β-LASSO (β = 0, 1, 50, best) long; S-LOCAL, S-CONV SGD;
                       the chosen rows (SEED_ROWS) with every seed of the profile
Figures 4, 7–9         first-layer filters of the Table 2 runs
Figures 2, 6           D-CONV, S-CONV, 3-FC, ResNet18 as α grows, SGD, short
Figure 5               ResNet18 with each kernel size, SGD vs β-LASSO, short
permutation            Table 2's S-* runs again on pixel-permuted images, long
=====================  ==================================================================

Stage 1 (:func:`companion.experiments.stages.stage1`) needs no selection; stage 2
(:func:`companion.experiments.stages.stage2`: Table 2's β-LASSO rows and S-FC SGD row, their
seeds, Figure 5's β-LASSO runs, the permuted chosen runs) is listed from the finished searches
(:mod:`companion.experiments.search`, chosen once per store by :class:`companion.experiments.study.Study`). Runs are keyed by :class:`RunKey`; their labels come from
:func:`companion.book.labels.run_label`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from companion.config import TrainConfig
from companion.experiments.profiles import Profile
from companion.nn.params import alpha_for_budget
from companion.store.provenance import find_book_root

TABLE1_MODELS = ("d-conv", "d-local", "d-fc", "s-conv", "s-local", "s-fc", "3-fc")
SCALING_FAMILIES = ("d-conv", "s-conv", "3-fc", "resnet18")
#: the fixed pixel permutation of the permutation test (any seed; recorded in the run config)
PERMUTATION_SEED = 1


class RunKey(NamedTuple):
    """Which run of a table: network, optimizer, β (β-LASSO) and how its settings were chosen on
    validation: ``"beta"`` (best (λ, λ_first) for this β), ``"best"`` (best (β, λ, λ_first)
    overall), ``"beta+best"`` (both: the same run), None (SGD: nothing chosen)."""

    model: str
    optimizer: str
    beta: float | None = None
    chosen: str | None = None


S_CONV_SGD = RunKey("s-conv", "sgd")
S_LOCAL_SGD = RunKey("s-local", "sgd")
FC3_SGD = RunKey("3-fc", "sgd")
S_FC_SGD = RunKey("s-fc", "sgd")
#: Table 2's β-LASSO run chosen on validation (the one the claims use)
BEST_LASSO = RunKey("s-fc", "beta-lasso", None, "best")


#: Table 2's rows trained with every seed of the profile (``Profile.seeds``): mean ± spread
SEED_ROWS = (S_CONV_SGD, S_LOCAL_SGD, S_FC_SGD, BEST_LASSO)


def lasso_key(beta: float) -> RunKey:
    """Table 2's row of S-FC β-LASSO at ``beta`` (λ, λ_first chosen on validation)."""
    return RunKey("s-fc", "beta-lasso", float(beta), "beta")


def results_dir(profile: Profile, root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$COMPANION_RESULTS/<profile>``, else the book's
    ``results/<profile>`` (the nearest folder, from the working directory up, that holds the
    book's ``_toc.yml``; notebooks run from ``notebooks/`` and the CLI from the top both find
    it), else ``./results/<profile>``."""
    if root is not None:
        return Path(root)
    if "COMPANION_RESULTS" in os.environ:
        return Path(os.environ["COMPANION_RESULTS"]) / profile.name
    book = find_book_root()
    return (book if book is not None else Path()) / "results" / profile.name


# ------------------------------------------------------------------------------ configs
def _config(p: Profile, model: str, alpha: int, epochs: int, **changes) -> TrainConfig:
    fields = dict(model=model, alpha=alpha, epochs=epochs, dataset=p.dataset, data_root=p.data_root,
                  batch_size=p.batch_size, augment=p.augment, subset=p.train_size, val_size=p.val_size,
                  seed=p.seed, device=p.device, track_every=p.track_every)
    return TrainConfig(**{**fields, **changes})


def sgd(p: Profile, model: str, alpha: int, epochs: int, **changes) -> TrainConfig:
    """SGD with the profile's momentum and weight decay (Appendix A.2) unless ``changes`` set them."""
    return _config(p, model, alpha, epochs, optimizer="sgd",
                   **{"momentum": p.sgd_momentum, "weight_decay": p.sgd_weight_decay, **changes})


def beta_lasso(p: Profile, model: str, alpha: int, epochs: int, *, lam: float, lam_first: float,
               beta: float, **changes) -> TrainConfig:
    """β-LASSO (Algorithm 1), no momentum (Appendix A.2)."""
    return _config(p, model, alpha, epochs, optimizer="beta-lasso", lam=lam, lam_first=lam_first,
                   beta=beta, **changes)


def table1_alphas(p: Profile) -> dict[str, int]:
    """α of each Table 1 network: the smallest whose FC counterpart reaches the budget."""
    return {name: alpha_for_budget(name, p.fc_budget) for name in TABLE1_MODELS}


def table1_configs(p: Profile) -> list[TrainConfig]:
    alphas = table1_alphas(p)
    return [sgd(p, name, alphas[name], epochs) for epochs in (p.epochs_short, p.epochs_long)
            for name in TABLE1_MODELS]


def search_epochs(p: Profile) -> int:
    """Epochs of the search runs: the short training, or (``search_length="long"``, issue 9) the
    full length Table 2 reports, so that what is chosen is what is reported."""
    return p.epochs_long if p.search_length == "long" else p.epochs_short


def search_configs(p: Profile) -> list[TrainConfig]:
    """S-FC β-LASSO over β × λ × λ_first/λ (Appendix A.2's search, rescaled)."""
    return [beta_lasso(p, "s-fc", p.s_alpha, search_epochs(p), lam=lam, lam_first=lam * f, beta=beta)
            for beta in p.betas for lam in p.lambdas for f in p.lam_first_factors]


def sgd_search_configs(p: Profile) -> list[TrainConfig]:
    """S-FC SGD over the profile's (momentum, weight decay) grid, trained as long as the β-LASSO
    search: the baseline gets a comparable search (issue 9). Empty when the grid is."""
    return [sgd(p, "s-fc", p.s_alpha, search_epochs(p), momentum=m, weight_decay=wd) for m, wd in p.sgd_grid]


def scaling_configs(p: Profile) -> list[TrainConfig]:
    return [sgd(p, family, alpha, p.epochs_short) for family in SCALING_FAMILIES
            for alpha in p.scaling_alphas[family]]


def table2_sgd_configs(p: Profile, sgd_choice: dict | None = None) -> dict[RunKey, TrainConfig]:
    """Table 2's SGD rows (long training). S-FC's uses ``sgd_choice`` (momentum, weight decay
    chosen by the SGD search); the others, and S-FC's when ``None``, the profile's fixed ones."""
    a = p.s_alpha
    return {S_CONV_SGD: sgd(p, "s-conv", a, p.epochs_long), S_LOCAL_SGD: sgd(p, "s-local", a, p.epochs_long),
            FC3_SGD: sgd(p, "3-fc", table1_alphas(p)["3-fc"], p.epochs_long),
            S_FC_SGD: sgd(p, "s-fc", a, p.epochs_long, **(sgd_choice or {}))}


def table2_configs(p: Profile, choices: dict) -> dict[RunKey, TrainConfig]:
    """Table 2's rows at this scale (long training). ``choices``: :attr:`companion.experiments.study.Study.choices`
    (β → (β, λ, λ_first) chosen on validation, ``"best"`` → the best overall, ``"sgd"`` → S-FC
    SGD's momentum and weight decay)."""
    rows = table2_sgd_configs(p, choices.get("sgd"))
    for beta in p.betas:
        rows[lasso_key(beta)] = beta_lasso(p, "s-fc", p.s_alpha, p.epochs_long, **choices[float(beta)])
    rows[BEST_LASSO] = beta_lasso(p, "s-fc", p.s_alpha, p.epochs_long, **choices["best"])
    return rows


def figure5_configs(p: Profile, best: dict) -> list[TrainConfig]:
    """ResNet18 per kernel size: SGD, and β-LASSO with S-FC's ``best`` (β, λ, λ_first) (not re-tuned)."""
    out = []
    for k in p.resnet_kernels:
        out.append(sgd(p, "resnet18", p.resnet_alpha, p.epochs_short, kernel_size=k))
        out.append(beta_lasso(p, "resnet18", p.resnet_alpha, p.epochs_short, kernel_size=k, **best))
    return out


def seed_configs(p: Profile, table2: dict[RunKey, TrainConfig]) -> dict[tuple[RunKey, int], TrainConfig]:
    """(row, seed) → config for the rows :data:`SEED_ROWS` of ``table2`` and every seed of the
    profile (the row's own config is its first seed)."""
    return {(key, seed): table2[key].replace(seed=seed) for key in SEED_ROWS if key in table2 for seed in p.seeds}


#: Table 2's rows trained again on permuted pixels (Section 4.1)
PERMUTATION_ROWS = (S_CONV_SGD, S_LOCAL_SGD, S_FC_SGD, BEST_LASSO)


def permutation_configs(table2: dict[RunKey, TrainConfig]) -> dict[tuple[RunKey, bool], TrainConfig]:
    """(row, permuted) → config, for the rows :data:`PERMUTATION_ROWS` of ``table2`` (configs)."""
    out = {}
    for key in PERMUTATION_ROWS:
        if key in table2:
            out[(key, False)] = table2[key]
            out[(key, True)] = table2[key].replace(permute_pixels=PERMUTATION_SEED)
    return out


# ------------------------------------------------------------------------------ the store
def unique(configs) -> list[TrainConfig]:
    seen, out = set(), []
    for c in configs:
        if c.run_id() not in seen:
            seen.add(c.run_id())
            out.append(c)
    return out


class MissingRunsError(FileNotFoundError):
    """Runs a chapter needs are not finished in the results store (listing them and the command)."""


def missing_runs_error(p: Profile, folder, missing) -> MissingRunsError:
    """The one error for runs that are not finished in the store ``folder``: each missing config
    (once) and the command that trains them (:meth:`companion.experiments.study.Study.finished`)."""
    lines = "\n".join(f"  {c.model} α={c.alpha} {c.optimizer} {c.epochs} ep (run {c.run_id()})"
                      for c in unique(missing))
    return MissingRunsError(
        f"{len(unique(missing))} run(s) are not finished in {folder}:\n{lines}\n"
        f"train them with `companion experiments --profile {p.name}`")


def sgd_choice_of(p: Profile, point: tuple) -> dict:
    """The SGD settings ``{"momentum", "weight_decay"}`` of one point of ``Profile.sgd_grid``."""
    momentum, weight_decay = point
    return {"momentum": float(momentum), "weight_decay": float(weight_decay)}

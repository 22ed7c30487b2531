"""Training length (issue 16): the central comparison of Table 2 — S-FC trained with β-LASSO
against S-FC trained with SGD — again at the profile's longer lengths (``Profile.longer_epochs``;
cpu: 480 epochs), selected on validation at that length, with seeds.

- **Candidates** (:func:`candidate_configs`): the best :data:`CANDIDATES` settings of each
  search at the long length (by validation accuracy, the searches' own tie-breaking), trained
  at the longer length with the profile's first seed.
- **Choice** (:func:`best_on_validation`): of each method, the candidate with the best validation
  accuracy *at the longer length*; it is trained with every seed of the profile.
- **References**: S-LOCAL and S-CONV (SGD, the profile's fixed settings) at the longer length, first seed.
- **Trend** (``Profile.trend_epochs``; cpu: 960): each chosen setting of the longest longer
  length, first seed, to show where the trend goes (not a verdict: one seed).

Nothing here trains or reads the store: :class:`companion.experiments.study.Study` makes the choices
once per store (``Study.candidates``, ``Study.chosen``) and the functions taking a ``study`` list
from them; the configs are listed for :mod:`companion.experiments.stages` (stages 2 and 3) and read
back by :mod:`companion.book.length_tables`.
"""

from __future__ import annotations

from companion.config import TrainConfig
from companion.experiments.profiles import Profile
from companion.experiments.runs import BEST_LASSO, S_CONV_SGD, S_FC_SGD, S_LOCAL_SGD, MissingRunsError, beta_lasso, sgd
from companion.experiments.search import placeholder_choices, ranked_lasso, ranked_sgd

#: settings of each 120-epoch search carried to the longer length
CANDIDATES = 2
#: the two methods of the central comparison, as Table 2's rows
METHODS = {"lasso": BEST_LASSO, "sgd": S_FC_SGD}
#: the reference rows trained at the longer length (first seed)
REFERENCES = (S_LOCAL_SGD, S_CONV_SGD)


def candidate_configs(p: Profile, epochs: int, lasso_search, sgd_search) -> dict[str, list[TrainConfig]]:
    """Method (``lasso``/``sgd``) → the best :data:`CANDIDATES` settings of its search (the search
    frames of finished runs at the search length, :mod:`companion.experiments.search`, by validation
    accuracy), as configs of ``epochs`` epochs; ``sgd_search`` is not read when the profile has no SGD grid."""
    lasso = ranked_lasso(lasso_search).head(CANDIDATES)
    out = {"lasso": [beta_lasso(p, "s-fc", p.s_alpha, epochs, lam=float(r.lam), lam_first=float(r.lam_first),
                                beta=float(r.beta)) for r in lasso.itertuples()]}
    if p.sgd_grid:
        s = ranked_sgd(sgd_search)
        out["sgd"] = [sgd(p, "s-fc", p.s_alpha, epochs, momentum=float(r.momentum), weight_decay=float(r.weight_decay))
                      for r in s.head(CANDIDATES).itertuples()]
    else:
        out["sgd"] = [sgd(p, "s-fc", p.s_alpha, epochs)]
    return out


def best_on_validation(configs: list[TrainConfig], runs: list) -> TrainConfig:
    """The config among ``configs`` whose finished run (``runs``, in the same order) has the best
    validation accuracy (the first one on a tie, i.e. the better one at the search length)."""
    vals = [r.summary["final_val_acc"] for r in runs]
    return configs[vals.index(max(vals))]


def reference_configs(p: Profile, epochs: int) -> dict:
    """S-LOCAL and S-CONV (SGD, the profile's settings) at ``epochs``."""
    return {key: sgd(p, key.model, p.s_alpha, epochs) for key in REFERENCES}


def stage2_configs(study) -> list[TrainConfig]:
    """What needs only the finished searches of ``study`` (:class:`~companion.experiments.study.Study`):
    the candidates and references at every longer length."""
    p = study.profile
    out = []
    for epochs in p.longer_epochs:
        out += [c for configs in study.candidates(epochs).values() for c in configs]
        out += list(reference_configs(p, epochs).values())
    return out


def seeded_runs(p: Profile, epochs: int, chosen: dict[str, TrainConfig]) -> dict[tuple[int, object, int], TrainConfig]:
    """(epochs, Table 2 row key, seed) → config of the runs a choice at ``epochs`` (method →
    config) sets: each chosen setting with every seed and, at the longest longer length, at the
    trend lengths with the first seed."""
    out = {(epochs, METHODS[m], s): c.replace(seed=s) for m, c in chosen.items() for s in p.seeds}
    if epochs == max(p.longer_epochs):
        out.update({(e, METHODS[m], p.seed): c.replace(epochs=e) for m, c in chosen.items() for e in p.trend_epochs})
    return out


def stage3_configs(study) -> list[TrainConfig]:
    """What needs the finished candidates of ``study``: each chosen setting with every seed, and at
    the trend lengths."""
    p = study.profile
    return [c for epochs in p.longer_epochs for c in seeded_runs(p, epochs, study.chosen(epochs)).values()]


def planned_runs(study) -> dict[tuple[int, object, int], TrainConfig]:
    """(epochs, Table 2 row key, seed) → config of every run the comparison reads at the longer
    and trend lengths, as far as ``study``'s finished runs list them: the choice at a length, and
    so its seeds and the trend runs, is listed only once the candidates there are finished."""
    p = study.profile
    configs = {}
    for epochs in p.longer_epochs:
        configs.update({(epochs, key, p.seed): c for key, c in reference_configs(p, epochs).items()})
        try:
            chosen = study.chosen(epochs)
        except MissingRunsError:
            continue
        configs.update(seeded_runs(p, epochs, chosen))
    return configs


def pending_runs(study) -> list[TrainConfig]:
    """The runs of the comparison not finished in ``study``'s store yet: the listed ones
    (:func:`planned_runs`), and while the candidates at a length are unfinished, their second
    candidates too (the choice, its seeds and the trend runs are listed once the candidates are finished)."""
    p = study.profile
    listed = list(planned_runs(study).values())
    listed += [c for epochs in p.longer_epochs for cs in study.candidates(epochs).values() for c in cs]
    seen, out = set(), []
    for c in listed:
        if c.run_id() not in seen and study.find(c) is None:
            seen.add(c.run_id())
            out.append(c)
    return out


def complete_lengths(p: Profile, runs: dict) -> list[int]:
    """The longer lengths at which both methods have every seed of the profile (a verdict needs them)."""
    return [e for e in p.longer_epochs
            if all((e, key, s) in runs for key in METHODS.values() for s in p.seeds)]


def all_configs(study) -> list[TrainConfig]:
    """Every run of the training-length comparison, for planning (never trains): stages 2 and 3;
    while runs they are listed from are unfinished in ``study``'s store, the first grid points stand
    in for the candidates (:func:`companion.experiments.search.placeholder_choices`) and the first
    candidate for the choice."""
    p = study.profile
    out = []
    for epochs in p.longer_epochs:
        try:
            candidates = study.candidates(epochs)
        except MissingRunsError:
            stand_in = placeholder_choices(p)
            candidates = {"lasso": [beta_lasso(p, "s-fc", p.s_alpha, epochs, **stand_in["best"])],
                          "sgd": [sgd(p, "s-fc", p.s_alpha, epochs, **(stand_in["sgd"] or {}))]}
        try:
            chosen = study.chosen(epochs)
        except MissingRunsError:
            chosen = {m: cs[0] for m, cs in candidates.items()}
        out += [c for cs in candidates.values() for c in cs] + list(reference_configs(p, epochs).values())
        out += list(seeded_runs(p, epochs, chosen).values())
    return out

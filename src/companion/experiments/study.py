"""One results store at one profile, read once: its finished runs and the choices made on them on validation."""

from __future__ import annotations

import os
from functools import cached_property

import pandas as pd

from companion.config import TrainConfig
from companion.experiments import lengths, search
from companion.experiments.profiles import Profile
from companion.experiments.runs import (RunKey, missing_runs_error, results_dir, search_configs, sgd_choice_of,
                                        sgd_search_configs, table2_configs)
from companion.store.results import Run, find_run


class Study:
    """The book's runs at ``profile`` in the results store ``root`` (None:
    :func:`~companion.experiments.runs.results_dir`'s default), each read once.

    Built once per chapter (or command), it is what the book's frames take: every finished run
    is read from the store the first time it is asked for and kept by run id (a finished run does
    not change); every choice on validation is made the first time it is asked for and kept: the
    λ/β search and its selection (:attr:`lasso_search`, :attr:`lasso_selection`), the SGD search
    and its choice (:attr:`sgd_search`, :attr:`sgd_choice`), Table 2's configs
    (:attr:`table2_configs`), and at each longer length the candidates and the choice among them
    (:meth:`candidates`, :meth:`chosen`). A run that is not finished is not remembered: it is
    looked for again when next asked for, and what needs it raises the one
    :class:`~companion.experiments.runs.MissingRunsError` that lists every missing run and the
    command that trains them (nothing is kept then, so it is made once the runs are finished).
    """

    def __init__(self, profile: Profile, root: str | os.PathLike | None = None):
        self.profile = profile
        self.root = results_dir(profile, root)
        self._runs: dict[str, Run] = {}
        self._candidates: dict[int, dict[str, list[TrainConfig]]] = {}
        self._chosen: dict[int, dict[str, TrainConfig]] = {}

    def __repr__(self) -> str:
        return f"Study({self.profile.name!r}, {str(self.root)!r})"

    # ------------------------------------------------------------------------ the store
    def find(self, config: TrainConfig) -> Run | None:
        """The finished run of ``config`` (read from the store once), or None while it is unfinished."""
        run_id = config.run_id()
        if run_id not in self._runs:
            run = find_run(config, self.root)
            if run is None:
                return None
            self._runs[run_id] = run
        return self._runs[run_id]

    def finished(self, configs) -> list[Run]:
        """The finished run of each config, in order (never trains); one
        :class:`~companion.experiments.runs.MissingRunsError` listing every missing run and the
        command that trains them."""
        configs = list(configs)
        runs = [self.find(c) for c in configs]
        missing = [c for c, r in zip(configs, runs) if r is None]
        if missing:
            raise missing_runs_error(self.profile, self.root, missing)
        return runs

    # ------------------------------------------------------------------ the searches
    @cached_property
    def lasso_search(self) -> pd.DataFrame:
        """The β-LASSO search (:func:`companion.experiments.search.lasso_frame`); read it, never change it."""
        configs = search_configs(self.profile)
        return search.lasso_frame(configs, self.finished(configs))

    @cached_property
    def sgd_search(self) -> pd.DataFrame:
        """The SGD search (:func:`companion.experiments.search.sgd_frame`; empty when the profile
        has no grid); read it, never change it."""
        configs = sgd_search_configs(self.profile)
        return search.sgd_frame(configs, self.finished(configs))

    @cached_property
    def lasso_selection(self) -> dict:
        """β → the best (β, λ, λ_first) for that β, and ``"best"`` → the best overall
        (:func:`companion.experiments.search.selection`)."""
        return search.selection(self.lasso_search)

    @cached_property
    def sgd_choice(self) -> dict | None:
        """S-FC SGD's chosen (momentum, weight decay): the best on validation of a grid of several
        points, the one point of a grid of one (no search run read), None when the profile has no grid."""
        p = self.profile
        if len(p.sgd_grid) > 1:
            return search.pick_sgd(self.sgd_search)
        return sgd_choice_of(p, p.sgd_grid[0]) if p.sgd_grid else None

    @cached_property
    def choices(self) -> dict:
        """Every selection the book's runs depend on: :attr:`lasso_selection`'s and ``"sgd"`` →
        :attr:`sgd_choice` (what :func:`companion.experiments.runs.table2_configs` takes)."""
        return {**self.lasso_selection, "sgd": self.sgd_choice}

    @cached_property
    def table2_configs(self) -> dict[RunKey, TrainConfig]:
        """Table 2's rows, row key → config, with the settings chosen on validation."""
        return table2_configs(self.profile, self.choices)

    # ---------------------------------------------------------------- longer lengths
    def candidates(self, epochs: int) -> dict[str, list[TrainConfig]]:
        """Method (``lasso``/``sgd``) → its candidates at ``epochs``
        (:func:`companion.experiments.lengths.candidate_configs`), listed from the searches."""
        if epochs not in self._candidates:
            lasso_search = self.lasso_search  # read first: its missing runs are the ones reported
            sgd_search = self.sgd_search if self.profile.sgd_grid else None
            self._candidates[epochs] = lengths.candidate_configs(self.profile, epochs, lasso_search, sgd_search)
        return self._candidates[epochs]

    def chosen(self, epochs: int) -> dict[str, TrainConfig]:
        """Method → its candidate with the best validation accuracy at ``epochs``
        (:func:`companion.experiments.lengths.best_on_validation`); raises while a candidate is unfinished."""
        if epochs not in self._chosen:
            self._chosen[epochs] = {method: lengths.best_on_validation(configs, self.finished(configs))
                                    for method, configs in self.candidates(epochs).items()}
        return self._chosen[epochs]

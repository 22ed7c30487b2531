"""The runs each chapter of the book reads, by notebook name: what the Reproducibility plan
prices and what ``reproduce`` checks are in the results store (the experiments layer knows no
chapter)."""

from __future__ import annotations

from companion.config import TrainConfig
from companion.experiments import lengths, search
from companion.experiments.runs import (BEST_LASSO, S_FC_SGD, MissingRunsError, figure5_configs, permutation_configs,
                                        scaling_configs, search_configs, seed_configs, sgd_search_configs,
                                        table1_configs, table2_configs, unique)
from companion.experiments.study import Study


def chapter_configs(study: Study) -> dict[str, list[TrainConfig]]:
    """The runs each chapter reads (by notebook name). β-LASSO rows come from ``study``'s finished
    search, or from :func:`~companion.experiments.search.placeholder_choices` while it is unfinished
    (for planning only)."""
    p = study.profile
    try:
        choices = study.choices
    except MissingRunsError:
        choices = search.placeholder_choices(p)
    t2 = table2_configs(p, choices)
    table2 = search_configs(p) + sgd_search_configs(p) + list(t2.values()) + list(seed_configs(p, t2).values())
    fig5 = figure5_configs(p, choices["best"])
    return {
        "00_summary": unique(table1_configs(p) + table2 + scaling_configs(p) + fig5),
        "01_parameters": [], "02_table1": table1_configs(p), "03_scaling": scaling_configs(p),
        "04_table2": unique(table2), "05_resnet_kernels": fig5, "06_sparsity": list(t2.values()),
        "07_filters": list(t2.values()), "08_mdl": list(t2.values()), "09_locality": list(t2.values()),
        "10_permutation": list(permutation_configs(t2).values()), "11_sparse_execution": list(t2.values()),
        "13_training_length": unique([c for (key, _), c in seed_configs(p, t2).items() if key in (S_FC_SGD, BEST_LASSO)]
                                     + lengths.all_configs(study)),
    }

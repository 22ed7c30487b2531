"""The summary chapter's table: one row per claim (a)–(g) of :mod:`companion.book.claims` at a
profile (and (b), (c) again at each longer training length, issue 16), with the paper's evidence, ours, whether it holds here, and whether the networks it reads
fit their training set (:func:`fit_caveat`); finished runs only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from companion.book import length_tables, protocol
from companion.book.claims import (claim_first_layer_nonzeros, claim_fit_order, claim_kernels, claim_lasso_beats_sgd,
                                   claim_local_filters, claim_locality, claim_longer_training, fit_target,
                                   locality_references, locality_stats, null_comparison, paired_gain)
from companion.book.labels import DATASET_LABELS, reference_dataset, run_label
from companion.book.tables import fewest_params_to_fit, figure5, paper_table2, scaling, table1, table2, table2_layers
from companion.config import TrainConfig
from companion.experiments.lengths import complete_lengths
from companion.experiments.runs import (BEST_LASSO, S_FC_SGD, figure5_configs, lasso_key, scaling_configs,
                                        seed_configs, table1_configs)
from companion.experiments.study import Study
from companion.store.results import read_test_labels


def claims_configs(study: Study) -> list[TrainConfig]:
    """The runs behind :func:`claims`: Table 1, Table 2, Figures 2 / 6 and Figure 5 (β-LASSO
    settings from the finished search; never trains)."""
    p, t2 = study.profile, study.table2_configs
    return (table1_configs(p) + list(t2.values()) + list(seed_configs(p, t2).values())
            + scaling_configs(p) + figure5_configs(p, study.choices["best"]))


#: a network fits its training set when its final training accuracy (measured on the batches it
#: trains on) reaches this (%); the paper's networks train to ≈ 100 %
FIT_TRAIN_ACC = 95.0


def fit_caveat(train_accs) -> dict:
    """The training accuracies (%) of the runs a claim reads: their range and ``underfit`` (the
    lowest is below :data:`FIT_TRAIN_ACC`: a claim that does not hold is then no refutation)."""
    a = np.asarray(list(train_accs), dtype=float)
    if a.size == 0:
        raise ValueError("fit_caveat needs at least one training accuracy")
    return {"train_min": float(a.min()), "train_max": float(a.max()), "underfit": bool(a.min() < FIT_TRAIN_ACC)}


def claims(study: Study) -> pd.DataFrame:
    """The summary chapter's table: one row per claim (a)–(g), with the paper's evidence, ours
    (computed from ``study``'s runs), whether it holds here, and the training accuracy
    range of the runs it reads (:func:`fit_caveat`)."""
    p = study.profile
    t1 = table1(study)
    t2, runs = table2(study)
    layers = table2_layers(runs)
    per_seed = protocol.seed_frame(protocol.seed_runs(study))
    seeds = protocol.table2_seeds(per_seed)
    paper_t2 = {"sgd": paper_table2(S_FC_SGD, reference_dataset(p)), "lasso": paper_table2(lasso_key(50), reference_dataset(p))}
    stats = {row: locality_stats(runs[row].arrays()) for row in (S_FC_SGD, BEST_LASSO)}
    null = null_comparison(protocol.null_frame(runs[BEST_LASSO].arrays(), seed=p.seed))
    scale = scaling(study)
    target = fit_target(scale)
    fit = fewest_params_to_fit(scale, target)
    f5 = figure5(study)
    d = runs[S_FC_SGD].summary["dataset"]
    data = f"{p.name}: {DATASET_LABELS[p.dataset]}, {d['n_train']:,} training images"
    both = f"{data}, {p.epochs_short} / {p.epochs_long} ep."
    short, long = f"{data}, {p.epochs_short} ep.", f"{data}, {p.epochs_long} ep."
    k = len(p.seeds)
    seeded = f"{long}, {k} seed{'s' if k > 1 else ''}"
    s_fc = per_seed[per_seed["row"].isin([run_label(S_FC_SGD), run_label(BEST_LASSO)])]["train_acc"]
    table1_train = list(t1["short_train"]) + list(t1["long_train"])
    rows = [
        ("a", claim_locality(t1), both, table1_train),
        ("b", claim_lasso_beats_sgd(seeds, paper_t2), seeded, s_fc),
        ("c", claim_local_filters(stats[BEST_LASSO], stats[S_FC_SGD], locality_references(), null), long, s_fc),
        ("d", claim_longer_training(t1), both, table1_train),
        ("e", claim_first_layer_nonzeros(layers), long, [runs[BEST_LASSO].summary["final_train_acc"] * 100]),
        ("f", claim_fit_order(fit), short, [target]),
        ("g", claim_kernels(f5), short, f5["train_acc"]),
    ]
    rows += longer_claims(study, paper_t2, data)
    return pd.DataFrame([{"id": key, **row, "scale": scale, **fit_caveat(train)} for key, row, scale, train in rows])


def longer_claims(study: Study, paper_t2: dict, data: str) -> list[tuple]:
    """Claims (b) and (c) again at each of the profile's longer lengths (issue 16), by the same
    rules, on the runs chosen on validation at that length (:mod:`companion.experiments.lengths`);
    (b) with the paired standard error (:func:`~companion.book.claims.paired_gain`). Rows
    ``(id, claim, scale, train accuracies)``; a length whose chosen runs do not have every seed
    yet has no rows (no verdict before the runs)."""
    p = study.profile
    runs = length_tables.length_runs(study, partial=True)
    done = complete_lengths(p, runs)
    if not done:
        return []
    per_run = length_tables.length_frame(runs)
    rows = []
    for epochs in done:
        at = {(key, seed): run for (e, key, seed), run in runs.items() if e == epochs}
        seeds = protocol.table2_seeds(per_run[per_run["epochs"] == epochs])
        first = {key: run for (key, seed), run in at.items() if seed == p.seed}
        labels = read_test_labels(study.root, first[BEST_LASSO].summary["dataset"])
        paired = paired_gain(*(length_tables.correct_matrix([r for (k, _), r in at.items() if k == key], labels)
                               for key in (BEST_LASSO, S_FC_SGD)))
        stats = {key: locality_stats(first[key].arrays()) for key in (S_FC_SGD, BEST_LASSO)}
        null = null_comparison(protocol.null_frame(first[BEST_LASSO].arrays(), seed=p.seed))
        s_fc = per_run[(per_run["epochs"] == epochs)
                       & per_run["row"].isin([run_label(S_FC_SGD), run_label(BEST_LASSO)])]["train_acc"]
        k = len(p.seeds)
        scale = f"{data}, {epochs} ep."
        rows.append((f"b, {epochs} ep.", claim_lasso_beats_sgd(seeds, paper_t2, paired=paired),
                     f"{scale}, {k} seed{'s' if k > 1 else ''}", s_fc))
        rows.append((f"c, {epochs} ep.", claim_local_filters(stats[BEST_LASSO], stats[S_FC_SGD],
                                                             locality_references(), null), scale, s_fc))
    return rows

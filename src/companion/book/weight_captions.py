"""The sentences of chapters 06–11 (Figure 3's sparsity, the filter figures, Theorem 2, locality
over training, the permutation test, sparse execution), written from the numbers of
:mod:`companion.book.tables` / :mod:`companion.book.weight_tables` so that the text stays true at every
profile. Labels and the number formatter: :mod:`companion.book.captions`."""

from __future__ import annotations

import pandas as pd

from companion.book.claims import NOISE_SE
from companion.book.labels import run_label, sci
from companion.book.tables import lasso_runs, sparsity_table
from companion.book.weight_tables import (FILTER_MIN_NONZEROS, LOCAL_REFERENCE, MAPPED_FILTERS, MDL_DELTA,
                                    ORIGINAL_FILTERS, PERMUTED_FILTERS, STAND_IN, UNIFORM_REFERENCE)
from companion.checks import require_columns
from companion.experiments.profiles import Profile
from companion.experiments.runs import BEST_LASSO
from companion.store.artifacts import WEIGHTS


def permutation_caveat(p: Profile) -> str:
    """How the permuted runs were trained (chapter 10): each batch is augmented, then permuted
    (:func:`companion.train.step.training_inputs`)."""
    if p.augment == "none":
        return ("This profile trains without augmentation: every image, in training and in "
                "evaluation, has its pixels moved by the same fixed permutation.")
    return (f"Each training batch is first augmented ({p.augment}) on the original images and then "
            "has its pixels moved by the fixed permutation; validation and test images are permuted "
            "the same way. So a permuted run of S-FC sees exactly the training data of the original "
            "run, with its input coordinates relabelled.")


def relative_position(count: int, conv: int, local: int) -> str:
    """Where ``count`` lies with respect to S-CONV's (``conv``) and S-LOCAL's (``local``) weights."""
    if count < conv:
        return "below S-CONV's"
    if count < local:
        return "between S-CONV's and S-LOCAL's"
    return "at or above S-LOCAL's"


def describe_sparsity(runs: dict) -> str:
    """A sentence on Figure 3 for the β-LASSO run chosen on validation: its first layer's non-zeros
    against S-CONV's and S-LOCAL's weights, and the fraction of each other layer kept non-zero."""

    table = sparsity_table(runs)
    key = next(k for k, r in lasso_runs(runs).items() if r.run_id == runs[BEST_LASSO].run_id)
    label = run_label(key)
    first, *others = table.to_dict("records")
    nnz = first[label]
    where = relative_position(nnz, first["S-CONV weights"], first["S-LOCAL weights"])
    kept = ", ".join(f"{r['layer']} {100 * r[label] / r['S-FC weights']:.1f} %" for r in others)
    beta = runs[BEST_LASSO].config.beta
    return (f"The β-LASSO run chosen on validation (β = {beta:g}) ends with "
            f"{nnz:,} non-zero weights in S-FC's first layer ({first['layer']}, "
            f"{100 * nnz / first['S-FC weights']:.1f} % of its {first['S-FC weights']:,}), {where} "
            f"count: S-CONV's first layer has {first['S-CONV weights']:,} weights and S-LOCAL's "
            f"{first['S-LOCAL weights']:,} (the paper finds β-LASSO's count between the two, close to "
            f"S-CONV's). Its other layers keep {kept} of their weights non-zero (the paper: the second "
            "layer much sparser than dense, the last one nearly dense).")


def describe_filters(sets: dict[str, dict]) -> str:
    """What the filter figures show, per run: how many filters, drawn from how many eligible units,
    and the median number of non-zero weights of the shown filters."""
    import numpy as np


    parts = []
    for label, s in sets.items():
        median = float(np.median(s["nonzeros"])) if len(s["nonzeros"]) else float("nan")
        among = (f"the {s['eligible']:,} of its {s['units_total']:,} units with at least {FILTER_MIN_NONZEROS} "
                 "non-zeros" if s["eligible"] else
                 f"all its {s['units_total']:,} units (none has {FILTER_MIN_NONZEROS} non-zeros)")
        parts.append(f"{label}: {len(s['filters'])} filters drawn from {among} (median {median:,.0f} non-zero "
                     f"weights of the {s['grid_weights']:,} on the grid)")
    return "; ".join(parts) + "."


def describe_filter_rule(runs: dict, rows) -> str:
    """How the stored filters of the runs ``rows`` were chosen (the trainer's rule; a run none of
    whose units has :data:`FILTER_MIN_NONZEROS` non-zeros had its filters drawn among all units).
    Keys may be row keys or (row key, permuted) pairs, as :func:`companion.book.tables.permutation`
    returns them."""
    import numpy as np


    def name(key):
        if len(key) == 2:  # (RunKey, permuted)
            return f"{run_label(key[0])}, {'permuted' if key[1] else 'original'} pixels"
        return run_label(key)

    lacking = [name(k) for k in rows
               if not (np.asarray(runs[k].arrays()["unit_nonzeros"]) >= FILTER_MIN_NONZEROS).any()]
    text = f"chosen at random among the filters with at least {FILTER_MIN_NONZEROS} non-zero weights"
    if lacking:
        text += f" (among all filters for {'; '.join(lacking)}, which has none)"
    return text


def describe_mdl_terms(p: Profile, table: pd.DataFrame, delta: float = MDL_DELTA) -> str:
    """The constants of chapter 8's Theorem 2 table, read from it: n, b, m, δ, log(2n/δ)."""
    require_columns(table, ["n", "b", "m", "log_term"], "the Theorem 2 table")
    one = table.iloc[0]
    return (f"n = {int(one['n']):,} (every trainable parameter of S-FC at α = {p.s_alpha}), b = {int(one['b'])} "
            f"bits per parameter, m = {int(one['m']):,} training images, δ = {delta:g}, "
            f"log(2n/δ) = {one['log_term']:.1f} bits; logarithms in base 2")


def describe_lasso_runs(runs: dict) -> str:
    """β-LASSO's settings of each distinct β-LASSO run among ``runs`` (β, λ, λ_first)."""

    parts = [f"{run_label(key, with_model=False)}: λ = {sci(r.config.lam)}, λ_first = {sci(r.config.lam_first)}"
             for key, r in lasso_runs(runs).items()]
    return "β-LASSO settings: " + "; ".join(parts) + "."


def describe_mdl(table: pd.DataFrame, corr: dict) -> str:
    """Sentences on chapter 8's figure: the sign and strength of the rank correlation, the
    shortest and longest descriptions, and for how many runs the bound is vacuous."""
    require_columns(table, ["row", "description_bits", "test_acc", "gap", "bound"], "the Theorem 2 table")
    n, rho, pv = corr["n"], corr["rho"], corr["p_value"]
    if rho != rho:
        trend = f"the rank correlation is undefined here ({n} runs, or a constant column)"
    else:
        direction = ("shorter descriptions go with higher test accuracy" if rho < 0 else
                     "shorter descriptions go with lower test accuracy" if rho > 0 else "there is no monotone trend")
        strength = "" if pv <= 0.05 else ", but with so few runs this is not distinguishable from no relation (p > 0.05)"
        trend = f"Spearman's ρ = {rho:+.2f} over {n} runs (p = {pv:.2f}): {direction}{strength}"
    shortest, longest = table.loc[table["description_bits"].idxmin()], table.loc[table["description_bits"].idxmax()]
    vacuous = int((table["bound"] >= 1).sum())
    bound = (f"The bound is vacuous (a bound on the test error of at least 1) for {vacuous} of the "
             f"{len(table)} runs" + (f"; the smallest gap term is {table['gap'].min():.2f}." if vacuous else "."))
    return (f"{trend[0].upper()}{trend[1:]}. The shortest description is {shortest['row']}'s "
            f"({shortest['description_bits'] / 1e6:,.2f} Mbit, test accuracy {shortest['test_acc']:.2f} %), the "
            f"longest {longest['row']}'s ({longest['description_bits'] / 1e6:,.2f} Mbit, "
            f"{longest['test_acc']:.2f} %). {bound}")


def describe_locality(curves: pd.DataFrame, references: dict) -> str:
    """Per run, the median locality radius at the first and last tracked epoch and how far the last
    lies from uniform random weights towards S-LOCAL (0 % = uniform, 100 % = S-LOCAL)."""
    require_columns(curves, ["row", "epoch", "score", "q50"], "the locality curves")
    u, loc = references["uniform"]["radius"], references["s-local"]["radius"]
    parts = []
    for row, part in curves[curves["score"] == "radius"].groupby("row", sort=False):
        part = part.sort_values("epoch")
        first, last = part.iloc[0], part.iloc[-1]
        parts.append(f"{row}: median radius {first['q50']:.2f} px after epoch {first['epoch']}, "
                     f"{last['q50']:.2f} px after epoch {last['epoch']} ({way_to_local(last['q50'], u, loc)})")
    return (f"References: uniform random weights {u:.2f} px, S-LOCAL {loc:.2f} px. " + "; ".join(parts) + ".")


def describe_permutation(summary: pd.DataFrame) -> str:
    """A sentence on the permutation table: each row's change and whether it is beyond noise, and
    whether the pattern is the one Section 4.1 states."""

    require_columns(summary, ["row", "difference", "se", "changes", "paper_claim"], "the permutation summary")
    parts = [f"{r} {d:+.2f} pp ({'beyond' if c else 'within'} {NOISE_SE:g} s.e. = {NOISE_SE * s:.2f} pp)"
             for r, d, s, c in zip(summary["row"], summary["difference"], summary["se"], summary["changes"])]
    fc = summary["paper_claim"] == "invariant"
    fc_same = not summary.loc[fc, "changes"].any()
    others_worse = bool((summary.loc[~fc, "changes"] & (summary.loc[~fc, "difference"] < 0)).all())
    fc_text = ("the S-FC rows are unchanged within noise" if fc_same
               else "an S-FC row changes beyond noise")
    other_text = ("the other rows are worse beyond noise" if others_worse
                  else "not every other row is worse beyond noise")
    verdict = ("so the pattern Section 4.1 states (S-FC unchanged, S-CONV and S-LOCAL worse) holds here"
               if fc_same and others_worse else
               "so the pattern Section 4.1 states (S-FC unchanged, S-CONV and S-LOCAL worse) does not hold here")
    return (f"Permuted minus original test accuracy: {'; '.join(parts)}. Here {fc_text} and {other_text}, "
            f"{verdict}.")


def way_to_local(radius: float, uniform: float, local: float) -> str:
    """``radius`` as the share of the way from the uniform reference (0 %) to S-LOCAL's (100 %)."""
    if radius != radius:
        return "no non-zero filter"
    return f"{round(100 * (uniform - radius) / (uniform - local)):d} % of the way from uniform random weights to S-LOCAL"


def describe_permuted_filters(loc: pd.DataFrame) -> str:
    """A sentence comparing the median radius of the permuted run's filters mapped back to the image
    with the unpermuted run's, on the permuted grid, and the references."""

    by = loc.set_index("filters")["radius"]
    u, s = by[UNIFORM_REFERENCE], by[LOCAL_REFERENCE]
    orig, back, seen = by[ORIGINAL_FILTERS], by[MAPPED_FILTERS], by[PERMUTED_FILTERS]
    return (f"Median locality radius of the stored filters: trained on the original images {orig:.2f} px "
            f"({way_to_local(orig, u, s)}); trained on permuted images and mapped back to the image "
            f"{back:.2f} px ({way_to_local(back, u, s)}); the same filters on the permuted grid the "
            f"network saw {seen:.2f} px ({way_to_local(seen, u, s)}).")


#: the issue's goal for the sparse export's speed on the CPU, at the paper's densities
SPARSE_SPEED_GOAL = 5.0


def stand_in_note(dense_bytes: float) -> str:
    """Chapter 11's words for a run timed on an untrained network of its shape."""
    return (f"weights not committed (dense, {dense_bytes / 2**20:.1f} MiB): timed on an untrained network of the "
            "same shape; accuracy from the run's summary")


def describe_sparse(summary: pd.DataFrame, speeds: pd.DataFrame, goal: float = SPARSE_SPEED_GOAL) -> str:
    """Sentences on chapter 11's tables: agreement of the predictions (runs with trained weights
    only), and speed and memory of the sparsest run against the goal, per thread count."""
    require_columns(summary, ["row", "weights", "density", "images", "same_prediction", "max_logit_diff",
                              "memory_ratio"], "the sparse-execution summary")
    require_columns(speeds, ["row", "threads", "speedup"], "the sparse-execution speeds")
    trained = summary[summary["weights"] != STAND_IN]
    if trained.empty:
        first = ("No run's trained weights are available here, so the export's predictions are compared for "
                 "none of them.")
    else:
        n = int(trained["images"].iloc[0])
        which = "every run" if len(trained) == len(summary) else f"each of the {len(trained)} runs with trained weights"
        agree = bool((trained["same_prediction"] == trained["images"]).all())
        first = (f"On all {n:,} generated inputs the export predicts the same class as the dense network for {which} "
                 if agree else "The export does not predict the same class as the dense network on every input "
                 "(" + "; ".join(f"{r}: {int(s):,} of {int(i):,}" for r, s, i in
                                zip(trained["row"], trained["same_prediction"], trained["images"])) + ") ")
        first += (f"(largest logit difference {trained['max_logit_diff'].max():.1e}, float rounding of the folded "
                  "batch-norm).")
    sparsest = summary.loc[summary["density"].idxmin()]
    own = speeds[speeds["row"] == sparsest["row"]]
    parts = [f"{s:.1f}× ({t} thread{'s' if t > 1 else ''})" for t, s in zip(own["threads"], own["speedup"])]
    met = [t for t, s in zip(own["threads"], own["speedup"]) if s >= goal]
    verdict = (f"which meets the goal of {goal:g}× with {' and '.join(map(str, met))} thread(s)"
               if met else f"which misses the goal of {goal:g}×")
    stand_in = ("; its weights are not committed, so an untrained network of its shape was timed"
                if sparsest["weights"] == STAND_IN else "")
    return (f"{first} The sparsest network, {sparsest['row']} ({sparsest['density'] * 100:.1f} % of its weights "
            f"non-zero{stand_in}), runs at {' and '.join(parts)} the dense network's images/s, {verdict}, and takes "
            f"{sparsest['memory_ratio']:.1f}× less memory.")


def describe_sparse_weights(summary: pd.DataFrame) -> str:
    """Where chapter 11's networks came from: checkpoints, committed compact weights, or (dense
    runs whose weights are not committed) an untrained network of the same shape."""
    require_columns(summary, ["row", "weights", "dense_bytes"], "the sparse-execution summary")
    by = {w: list(part["row"]) for w, part in summary.groupby("weights", sort=False)}
    parts = []
    if "checkpoint" in by:
        parts.append(f"from the run's checkpoint for {'; '.join(by['checkpoint'])}")
    if WEIGHTS in by:
        parts.append(f"from the committed compact weights ({WEIGHTS}: positions and values of the non-zero "
                     f"weights, exact) for {'; '.join(by[WEIGHTS])}")
    text = (f"Trained weights are read {' and '.join(parts)}." if parts else
            f"No run's trained weights are stored here (no checkpoint, no {WEIGHTS}).")
    stand_ins = summary[summary["weights"] == STAND_IN]
    if not stand_ins.empty:
        names = "; ".join(f"{r} ({b / 2**20:.1f} MiB)" for r, b in zip(stand_ins["row"], stand_ins["dense_bytes"]))
        text += (f" The weights of {names} are not committed (dense): each is timed on an untrained network of "
                 "the same shape, its accuracy is the one in its run's summary, and it has no agreement numbers. "
                 "Their exports are dense, and a dense matrix product takes the same time whatever its values.")
    return text


def describe_sparse_inputs(summary: pd.DataFrame) -> str:
    """What chapter 11 ran the networks on: generated inputs, not a dataset (the summary's
    ``attrs["inputs"]``, set by :func:`companion.book.weight_tables.sparse_execution`)."""
    if "inputs" not in summary.attrs:
        raise ValueError("the sparse-execution summary lacks attrs['inputs'] (made by sparse_execution)")
    i = summary.attrs["inputs"]
    shape = "×".join(map(str, i["shape"]))
    return (f"No dataset is read: the networks run on {max(i['images'], i['batch']):,} inputs drawn from a "
            f"standard normal (seed {i['seed']}) of shape {shape} in the network's normalised input space (the "
            f"agreement check uses the first {i['images']:,}, the timing the first {i['batch']:,}); test accuracies "
            "are those each run's summary recorded at the end of training.")


def describe_machine(speeds: pd.DataFrame) -> str:
    """The machine chapter 11 timed on (this process's CPU, thread counts, batch)."""
    import os
    import platform

    import torch

    require_columns(speeds, ["threads", "batch"], "the sparse-execution speeds")
    threads = " and ".join(str(t) for t in dict.fromkeys(speeds["threads"]))
    cpu = platform.processor() or platform.machine()
    return (f"Timed with torch {torch.__version__} on a {os.cpu_count()}-core {cpu} CPU, with {threads} "
            f"thread(s), batch {int(speeds['batch'].iloc[0])}.")

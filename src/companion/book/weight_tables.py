"""The frames behind chapters 07–11 that read the runs' stored arrays and per-epoch metrics:
first-layer filters (Figures 4, 7–9), Theorem 2 across Table 2's runs, locality over training,
the permuted run's filters and the sparse export (Section 5). Runs keyed as :func:`companion.
tables.table2` returns them (:class:`~companion.experiments.runs.RunKey`; permutation: (key, permuted))."""

from __future__ import annotations

import pandas as pd

from companion.book.labels import run_label
from companion.book.tables import distinct_runs, layer_name, table2_runs, theorem2_table
from companion.checks import check_int, require_columns
from companion.data.files import IMAGE_SHAPE
from companion.data.permutation import unpermute_filters
from companion.experiments import lengths
from companion.experiments.profiles import Profile
from companion.experiments.runs import BEST_LASSO, S_FC_SGD, S_LOCAL_SGD, MissingRunsError
from companion.experiments.study import Study
from companion.nn import sparse
from companion.nn.analysis import FILTER_MIN_NONZEROS, QUANTILES, locality, rank_correlation, reference_locality
from companion.nn.sparse import AUTO_MAX_DENSITY
from companion.store import artifacts

#: Figures 4, 7–9: whose first-layer filters are drawn (the paper's Figure 4: S-FC with SGD and
#: with β-LASSO, S-LOCAL with SGD)
FILTER_ROWS = (S_FC_SGD, BEST_LASSO, S_LOCAL_SGD)
#: Chapter 9: the runs whose first-layer locality is followed over training
LOCALITY_ROWS = (S_FC_SGD, BEST_LASSO)
#: Chapter 9's histogram: the locality of every unit after training, with S-LOCAL's for reference
FINAL_LOCALITY_ROWS = LOCALITY_ROWS + (S_LOCAL_SGD,)


def filter_sets(runs: dict, rows=FILTER_ROWS) -> dict[str, dict]:
    """The stored first-layer filters of the Table 2 runs ``rows`` (Figures 4, 7–9), label →
    ``filters`` (float32, shown units × C × H × W on the input grid), ``units`` (their indices),
    ``nonzeros`` (of each shown filter), ``grid_weights`` (C·H·W), ``eligible`` (units with at
    least :data:`FILTER_MIN_NONZEROS` non-zeros) and ``units_total``."""
    import numpy as np

    out = {}
    for row in rows:
        if row not in runs:
            raise ValueError(f"runs lack the Table 2 row {run_label(row)!r}")
        a = runs[row].arrays()
        filters = np.asarray(a["filters"], dtype=np.float32)
        unit_nnz = np.asarray(a["unit_nonzeros"])
        out[run_label(row)] = {"filters": filters, "units": np.asarray(a["filter_units"]),
                    "nonzeros": np.count_nonzero(filters.reshape(len(filters), -1), axis=1),
                    "grid_weights": int(np.prod(filters.shape[1:])),
                    "eligible": int((unit_nnz >= FILTER_MIN_NONZEROS).sum()), "units_total": int(unit_nnz.size)}
    return out


#: Theorem 2's confidence parameter in chapter 8 (the bound holds with probability 1 − δ)
MDL_DELTA = 0.05


def mdl_table(p: Profile, runs: dict, *, delta: float = MDL_DELTA) -> pd.DataFrame:
    """Theorem 2's terms (:func:`theorem2_table`) for the distinct runs of Table 2
    (:func:`distinct_runs`), with ``b`` (bits per parameter), ``m`` (training images) and
    ``vacuous``: the bound on the test error is ≥ 1."""
    distinct = distinct_runs(runs)
    table = theorem2_table(p, distinct, delta=delta)
    table["b"] = table["kb"] // table["k"]
    table["m"] = [r.summary["dataset"]["n_train"] for r in distinct.values()]
    table["vacuous"] = table["bound"] >= 1
    return table


def mdl_correlation(table: pd.DataFrame) -> dict[str, float]:
    """Spearman's rank correlation of description length and test accuracy across the rows of
    :func:`mdl_table` (:func:`companion.nn.analysis.rank_correlation`)."""

    require_columns(table, ["description_bits", "test_acc"], "the Theorem 2 table")
    return rank_correlation(table["description_bits"], table["test_acc"])


def locality_curves(runs: dict, rows=LOCALITY_ROWS) -> pd.DataFrame:
    """The first layer's locality over training: per run of ``rows``, tracked epoch and score
    (``radius``, ``window_mass``), the quantiles :data:`companion.nn.analysis.QUANTILES` over its
    non-empty filters, as columns ``q10, q25, q50, q75, q90``."""

    names = [f"q{round(100 * q)}" for q in QUANTILES]
    out = []
    for row in rows:
        if row not in runs:
            raise ValueError(f"runs lack the Table 2 row {run_label(row)!r}")
        m = runs[row].metrics
        for score in ("radius", "window_mass"):
            column = f"locality.{score}"
            if column not in m.columns:
                raise ValueError(f"run {runs[row].run_id} has no per-epoch {column!r}")
            for epoch, values in m[["epoch", column]].itertuples(index=False):
                if not isinstance(values, list) or len(values) != len(QUANTILES):
                    continue  # an epoch where locality was not tracked
                out.append({"row": run_label(row), "epoch": int(epoch), "score": score, **dict(zip(names, values))})
    return pd.DataFrame(out, columns=["row", "epoch", "score", *names])


def final_locality(runs: dict, rows=FINAL_LOCALITY_ROWS) -> pd.DataFrame:
    """Every first-layer unit's locality after training (the runs' arrays): ``row, unit, nonzeros,
    radius, window_mass`` (NaN scores for units with no non-zero weight)."""
    import numpy as np

    frames = []
    for row in rows:
        a = runs[row].arrays()
        n = len(a["unit_nonzeros"])
        frames.append(pd.DataFrame({"row": run_label(row), "unit": np.arange(n), "nonzeros": a["unit_nonzeros"],
                                    "radius": a["locality_radius"], "window_mass": a["locality_window_mass"]}))
    return pd.concat(frames, ignore_index=True)


#: chapter 10's three sets of filters of the β-LASSO run (keys of :func:`permuted_filters`)
ORIGINAL_FILTERS = "trained on original images"
PERMUTED_FILTERS = "trained on permuted images, on the grid the network saw"
MAPPED_FILTERS = "trained on permuted images, mapped back to the image"
UNIFORM_REFERENCE = "reference: uniform random weights"
LOCAL_REFERENCE = "reference: one S-LOCAL field"


def permuted_filters(runs: dict, row=BEST_LASSO) -> dict[str, "object"]:
    """Chapter 10's stored filters of ``row`` (:func:`permutation`'s runs): trained on the original
    images (:data:`ORIGINAL_FILTERS`), trained on permuted images as the network saw them
    (:data:`PERMUTED_FILTERS`) and the same filters on the original image's grid
    (:data:`MAPPED_FILTERS`; :func:`companion.data.permutation.unpermute_filters` with the seed recorded in
    the run's config). float32 arrays, units × C × H × W."""
    import numpy as np


    plain, permuted = runs[(row, False)], runs[(row, True)]
    seed = permuted.config.permute_pixels
    if seed is None:
        raise ValueError(f"run {permuted.run_id} was not trained on permuted pixels")
    trained = np.asarray(permuted.arrays()["filters"], dtype=np.float32)
    return {ORIGINAL_FILTERS: np.asarray(plain.arrays()["filters"], dtype=np.float32),
            PERMUTED_FILTERS: trained, MAPPED_FILTERS: unpermute_filters(trained, seed).numpy()}


def filters_locality(sets: dict) -> pd.DataFrame:
    """Median :func:`companion.nn.analysis.locality` of each set of filters (label → units × C × H × W),
    with the references of :func:`companion.nn.analysis.reference_locality` as the last two rows."""
    import torch


    rows = []
    for label, f in sets.items():
        scores = locality(torch.as_tensor(f, dtype=torch.float32))
        rows.append({"filters": label, "count": int(len(f)),
                     **{k: float(v.nanmedian()) for k, v in scores.items()}})
    ref = reference_locality()
    rows += [{"filters": UNIFORM_REFERENCE, "count": float("nan"), **ref["uniform"]},
             {"filters": LOCAL_REFERENCE, "count": float("nan"), **ref["s-local"]}]
    return pd.DataFrame(rows, columns=["filters", "count", "radius", "window_mass"])


def sparse_threads() -> tuple[int, ...]:
    """CPU thread counts chapter 11 measures: one thread, and every thread torch uses."""
    import torch

    return tuple(dict.fromkeys((1, torch.get_num_threads())))


def sparse_runs(study: Study) -> dict:
    """The distinct S-FC runs of Table 2 (SGD and each β-LASSO setting), row key → Run."""
    t2_runs = table2_runs(study)
    return {key: run for key, run in distinct_runs(t2_runs).items() if run.config.model == "s-fc"}


def longer_sparse_runs(study: Study) -> dict:
    """The finished β-LASSO runs of the longer lengths (the chosen setting, every seed, and the
    trend lengths), (epochs, row key, seed) → Run, as far as their choice is made: the networks
    of the training-length chapter a reader may want to load."""
    out = {}
    for epochs in study.profile.longer_epochs:
        try:
            chosen = study.chosen(epochs)
        except MissingRunsError:  # a candidate is unfinished: no choice, no seeds yet
            continue
        for key, config in lengths.seeded_runs(study.profile, epochs, chosen).items():
            if key[1] == BEST_LASSO and (run := study.find(config)) is not None:
                out[key] = run
    return out


def summary_density(run) -> pd.DataFrame:
    """Each weight layer's non-zeros as ``run``'s summary recorded them at the end of training
    (the columns of :func:`companion.nn.sparse.density_report`)."""
    s = run.summary
    df = pd.DataFrame([(name, n, s["nonzeros"][name]) for name, n in s["params"].items()],
                      columns=["layer", "params", "nonzeros"])
    df["density"] = df["nonzeros"] / df["params"]
    return df


def weights_needed(run) -> bool:
    """Whether chapter 11 needs ``run``'s trained weights: some layer of its export is sparse
    (density at most :data:`companion.nn.sparse.AUTO_MAX_DENSITY` by its summary). Otherwise the
    export is a dense network, whose speed does not depend on its values, and an untrained
    network of the same shape stands in (:func:`companion.store.artifacts.untrained_network`)."""

    return bool((summary_density(run)["density"] <= AUTO_MAX_DENSITY).any())


#: chapter 11's inputs: ``images`` draws from a standard normal in the network's normalised
#: input space (no dataset is read), with this seed
PROBE_SEED = 0
#: untrained stand-ins are initialised from this seed
STAND_IN_SEED = 0
#: the ``weights`` entry of a run timed on an untrained network of its shape
STAND_IN = "untrained"


def probe_inputs(n: int, seed: int = PROBE_SEED):
    """``n`` inputs of shape C × H × W (:data:`companion.data.files.IMAGE_SHAPE`) drawn from a standard
    normal with ``seed``: the scale of normalised images (zero mean, unit variance per channel)
    without reading any dataset."""
    import torch


    h, w, c = IMAGE_SHAPE
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def sparse_execution(p: Profile, runs: dict, *, threads=None, batch: int = 512, images: int = 1000,
                     repeats: int = 5, seed: int = PROBE_SEED) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Section 5's future work, measured: each distinct S-FC run of Table 2 (SGD and β-LASSO),
    exported by :func:`companion.nn.sparse.to_sparse` (``layout="auto"``) and run on the CPU.

    Weights come from the run's checkpoint or its committed :data:`companion.store.artifacts.WEIGHTS`
    (:func:`companion.store.artifacts.trained_network`). A run with neither whose export is dense
    (not :func:`weights_needed`) is timed on an untrained network of its shape
    (``weights`` = :data:`STAND_IN`; no agreement numbers); one whose export is sparse is a
    ``FileNotFoundError``. No dataset is read: agreement uses ``images`` and timing the first
    ``batch`` of :func:`probe_inputs`; test accuracy is the run's summary's.

    Returns three tables: per run (weights' source, test accuracy, density, how many inputs the
    export classifies as the dense network does and the largest logit difference, memory), per
    run and layer (the export's layout and density), and per run and thread count (images/s of
    both on one batch, measured side by side, and their ratio). ``runs``: :func:`sparse_runs`
    (at profile ``p``)."""

    check_int("batch", batch, minimum=1)  # inputs per timed forward pass
    check_int("images", images, minimum=1)  # inputs of the agreement check
    threads = tuple(threads or sparse_threads())
    x = probe_inputs(max(batch, images), seed)
    rows, layers, speeds = [], [], []
    for key, run in runs.items():
        label = run_label(key)
        source = artifacts.weights_source(run)
        if source is None and weights_needed(run):
            raise FileNotFoundError(
                f"run {run.run_id} ({label}) has neither a checkpoint nor stored weights "
                f"({artifacts.WEIGHTS}), and its export is sparse, so no untrained network can stand in; "
                f"store them where its checkpoint is with `companion weights --profile {p.name}`")
        trained = source is not None
        model = artifacts.trained_network(run) if trained else artifacts.untrained_network(run, seed=STAND_IN_SEED)
        exported = sparse.to_sparse(model)
        density = sparse.density_report(model) if trained else summary_density(run)
        same = (sparse.agreement(model, exported, x[:images]) if trained else
                {"images": float("nan"), "same_prediction": float("nan"), "max_logit_diff": float("nan")})
        rows.append({"row": label, "method": run_label(key, with_model=False), "weights": source or STAND_IN,
                     "test_acc": run.summary["final_test_acc"] * 100,
                     "density": density["nonzeros"].sum() / density["params"].sum(),
                     **same, "dense_bytes": sparse.memory_bytes(model),
                     "sparse_bytes": sparse.memory_bytes(exported)})
        for (_, d), layer in zip(density.iterrows(), exported.layers()):
            layers.append({"row": label, "layer": layer_name(d["layer"]), "weights": d["params"],
                           "nonzeros": d["nonzeros"], "density": d["density"], "layout": layer.layout})
        for n in threads:
            speeds.append({"row": label, "weights": rows[-1]["weights"], "density": rows[-1]["density"],
                           **sparse.inference_speed(model, exported, x[:batch], threads=n, repeats=repeats)})
    summary = pd.DataFrame(rows)
    summary["memory_ratio"] = summary["dense_bytes"] / summary["sparse_bytes"]
    summary.attrs["inputs"] = {"images": images, "batch": batch, "seed": seed, "shape": tuple(x.shape[1:])}
    return summary, pd.DataFrame(layers), pd.DataFrame(speeds)

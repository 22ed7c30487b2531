"""The paper's claims, each decided by a rule stated in its docstring (Sections 2.2, 3, 4.1,
4.2): plain functions of the frames of :mod:`companion.book.tables` (unit-tested on constructed
frames), and the sentences that state their outcome; :mod:`companion.book.summary` reads them at a
profile."""

from __future__ import annotations

import pandas as pd

from companion.book.labels import model_label, number, run_label
from companion.checks import require_columns
from companion.experiments.runs import BEST_LASSO, S_CONV_SGD, S_FC_SGD, S_LOCAL_SGD, TABLE1_MODELS
from companion.nn.analysis import reference_locality

#: Section 2.2, observation (1): "much higher" is read as more than this factor
LOCALITY_FACTOR = 2.0
#: a difference of test accuracies counts as a change when it exceeds this many standard errors
NOISE_SE = 2.0


def _accuracies(t1: pd.DataFrame, column: str) -> dict[str, float]:
    require_columns(t1, ["model", column], "the Table 1 frame")
    acc = dict(zip(t1["model"], t1[column].astype(float)))
    if missing := [m for m in TABLE1_MODELS if m not in acc]:
        raise ValueError(f"the Table 1 frame lacks rows for {missing}")
    return acc


def table1_gaps(acc: dict[str, float], *, factor: float = LOCALITY_FACTOR) -> list[dict]:
    """Section 2.2's observations (1), (3), (4) on one column of Table 1 (model → accuracy %).

    (1) for D and S: LOCAL − FC and CONV − LOCAL; holds when LOCAL − FC > 0 and exceeds
    ``factor`` × |CONV − LOCAL| (the paper's "much higher"). (3) S-FC − D-FC > 0. (4) S-FC − 3-FC > 0.
    """
    rows = []
    for depth in ("d", "s"):
        local_fc = acc[f"{depth}-local"] - acc[f"{depth}-fc"]
        conv_local = acc[f"{depth}-conv"] - acc[f"{depth}-local"]
        rows.append({"observation": f"(1) locality, {depth.upper()}: LOCAL − FC ≫ |CONV − LOCAL|",
                     "group": depth.upper(), "a": local_fc, "b": conv_local,
                     "holds": bool(local_fc > 0 and local_fc > factor * abs(conv_local))})
    for other, number in (("d-fc", 3), ("3-fc", 4)):
        diff = acc["s-fc"] - acc[other]
        rows.append({"observation": f"({number}) S-FC > {other.upper()}", "group": "S", "a": diff, "b": float("nan"),
                     "holds": bool(diff > 0)})
    return rows


def training_gains(short: dict[str, float], long: dict[str, float]) -> dict:
    """Section 2.2, observation (2): mean gain (long − short, pp) of S-CONV/LOCAL/FC and of
    D-CONV/LOCAL/FC; holds when the shallow networks gain more."""
    gains = {depth: sum(long[f"{depth}-{k}"] - short[f"{depth}-{k}"] for k in ("conv", "local", "fc")) / 3
             for depth in ("d", "s")}
    return {"observation": "(2) shallow (S) networks gain more from longer training than deep (D) ones (mean gain)",
            "group": "S vs D", "a": gains["s"], "b": gains["d"], "holds": bool(gains["s"] > gains["d"])}


def table1_observations(t1: pd.DataFrame, *, factor: float = LOCALITY_FACTOR) -> pd.DataFrame:
    """Section 2.2's observations checked on our Table 1 and on the paper's, by the same rules
    (:func:`table1_gaps`, :func:`training_gains`). ``a``/``b``: the two numbers compared (pp)."""
    columns = {"ours": ("short_test", "long_test"), "paper": ("paper_400", "paper_4000")}
    out = {}
    for who, (short_col, long_col) in columns.items():
        short, long = _accuracies(t1, short_col), _accuracies(t1, long_col)
        rows = []
        for training, acc in (("short", short), ("long", long)):
            rows += [{**r, "training": training} for r in table1_gaps(acc, factor=factor)]
        rows.append({**training_gains(short, long), "training": "short → long"})
        out[who] = pd.DataFrame(rows)
    ours, theirs = out["ours"], out["paper"]
    return pd.DataFrame({
        "observation": ours["observation"], "group": ours["group"], "training": ours["training"],
        "ours_a": ours["a"], "ours_b": ours["b"], "holds_here": ours["holds"],
        "paper_a": theirs["a"], "paper_b": theirs["b"], "holds_in_paper": theirs["holds"],
    })


FIT_TARGET_RULE = ("the highest training accuracy that every family reaches at some α of the grid, i.e. "
                   "the smallest over the families of each family's best training accuracy")


def fit_target(scaling_df: pd.DataFrame) -> float:
    """Figure 2 (right)'s training accuracy to reach, chosen from the data: :data:`FIT_TARGET_RULE`."""
    require_columns(scaling_df, ["model", "train_acc"], "the scaling frame")
    if scaling_df.empty:
        raise ValueError("the scaling frame has no rows")
    return float(scaling_df.groupby("model")["train_acc"].max().min())


def orders_agree(fit: pd.DataFrame) -> bool:
    """Section 3's reading of Figure 2 (right): a family that fits the training set with fewer
    parameters has higher best test accuracy. True when every pair of families is concordant
    (strictly fewer parameters ⇒ strictly higher test accuracy; ties in parameters are not
    counted, ties in accuracy are discordant); False if a family never reaches the target."""
    require_columns(fit, ["model", "min_params", "best_test_acc"], "the fewest-params frame")
    if fit["min_params"].isna().any():
        return False
    rows = list(zip(fit["min_params"], fit["best_test_acc"]))
    return all(ta > tb for pa, ta in rows for pb, tb in rows if pa < pb)


def lasso_gains(f5: pd.DataFrame) -> pd.DataFrame:
    """Per kernel size: β-LASSO's test accuracy minus SGD's (pp)."""
    require_columns(f5, ["kernel_size", "optimizer", "test_acc"], "the Figure 5 frame")
    wide = f5.pivot_table(index="kernel_size", columns="optimizer", values="test_acc")
    if not {"sgd", "beta-lasso"} <= set(wide.columns):
        raise ValueError("the Figure 5 frame needs both optimizers 'sgd' and 'beta-lasso'")
    return pd.DataFrame({"kernel_size": wide.index, "gain": (wide["beta-lasso"] - wide["sgd"]).to_numpy()})


def accuracy_se(acc_pct: float, n: int) -> float:
    """Standard error (pp) of a test accuracy ``acc_pct`` (%) measured on ``n`` images."""
    p_ = acc_pct / 100
    return 100 * (p_ * (1 - p_) / n) ** 0.5


def claim_locality(t1: pd.DataFrame, *, factor: float = LOCALITY_FACTOR) -> dict:
    """(a) Section 2.2 (1): for D and S, after short and long training, LOCAL − FC > factor ×
    |CONV − LOCAL| (:func:`table1_gaps`)."""
    obs = table1_observations(t1, factor=factor)
    obs = obs[obs["observation"].str.startswith("(1)")]

    def text(a, b, trainings):
        return "; ".join(f"{g} {trainings[t]}: {x:.2f} vs {abs(y):.2f}"
                         for g, t, x, y in zip(obs["group"], obs["training"], a, b))

    return {"claim": "Local connectivity matters most: LOCAL beats FC by much more than CONV beats "
                     f"LOCAL, deep and shallow (Section 2.2 (1); 'much' read as > {factor:g}×)",
            "paper": "LOCAL − FC vs |CONV − LOCAL| (pp): "
                     + text(obs["paper_a"], obs["paper_b"], {"short": "400 ep.", "long": "4000 ep."}),
            "ours": "LOCAL − FC vs |CONV − LOCAL| (pp): "
                    + text(obs["ours_a"], obs["ours_b"], {"short": "short", "long": "long"}),
            "holds": bool(obs["holds_here"].all())}


def claim_longer_training(t1: pd.DataFrame) -> dict:
    """(d) Section 2.2 (2): shallow networks gain more from longer training than deep ones."""
    ours = training_gains(_accuracies(t1, "short_test"), _accuracies(t1, "long_test"))
    theirs = training_gains(_accuracies(t1, "paper_400"), _accuracies(t1, "paper_4000"))
    return {"claim": "Shallow networks gain more from longer training than deep ones (Section 2.2 (2))",
            "paper": f"mean gain 400 → 4000 ep.: S {theirs['a']:+.2f} pp, D {theirs['b']:+.2f} pp",
            "ours": f"mean gain short → long: S {ours['a']:+.2f} pp, D {ours['b']:+.2f} pp",
            "holds": ours["holds"]}


def seed_gain(seeds: pd.DataFrame, row: str, baseline: str) -> dict:
    """Mean test-accuracy gain of ``row`` over ``baseline`` (pp) in :func:`companion.book.protocol.
    table2_seeds`'s frame, and its standard error: for each of the two rows, test sampling
    p(1 − p)/n_test plus the seed spread sd²/k (k seeds; no spread term with one seed)."""
    require_columns(seeds, ["row", "n_seeds", "test_acc_mean", "test_acc_sd", "n_test"], "the seeds frame")
    by = seeds.set_index("row")
    for r in (row, baseline):
        if r not in by.index:
            raise ValueError(f"the seeds frame has no row {r!r}; it has {list(by.index)}")
    var = 0.0
    for r in (row, baseline):
        acc, sd, k = by.loc[r, "test_acc_mean"], by.loc[r, "test_acc_sd"], by.loc[r, "n_seeds"]
        var += accuracy_se(acc, int(by.loc[r, "n_test"])) ** 2 + (sd ** 2 / k if k > 1 else 0.0)
    return {"gain": float(by.loc[row, "test_acc_mean"] - by.loc[baseline, "test_acc_mean"]), "se": var ** 0.5,
            "seeds": {r: int(by.loc[r, "n_seeds"]) for r in (row, baseline)}}


def paired_gain(correct_row, correct_baseline) -> dict:
    """Mean test-accuracy gain (pp) of a row over its baseline from their runs' per-image
    correctness (runs × images, the same test images; :func:`companion.length_tables.correct_matrix`),
    with the paired standard error (issue 16; the rule written before the 480-epoch runs finished):
    both rows are scored on the same images, so the test-sampling term is that of the per-image
    difference d = (mean over the row's seeds of correct) − (the same for the baseline),
    Var(d)/n, instead of p(1 − p)/n for each row; the seed spread sd²/k of each row is added as in
    :func:`seed_gain`. ``se_unpaired``: :func:`seed_gain`'s s.e. from the same runs."""
    import numpy as np

    a, b = np.asarray(correct_row, dtype=float), np.asarray(correct_baseline, dtype=float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"paired_gain needs runs × images matrices over the same images; got {a.shape} and {b.shape}")
    n = a.shape[1]
    acc_a, acc_b = 100 * a.mean(1), 100 * b.mean(1)
    spread = sum(acc.var(ddof=1) / len(acc) if len(acc) > 1 else 0.0 for acc in (acc_a, acc_b))
    d = 100 * (a.mean(0) - b.mean(0))
    unpaired = sum(accuracy_se(acc.mean(), n) ** 2 for acc in (acc_a, acc_b))
    return {"gain": float(acc_a.mean() - acc_b.mean()), "se": float((d.var(ddof=1) / n + spread) ** 0.5),
            "se_unpaired": float((unpaired + spread) ** 0.5), "seeds": (len(acc_a), len(acc_b))}


def _mean_sd(by, row: str) -> str:
    sd = by.loc[row, "test_acc_sd"]
    return f"{by.loc[row, 'test_acc_mean']:.2f}" + (f" ± {sd:.2f}" if sd == sd else "")


def claim_lasso_beats_sgd(seeds: pd.DataFrame, paper_t2: dict, *, noise: float = NOISE_SE,
                          paired: dict | None = None) -> dict:
    """(b) Section 4.1, Table 2: S-FC trained with β-LASSO (the setting chosen on validation) has
    higher test accuracy than S-FC trained with SGD (its setting chosen on validation too). Holds
    when the mean gain over seeds exceeds ``noise`` standard errors: the paired s.e. when the runs
    stored their test predictions (``paired``: :func:`paired_gain`; the unpaired one shown beside
    it), else :func:`seed_gain`'s. ``paper_t2``: the paper's S-FC SGD and β-LASSO (β=50)
    accuracies, ``{"sgd", "lasso"}``."""
    sgd_row, best_row = run_label(S_FC_SGD), run_label(BEST_LASSO)
    g = seed_gain(seeds, best_row, sgd_row)
    by = seeds.set_index("row")
    k = g["seeds"][best_row]
    if paired is None:
        se_text = f"1 s.e. {g['se']:.2f} pp (test sampling and seed spread)"
        se = g["se"]
    else:
        se_text = (f"1 s.e. {paired['se']:.2f} pp paired image by image ({paired['se_unpaired']:.2f} pp unpaired; "
                   "both with the seed spread)")
        se = paired["se"]
    return {"claim": "β-LASSO trains S-FC to a higher test accuracy than SGD (Section 4.1, Table 2)",
            "paper": f"S-FC SGD {number(paper_t2.get('sgd'))} %, β-LASSO (β=50) {number(paper_t2.get('lasso'))} %",
            "ours": f"S-FC test accuracy, mean ± sd over {k} seed{'s' if k > 1 else ''}: SGD {_mean_sd(by, sgd_row)} %, "
                    f"β-LASSO {_mean_sd(by, best_row)} % (both chosen on validation); gain {g['gain']:+.2f} pp, "
                    f"{se_text}; holds if the gain > {noise:g} s.e.",
            "holds": bool(g["gain"] > noise * se)}


#: (c): units with fewer non-zeros than this are reported apart (a filter of 1–4 weights is
#: "local" by construction); the null comparison uses the others
NULL_MIN_NONZEROS = 5
#: (c): β-LASSO's median radius (units ≥ NULL_MIN_NONZEROS) must be at most this × the null's
NULL_RADIUS_FACTOR = 0.8
#: (c): one-sided Mann–Whitney p-value below which β-LASSO's radii are smaller than the null's
NULL_P_VALUE = 1e-3


def locality_stats(arrays: dict) -> dict:
    """Medians over the first layer's units with at least one non-zero weight: the locality
    radius and the window mass (:func:`companion.nn.analysis.locality`); how many units are all zero."""
    import numpy as np

    for key in ("unit_nonzeros", "locality_radius", "locality_window_mass"):
        if key not in arrays:
            raise ValueError(f"run arrays lack {key!r}; they have {sorted(arrays)}")
    nnz = np.asarray(arrays["unit_nonzeros"])
    alive = nnz > 0

    def median(key):
        return float(np.median(np.asarray(arrays[key], dtype=float)[alive])) if alive.any() else float("nan")

    return {"median_radius": median("locality_radius"), "median_window_mass": median("locality_window_mass"),
            "empty_units": int((~alive).sum()), "units": int(nnz.size)}


def null_comparison(null: pd.DataFrame, *, min_nonzeros: int = NULL_MIN_NONZEROS) -> dict:
    """β-LASSO's first-layer radii against the null with the same non-zeros per unit placed at
    random (``null``: :func:`companion.book.protocol.null_frame`), on the units with at least
    ``min_nonzeros`` non-zeros: medians of both, window masses, and the one-sided Mann–Whitney
    p-value that the trained radii are smaller; the units with 1 … ``min_nonzeros`` − 1 apart."""
    from scipy.stats import mannwhitneyu

    require_columns(null, ["nonzeros", "radius", "window_mass", "null_radius", "null_window_mass"], "the null frame")
    used, few = null[null["nonzeros"] >= min_nonzeros], null[null["nonzeros"] < min_nonzeros]
    out = {"units": len(used), "few_units": len(few),
           "few_median_radius": float(few["radius"].median()) if len(few) else float("nan")}
    if used.empty:
        return {**out, "median_radius": float("nan"), "null_median_radius": float("nan"), "median_window_mass":
                float("nan"), "null_median_window_mass": float("nan"), "p_value": float("nan")}
    return {**out, "median_radius": float(used["radius"].median()),
            "null_median_radius": float(used["null_radius"].median()),
            "median_window_mass": float(used["window_mass"].median()),
            "null_median_window_mass": float(used["null_window_mass"].median()),
            "p_value": float(mannwhitneyu(used["radius"], used["null_radius"], alternative="less").pvalue)}


def locality_references(image_size: int = 32, in_channels: int = 3) -> dict:
    """Reference values of :func:`locality_stats`: ``uniform`` (a dense FC filter) and ``s-local``
    (an S-LOCAL filter away from the border), computed by :func:`companion.nn.analysis.reference_locality`."""

    ref = reference_locality(image_size=image_size, in_channels=in_channels)
    return {name: {"median_radius": r["radius"], "median_window_mass": r["window_mass"]} for name, r in ref.items()}


def claim_local_filters(lasso: dict, sgd: dict, references: dict, null: dict) -> dict:
    """(c) Section 4.1, Figure 4: β-LASSO's first-layer filters become local, SGD's stay dense.
    Written down before the runs (issue 9), it holds when (1) β-LASSO's median radius and median
    window mass (:func:`locality_stats`) are both closer to the S-LOCAL reference than to the
    dense one and better than SGD's (smaller radius, larger window mass), and (2) on its units
    with ≥ :data:`NULL_MIN_NONZEROS` non-zeros, its median radius is ≤ :data:`NULL_RADIUS_FACTOR`
    × that of the same counts placed at random, with a one-sided Mann–Whitney p < :data:`NULL_P_VALUE`
    (:func:`null_comparison`)."""
    u, loc = references["uniform"], references["s-local"]
    mid_r = (u["median_radius"] + loc["median_radius"]) / 2
    mid_w = (u["median_window_mass"] + loc["median_window_mass"]) / 2
    near_local = lasso["median_radius"] < mid_r and lasso["median_window_mass"] > mid_w
    beats_sgd = (lasso["median_radius"] < sgd["median_radius"]
                 and lasso["median_window_mass"] > sgd["median_window_mass"])
    beats_null = (null["median_radius"] <= NULL_RADIUS_FACTOR * null["null_median_radius"]
                  and null["p_value"] < NULL_P_VALUE)

    def text(s):
        return (f"radius {s['median_radius']:.1f} px, window mass {s['median_window_mass']:.2f}"
                + (f" ({s['empty_units']} of {s['units']} units all zero)" if s.get("empty_units") else ""))

    few = (f"; {null['few_units']} units with 1–{NULL_MIN_NONZEROS - 1} non-zeros apart (median radius "
           f"{null['few_median_radius']:.1f} px)" if null["few_units"] else "")
    return {"claim": "β-LASSO's first-layer filters become local and sparse, SGD's stay dense "
                     "(Section 4.1, Figures 4, 7, 8)",
            "paper": "shown as filter images (no numbers)",
            "ours": f"medians per filter: β-LASSO {text(lasso)}; SGD {text(sgd)}; references: dense radius "
                    f"{u['median_radius']:.1f} px, window mass {u['median_window_mass']:.2f}; S-LOCAL radius "
                    f"{loc['median_radius']:.1f} px, window mass {loc['median_window_mass']:.2f}. β-LASSO's "
                    f"{null['units']} units with ≥ {NULL_MIN_NONZEROS} non-zeros: radius {null['median_radius']:.1f} px "
                    f"against {null['null_median_radius']:.1f} px for the same counts placed at random "
                    f"(Mann–Whitney p = {null['p_value']:.1g}){few}. Closer to S-LOCAL than dense: "
                    f"{'yes' if near_local else 'no'}; better than SGD: {'yes' if beats_sgd else 'no'}; "
                    f"beyond the null: {'yes' if beats_null else 'no'}",
            "holds": bool(near_local and beats_sgd and beats_null)}


def claim_first_layer_nonzeros(layers: pd.DataFrame) -> dict:
    """(e) Section 4.1, Figure 3: β-LASSO S-FC's first layer has fewer non-zeros than S-LOCAL's
    first layer has weights (the paper: between S-CONV's and S-LOCAL's counts)."""
    require_columns(layers, ["row", "first_weights", "first_nonzeros"], "the Table 2 layers frame")
    by = layers.set_index("row")
    conv_row, local_row, best_row = run_label(S_CONV_SGD), run_label(S_LOCAL_SGD), run_label(BEST_LASSO)
    for row in (conv_row, local_row, best_row):
        if row not in by.index:
            raise ValueError(f"the Table 2 layers frame has no row {row!r}")
    nnz = int(by.loc[best_row, "first_nonzeros"])
    conv, local = int(by.loc[conv_row, "first_weights"]), int(by.loc[local_row, "first_weights"])
    where = "between the two" if conv <= nnz < local else ("below S-CONV's" if nnz < conv else "above S-LOCAL's")
    return {"claim": "β-LASSO S-FC's first layer has fewer non-zeros than S-LOCAL's has weights "
                     "(Section 4.1, Figure 3)",
            "paper": "Figure 3 (plot, no printed numbers): between S-CONV's and S-LOCAL's counts",
            "ours": f"β-LASSO non-zeros {nnz:,}; weights: S-CONV {conv:,}, S-LOCAL {local:,} ({where})",
            "holds": bool(nnz < local)}


def describe_fit(fit: pd.DataFrame) -> str:
    """A sentence on Figure 2 (right): the families ordered by parameters needed and by test accuracy."""
    require_columns(fit, ["model", "min_params", "best_test_acc"], "the fewest-params frame")
    by_params = [model_label(m) for m in fit.sort_values("min_params")["model"]]
    by_test = [model_label(m) for m in fit.sort_values("best_test_acc", ascending=False)["model"]]
    verdict = ("the two orders agree, as in the paper" if orders_agree(fit)
               else "the two orders do not agree here (the paper finds they do)")
    return (f"Fewest parameters to reach the target first: {', '.join(by_params)}; highest best test "
            f"accuracy first: {', '.join(by_test)}; {verdict}.")


def describe_figure5(f5: pd.DataFrame) -> str:
    """A sentence on Figure 5: at how many kernel sizes β-LASSO beats SGD, and by how much."""
    gains = lasso_gains(f5)
    wins = int((gains["gain"] > 0).sum())
    each = ", ".join(f"{k}×{k}: {g:+.2f} pp" for k, g in zip(gains["kernel_size"], gains["gain"]))
    return (f"β-LASSO's test accuracy is above SGD's at {wins} of {len(gains)} kernel sizes "
            f"(β-LASSO − SGD: {each}).")


def claim_fit_order(fit: pd.DataFrame) -> dict:
    """(f) Section 3, Figure 2 (right): fewer parameters to fit ⇒ higher test accuracy (:func:`orders_agree`)."""
    return {"claim": "Architectures that fit the training set with fewer parameters generalise better "
                     "(Section 3, Figure 2 right)",
            "paper": "order ResNet18, D-CONV, S-CONV, 3-FC on both axes, every dataset (plot)",
            "ours": describe_fit(fit).removesuffix("."), "holds": orders_agree(fit)}


def claim_kernels(f5: pd.DataFrame) -> dict:
    """(g) Section 4.2, Figure 5: β-LASSO beats SGD for ResNet18 at every kernel size."""
    gains = lasso_gains(f5)
    return {"claim": "β-LASSO improves over SGD for ResNet18 at every kernel size (Section 4.2, Figure 5)",
            "paper": "Figure 5 (plot, no printed numbers): better at all kernel sizes, more so for large ones",
            "ours": describe_figure5(f5).removesuffix("."), "holds": bool((gains["gain"] > 0).all())}


def permutation_summary(table: pd.DataFrame, runs: dict) -> pd.DataFrame:
    """:func:`permutation`'s table with the standard error of each difference (two independent
    test accuracies on ``n_test`` images), whether the difference exceeds :data:`NOISE_SE` s.e.,
    and Section 4.1's claim for the row (``invariant`` for S-FC, ``not invariant`` otherwise)."""
    require_columns(table, ["original", "permuted", "difference"], "the permutation table")
    out = table.reset_index()
    n_test = {run_label(key): run.summary["dataset"]["n_test"] for (key, _), run in runs.items()}
    out["se"] = [(accuracy_se(o, n_test[r]) ** 2 + accuracy_se(q, n_test[r]) ** 2) ** 0.5
                 for r, o, q in zip(out["row"], out["original"], out["permuted"])]
    out["changes"] = out["difference"].abs() > NOISE_SE * out["se"]
    models = {run_label(key): key.model for key, _ in runs}
    out["paper_claim"] = ["invariant" if models[r] == "s-fc" else "not invariant" for r in out["row"]]
    return out


